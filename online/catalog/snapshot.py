"""The server's in-process copy of the catalog: what filters, rules and diversity ask of an item, in O(1).

A request filters and re-ranks about a hundred candidates; asking Redis about
each would cost a round trip per request at least, so every server keeps the
catalog in memory and follows its change stream (:class:`CatalogReplica`,
within a second). The copy is columnar: an item is a row number (one dict
entry for its id), and its properties live in flat arrays (stock and
liveness flags, availability window, price, creation time) and in small
codes into shared tables (its category ancestors, tags and attribute values
as frozensets, one per distinct combination; its brand and its first
category as codes). A 100k-item catalog takes ~19 MB (~190 B an item,
measured in docs/catalog.md), whatever each item's title or free attributes.

Examples
--------
>>> from online.catalog.item import parse_item
>>> snapshot = CatalogSnapshot()
>>> snapshot.put(parse_item({"item_id": "t1", "categories": ["sports/fitness/treadmills"], "brand": "acme",
...                          "price": 499.0, "tags": ["sale"], "attributes": {"foldable": True}}))
>>> snapshot.put(parse_item({"item_id": "m1", "categories": ["sports/fitness/mats"], "in_stock": False}))
>>> row = snapshot.row("t1")
>>> snapshot.available(row, now=1.7e9), snapshot.in_category(row, "sports/fitness"), snapshot.brand_of(row)
(True, True, 'acme')
>>> snapshot.has_attribute(row, "foldable", "true"), snapshot.has_tag(row, "sale"), snapshot.price_of(row)
(True, True, 499.0)
>>> snapshot.available(snapshot.row("m1"), now=1.7e9), snapshot.row("nope"), len(snapshot)
(False, -1, 2)
>>> snapshot.delete("m1"); len(snapshot), snapshot.row("m1")
(1, -1)
"""

from __future__ import annotations

import bisect
import itertools
import math
from array import array
from collections.abc import Generator, Iterator
from typing import Any

from online.catalog.item import Item, attribute_text, category_ancestors, decode_item
from online.catalog.protocol import CatalogChange, CatalogCommands, Command, decode_change

__all__ = ["CatalogReplica", "CatalogSnapshot"]

_ALIVE, _IN_STOCK = 1, 2  # online.catalog.filters tests ``flags == 3`` inline: keep these values
_EMPTY: frozenset[str] = frozenset()


class _Interned:
    """Distinct values, each stored once, by code (0 is always the empty set)."""

    __slots__ = ("codes", "values")

    def __init__(self) -> None:
        self.values: list[frozenset[str]] = [_EMPTY]
        self.codes: dict[frozenset[str], int] = {_EMPTY: 0}

    def code(self, value: frozenset[str]) -> int:
        code = self.codes.get(value)
        if code is None:
            code = self.codes[value] = len(self.values)
            self.values.append(value)
        return code


_COPY_IDS = itertools.count(1)


class CatalogSnapshot:
    """Every item's filterable properties, by row; one instance per server process.

    Read an item by its row (:meth:`row`, -1 for an item not in the catalog);
    rows of deleted items are reused. Titles are not kept: nothing at request
    time reads them. Not thread-safe: the server's event loop applies changes
    between requests.
    """

    def __init__(self) -> None:
        self._rows: dict[str, int] = {}
        self._ids: list[str | None] = []
        self._free: list[int] = []
        self._flags = bytearray()
        self._from = array("d")
        self._until = array("d")
        self._price = array("d")
        self._created = array("d")
        self._brand = array("i")
        self._first_category = array("i")
        self._ancestors = array("i")
        self._tags = array("i")
        self._attributes = array("i")
        self._names: dict[str, int] = {"": 0}
        """Brands and first categories, by code (0: none)."""
        self._name_list: list[str] = [""]
        self._category_sets = _Interned()
        self._tag_sets = _Interned()
        self._attribute_sets = _Interned()
        self.version = 0
        """The catalog version this copy reflects (:class:`CatalogReplica` keeps it)."""
        self.copy_id = next(_COPY_IDS)
        """Unique to this copy in the process: with :attr:`version`, what the copy holds (a full load is a new copy)."""
        self._windows: dict[int, tuple[float, float]] = {}
        """The availability windows of the items that have one, by row."""
        self._boundaries: list[float] | None = []
        """Every window's finite ends, sorted (``None``: to be sorted again after a change)."""
        self._created_sorted: array[float] | None = None
        """Every item's ``created_at``, sorted: built at the first :meth:`next_age_boundary`, then kept in step
        (an insertion or removal per changed creation time, not a sort per catalog change; 8 B an item)."""

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._rows

    def __iter__(self) -> Iterator[str]:
        return iter(self._rows)

    def _name(self, name: str | None) -> int:
        if not name:
            return 0
        code = self._names.get(name)
        if code is None:
            code = self._names[name] = len(self._name_list)
            self._name_list.append(name)
        return code

    def put(self, item: Item) -> None:
        """Add or replace ``item``."""
        row = self._rows.get(item.item_id, -1)
        replaced = row >= 0
        if row < 0:
            if self._free:
                row = self._free.pop()
                self._ids[row] = item.item_id
            else:
                row = len(self._ids)
                self._ids.append(item.item_id)
                self._flags.append(0)
                for column in (self._from, self._until, self._price, self._created):
                    column.append(0.0)
                for codes in (self._brand, self._first_category, self._ancestors, self._tags, self._attributes):
                    codes.append(0)
            self._rows[item.item_id] = row
        elif self._windows.pop(row, None) is not None:
            self._boundaries = None
        created = math.nan if item.created_at is None else float(item.created_at)  # type: ignore[arg-type]
        if self._created_sorted is not None:
            self._move_created(self._created[row] if replaced else math.nan, created)
        self._flags[row] = _ALIVE | (_IN_STOCK if item.in_stock else 0)
        self._from[row] = -math.inf if item.available_from is None else float(item.available_from)  # type: ignore[arg-type]
        self._until[row] = math.inf if item.available_until is None else float(item.available_until)  # type: ignore[arg-type]
        self._price[row] = math.nan if item.price is None else item.price
        self._created[row] = created
        self._brand[row] = self._name(item.brand)
        self._first_category[row] = self._name(item.categories[0] if item.categories else None)
        self._ancestors[row] = self._category_sets.code(category_ancestors(item.categories))
        self._tags[row] = self._tag_sets.code(frozenset(item.tags))
        self._attributes[row] = self._attribute_sets.code(
            frozenset(f"{name}={attribute_text(value)}" for name, value in item.attributes.items()))
        if self._from[row] != -math.inf or self._until[row] != math.inf:
            self._windows[row] = (self._from[row], self._until[row])
            self._boundaries = None

    @property
    def windowed(self) -> int:
        """Items with an availability window (``available_from`` or ``available_until``)."""
        return len(self._windows)

    def next_boundary(self, now: float) -> float:
        """The first time after ``now`` at which an item's availability window opens or closes (``inf``: none):
        until then, which items are available does not depend on the clock. Sorting the windows' ends after a
        change costs O(k log k) for k windowed items, once.

        >>> from online.catalog.item import parse_item
        >>> snapshot = CatalogSnapshot()
        >>> snapshot.put(parse_item({"item_id": "a", "available_from": 100, "available_until": 200}))
        >>> [snapshot.next_boundary(now) for now in (50, 100, 150, 200)]
        [100.0, 200.0, 200.0, inf]
        >>> snapshot.delete("a"); snapshot.next_boundary(50), snapshot.windowed
        (inf, 0)
        """
        if self._boundaries is None:
            self._boundaries = sorted(end for window in self._windows.values() for end in window if math.isfinite(end))
        at = bisect.bisect_right(self._boundaries, now)
        return self._boundaries[at] if at < len(self._boundaries) else math.inf

    def next_age_boundary(self, now: float, age_s: float) -> float:
        """The first time after ``now`` at which an item becomes, or stops being, less than ``age_s`` old (its
        ``created_at`` reached, or ``created_at + age_s``; ``inf``: none): until then, which items a new-arrivals
        rule of that age boosts does not depend on the clock. A little early rather than late (rounding).

        >>> from online.catalog.item import parse_item
        >>> snapshot = CatalogSnapshot()
        >>> for item, created in (("a", 100), ("b", 300)):
        ...     snapshot.put(parse_item({"item_id": item, "created_at": created}))
        >>> [round(snapshot.next_age_boundary(now, 50)) for now in (0, 100, 149, 200)], snapshot.next_age_boundary(350, 50)
        ([100, 150, 150, 300], inf)
        >>> snapshot.put(parse_item({"item_id": "b", "created_at": 120})); round(snapshot.next_age_boundary(150, 50))
        170
        >>> snapshot.delete("b"); snapshot.next_age_boundary(151, 50)
        inf
        """
        created = self._created_sorted
        if created is None:
            created = self._created_sorted = array("d", sorted(
                self._created[row] for row in self._rows.values() if not math.isnan(self._created[row])))
        at = bisect.bisect_right(created, now)
        starts = created[at] if at < len(created) else math.inf
        at = bisect.bisect_right(created, now - age_s)
        ends = created[at] + age_s if at < len(created) else math.inf
        boundary = min(starts, ends)
        return boundary - 1e-3 if math.isfinite(boundary) else boundary

    def _move_created(self, old: float, new: float) -> None:
        created = self._created_sorted
        if created is None or old == new:
            return
        if not math.isnan(old):
            del created[bisect.bisect_left(created, old)]
        if not math.isnan(new):
            bisect.insort(created, new)

    def delete(self, item_id: str) -> None:
        """Remove the item (nothing happens if it is not there)."""
        row = self._rows.pop(item_id, -1)
        if row >= 0:
            self._move_created(self._created[row], math.nan)
            if self._windows.pop(row, None) is not None:
                self._boundaries = None
            self._flags[row] = 0
            self._ids[row] = None
            self._free.append(row)

    def apply(self, change: CatalogChange) -> None:
        """One change from the catalog's change stream."""
        if change.item is None:
            self.delete(change.item_id)
        else:
            self.put(change.item)
        self.version = max(self.version, change.version)

    # --- per row, O(1) -------------------------------------------------------------------------------
    def row(self, item_id: str) -> int:
        """The item's row, or -1 when it is not in the catalog."""
        return self._rows.get(item_id, -1)

    def item_id(self, row: int) -> str | None:
        return self._ids[row]

    def available(self, row: int, now: float) -> bool:
        """In stock and within its availability window at ``now`` (epoch seconds)."""
        return self._flags[row] == _ALIVE | _IN_STOCK and self._from[row] <= now < self._until[row]

    def in_stock(self, row: int) -> bool:
        return bool(self._flags[row] & _IN_STOCK)

    def in_category(self, row: int, path: str) -> bool:
        """Whether the item is in ``path`` or below it (``sports/fitness`` holds ``sports/fitness/treadmills``)."""
        return path in self._category_sets.values[self._ancestors[row]]

    def ancestors(self, row: int) -> frozenset[str]:
        """Every category the item is in, ancestors included."""
        return self._category_sets.values[self._ancestors[row]]

    def first_category(self, row: int) -> str | None:
        """The item's first category (its diversity key), or ``None``."""
        return self._name_list[self._first_category[row]] or None

    def first_category_code(self, row: int) -> int:
        """:meth:`first_category` as a small int (0: none), cheaper to count by."""
        return self._first_category[row]

    def brand_of(self, row: int) -> str | None:
        return self._name_list[self._brand[row]] or None

    def brand_code(self, brand: str) -> int:
        """The code :meth:`brand_code_of` gives items of ``brand`` (-1: no item ever had it)."""
        return self._names.get(brand, -1) if brand else -1

    def brand_code_of(self, row: int) -> int:
        return self._brand[row]

    def price_of(self, row: int) -> float | None:
        price = self._price[row]
        return None if math.isnan(price) else price

    def price_between(self, row: int, low: float, high: float) -> bool:
        """``low <= price <= high``; an item without a price is in no range."""
        return low <= self._price[row] <= high  # NaN compares false

    def created_at(self, row: int) -> float | None:
        created = self._created[row]
        return None if math.isnan(created) else created

    def has_tag(self, row: int, tag: str) -> bool:
        return tag in self._tag_sets.values[self._tags[row]]

    def tags(self, row: int) -> frozenset[str]:
        return self._tag_sets.values[self._tags[row]]

    def has_attribute(self, row: int, name: str, text: str) -> bool:
        """Whether attribute ``name`` equals ``text`` as a query spells it (:func:`~online.catalog.item.attribute_text`)."""
        return f"{name}={text}" in self._attribute_sets.values[self._attributes[row]]

    def has_attribute_pair(self, row: int, pair: str) -> bool:
        """:meth:`has_attribute` with ``name=text`` already joined (a filter joins it once per request)."""
        return pair in self._attribute_sets.values[self._attributes[row]]


class CatalogReplica:
    """Keeps a :class:`CatalogSnapshot` up to date with Redis: a full load, then the change stream.

    :meth:`refresh` is one step of the driver's loop (the server runs it every
    ~250 ms, so a change is served within a second): it reads the version and
    the changes after the copy's in one round trip and applies them; a copy
    that fell behind the stream's trimmed start (or a fresh one) reloads the
    whole catalog with ``HSCAN`` into a new snapshot, swapped in when complete
    (requests keep the old one meanwhile). Entries the scan already saw are
    applied again from the stream: each carries the item's whole state, so
    that is harmless.

    >>> from online.contract import RedisKeys
    >>> replica = CatalogReplica(CatalogCommands(RedisKeys("lr")))
    >>> steps = replica.refresh()
    >>> next(steps)                                             # a fresh copy: version, then a full scan
    [('GET', 'lr:{catalog}:version')]
    >>> steps.send([b"1"])
    [('HSCAN', 'lr:{catalog}:items', 0, 'COUNT', 2000)]
    >>> steps.send([[b"0", [b"a", b'{"item_id":"a","brand":"acme"}']]])
    [('GET', 'lr:{catalog}:version'), ('XRANGE', 'lr:{catalog}:changes', '2-0', '+', 'COUNT', 10000)]
    >>> try:
    ...     steps.send([b"1", []])
    ... except StopIteration as done:
    ...     print(done.value, replica.snapshot.version, len(replica.snapshot))
    True 1 1
    """

    def __init__(self, commands: CatalogCommands, scan_count: int = 2000, change_count: int = 10_000) -> None:
        self.commands = commands
        self.snapshot = CatalogSnapshot()
        self.loaded = False
        self.scan_count = scan_count
        self.change_count = change_count
        self.full_loads = 0

    def refresh(self) -> Generator[list[Command], list[Any], bool]:
        """Bring the copy up to date; ``True`` when it changed."""
        if not self.loaded:
            yield from self._full_load()
            yield from self._catch_up()
            return True
        return (yield from self._catch_up())

    def _full_load(self) -> Generator[list[Command], list[Any], None]:
        (version,) = yield [("GET", self.commands.keys.catalog_version())]
        fresh = CatalogSnapshot()
        cursor = 0
        while True:
            ((cursor_raw, flat),) = yield [self.commands.scan(cursor, self.scan_count)]
            for blob in (flat.values() if isinstance(flat, dict) else flat[1::2]):  # redis-py: a dict; raw: a flat list
                fresh.put(decode_item(blob))
            cursor = int(cursor_raw)
            if cursor == 0:
                break
        fresh.version = int(version or 0)
        self.snapshot, self.loaded = fresh, True
        self.full_loads += 1

    def _catch_up(self) -> Generator[list[Command], list[Any], bool]:
        changed = False
        while True:
            snapshot = self.snapshot
            current_raw, entries = yield [("GET", self.commands.keys.catalog_version()),
                                          self.commands.changes_after(snapshot.version, self.change_count)]
            current = int(current_raw or 0)
            changes = [decode_change(entry_id, _fields(fields)) for entry_id, fields in entries]
            if (changes and changes[0].version != snapshot.version + 1) or (not changes and current > snapshot.version) \
                    or current < snapshot.version:  # trimmed past us, or the catalog was wiped: start again
                yield from self._full_load()
                changed = True
                continue
            for change in changes:
                snapshot.apply(change)
            changed = changed or bool(changes)
            if len(changes) < self.change_count:
                return changed


def _fields(fields: Any) -> dict[Any, Any]:
    """A stream entry's fields as a dict: RESP2 gives a flat list, redis-py and RESP3 a dict."""
    if isinstance(fields, dict):
        return fields
    pairs = iter(fields)
    return dict(zip(pairs, pairs, strict=True))
