"""Request-time filters: parsed once from the query, tested per candidate against the catalog snapshot.

A list endpoint's query may carry ``category=`` (the item is in it or below
it; several, comma-separated: any of them), ``exclude=`` (ids, comma-separated
or repeated), ``brand=`` (any of them), ``min_price=``/``max_price=``,
``in_stock=`` (``true``, the default: in stock and within the availability
window now; ``any``: everything), ``attr.<name>=<value>`` (equality, as the
value is spelled: ``attr.foldable=true``, ``attr.size=42``) and
``exclude_seen=true|false`` (leave out what the user interacted with; the
default is the server's setting). Any other parameter the endpoint does not
know is a :class:`FilterError` naming it (HTTP 400).

An item the catalog does not hold passes only while the catalog is empty (a
shop that has not loaded one keeps today's behaviour); once there is a
catalog, an item outside it (unpublished, deleted) never appears.

The refill rule (:func:`refill`): a filtered-out candidate's place goes to the
next candidate that passes (the blended list is ranked deeper than ``n``),
then to the category's trending items, then to trending, so ``n`` items come
back whenever the catalog has them.

Examples
--------
>>> from online.catalog.item import parse_item
>>> from online.catalog.snapshot import CatalogSnapshot
>>> snapshot = CatalogSnapshot()
>>> for raw in ({"item_id": "t1", "categories": ["fitness/treadmills"], "price": 500.0},
...             {"item_id": "t2", "categories": ["fitness/treadmills"], "price": 900.0},
...             {"item_id": "m1", "categories": ["fitness/mats"], "price": 20.0},
...             {"item_id": "m2", "categories": ["fitness/mats"], "price": 25.0, "in_stock": False}):
...     snapshot.put(parse_item(raw))
>>> filters = Filters.from_query({"category": "fitness", "max_price": "600"})
>>> accept = filters.predicate(snapshot, now=1.7e9)
>>> [item for item in ("t1", "t2", "m1", "m2", "unknown") if accept(item)]
['t1', 'm1']
>>> refill([("t2", 3.0, "personal"), ("t1", 2.0, "personal")], accept, [("m2", 1.0), ("m1", 0.5)], [], n=3)
[('t1', 2.0, 'personal'), ('m1', 0.5, 'trending')]
>>> Filters.from_query({"colour": "red"})
Traceback (most recent call last):
...
online.catalog.filters.FilterError: colour: is not a known parameter (known: attr.<name>, brand, category, exclude, exclude_seen, in_stock, max_price, min_price)
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from online.catalog.snapshot import CatalogSnapshot

__all__ = ["FILTER_PARAMETERS", "FilterError", "Filters", "Ranked", "iter_refill", "refill"]

Ranked = tuple[str, float, str]
"""``(item_id, score, source)``, as :func:`online.blend.blend` returns them."""

FILTER_PARAMETERS = ("attr.<name>", "brand", "category", "exclude", "exclude_seen", "in_stock", "max_price", "min_price")
_MAX_VALUES = 1000
_ATTRIBUTE_PREFIX = "attr."


class FilterError(ValueError):
    """A query parameter that is unknown or malformed; ``param`` names it.

    >>> str(FilterError("min_price", "must be a number"))
    'min_price: must be a number'
    """

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param
        self.message = message


def _values(raw: str | Sequence[str]) -> list[str]:
    """A parameter's values: comma-separated, repeated, or both; blanks dropped."""
    texts = [raw] if isinstance(raw, str) else list(raw)
    return [part.strip() for text in texts for part in text.split(",") if part.strip()]


def _single(name: str, raw: str | Sequence[str]) -> str:
    if not isinstance(raw, str):
        if len(raw) != 1:
            raise FilterError(name, "is given more than once")
        raw = raw[0]
    return raw.strip()


def _price(name: str, raw: str | Sequence[str]) -> float:
    text = _single(name, raw)
    try:
        value = float(text)
    except ValueError:
        raise FilterError(name, f"{text[:40]!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise FilterError(name, "must be a finite number, at least 0")
    return value


def _flag(name: str, raw: str | Sequence[str], default: bool) -> bool:
    text = _single(name, raw).lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    if text == "":
        return default
    raise FilterError(name, f"{text[:40]!r}: expected true or false")


@dataclass(frozen=True, slots=True)
class Filters:
    """The filters of one request. ``in_stock``: only items in stock and available now (the default)."""

    categories: tuple[str, ...] = ()
    exclude: frozenset[str] = frozenset()
    brands: frozenset[str] = frozenset()
    min_price: float | None = None
    max_price: float | None = None
    in_stock: bool = True
    attributes: tuple[tuple[str, str], ...] = ()
    exclude_seen: bool = False

    @classmethod
    def from_query(cls, params: Mapping[str, str | Sequence[str]], known: Collection[str] = (),
                   exclude_seen_default: bool = False) -> Filters:
        """The filters in a query's ``params`` (name -> value or values); ``known``: the endpoint's other parameters.

        >>> filters = Filters.from_query({"exclude": ["a,b", "c"], "brand": "acme", "attr.size": "42", "in_stock": "any",
        ...                               "n": "5"}, known={"n"})
        >>> sorted(filters.exclude), filters.brands, filters.in_stock, filters.attributes
        (['a', 'b', 'c'], frozenset({'acme'}), False, (('size', '42'),))
        >>> Filters.from_query({"min_price": "10", "max_price": "5"})
        Traceback (most recent call last):
        ...
        online.catalog.filters.FilterError: max_price: 5.0 is below min_price 10.0
        """
        categories: list[str] = []
        exclude: list[str] = []
        brands: list[str] = []
        attributes: list[tuple[str, str]] = []
        min_price = max_price = None
        in_stock, exclude_seen = True, exclude_seen_default
        for name, raw in params.items():
            if name == "category":
                categories = [path.strip("/") for path in _values(raw)]
            elif name == "exclude":
                exclude = _values(raw)
            elif name == "brand":
                brands = _values(raw)
            elif name == "min_price":
                min_price = _price(name, raw)
            elif name == "max_price":
                max_price = _price(name, raw)
            elif name == "in_stock":
                text = _single(name, raw).lower()
                if text not in ("true", "1", "any", ""):
                    raise FilterError(name, f"{text[:40]!r}: expected true (in stock and available now) or any")
                in_stock = text != "any"
            elif name == "exclude_seen":
                exclude_seen = _flag(name, raw, exclude_seen_default)
            elif name.startswith(_ATTRIBUTE_PREFIX) and len(name) > len(_ATTRIBUTE_PREFIX):
                attributes.append((name[len(_ATTRIBUTE_PREFIX):], _single(name, raw)))
            elif name not in known:
                raise FilterError(name[:64], f"is not a known parameter (known: {', '.join(sorted({*FILTER_PARAMETERS, *known}))})")
            for values in (categories, exclude, brands):
                if len(values) > _MAX_VALUES:
                    raise FilterError(name, f"lists more than {_MAX_VALUES} values")
        if min_price is not None and max_price is not None and max_price < min_price:
            raise FilterError("max_price", f"{max_price} is below min_price {min_price}")
        return cls(tuple(categories), frozenset(exclude), frozenset(brands), min_price, max_price, in_stock,
                   tuple(sorted(attributes)), exclude_seen)

    @property
    def needs_properties(self) -> bool:
        """Whether any filter reads an item's catalog properties beyond stock."""
        return bool(self.categories or self.brands or self.attributes or self.min_price is not None
                    or self.max_price is not None)

    def predicate(self, snapshot: CatalogSnapshot, now: float, exclude: Collection[str] = ()) -> Callable[[str], bool]:
        """A test of one item id: ``True`` when it passes every filter; ``exclude`` adds ids to leave out.

        Built once per request; each test is a few array and set look-ups.
        """
        excluded = self.exclude | frozenset(exclude) if exclude else self.exclude
        if not len(snapshot):  # no catalog: only the exclusions apply
            return lambda item: item not in excluded
        rows, tests = snapshot._rows, self._row_tests(snapshot)
        flags, starts, ends, stock = snapshot._flags, snapshot._from, snapshot._until, self.in_stock

        def accept(item: str) -> bool:
            if item in excluded:
                return False
            row = rows.get(item, -1)
            if row < 0:
                return False
            if stock and (flags[row] != 3 or not starts[row] <= now < ends[row]):  # 3: alive and in stock, inlined
                return False
            for test in tests:  # noqa: SIM110 - a loop, not all(generator): this runs per candidate
                if not test(row):
                    return False
            return True

        return accept

    def _row_tests(self, snapshot: CatalogSnapshot) -> list[Callable[[int], bool]]:
        """The property filters (not stock, which :meth:`predicate` tests inline), cheapest first."""
        tests: list[Callable[[int], bool]] = []
        if self.categories:
            paths, sets, codes = self.categories, snapshot._category_sets.values, snapshot._ancestors
            if len(paths) == 1:
                path = paths[0]
                tests.append(lambda row: path in sets[codes[row]])
            else:
                tests.append(lambda row: any(path in sets[codes[row]] for path in paths))
        if self.brands:
            brand_codes = frozenset(snapshot.brand_code(brand) for brand in self.brands) - {-1}
            brand_of = snapshot._brand
            tests.append(lambda row: brand_of[row] in brand_codes)
        if self.min_price is not None or self.max_price is not None:
            low = -math.inf if self.min_price is None else self.min_price
            high = math.inf if self.max_price is None else self.max_price
            tests.append(lambda row: snapshot.price_between(row, low, high))
        for name, text in self.attributes:
            pair = f"{name}={text}"
            tests.append(lambda row, pair=pair: snapshot.has_attribute_pair(row, pair))  # type: ignore[misc]
        return tests


def refill(candidates: Iterable[Ranked], accept: Callable[[str], bool], category_trending: Sequence[tuple[str, float]],
           trending: Sequence[tuple[str, float]], n: int | None = None) -> list[Ranked]:
    """The candidates that pass ``accept``, then the category's trending items, then trending, without repeats.

    ``n``: stop once this many are found (``None``: all of them, which is what
    rules that re-rank need). Trending items keep their relative popularity as
    their score and ``"trending"`` as their source.
    """
    found = iter_refill(candidates, accept, category_trending, trending)
    return list(found if n is None else itertools.islice(found, n))


def iter_refill(candidates: Iterable[Ranked], accept: Callable[[str], bool],
                category_trending: Sequence[tuple[str, float]], trending: Sequence[tuple[str, float]]) -> Iterator[Ranked]:
    """:func:`refill`, lazily: each item is tested only when it is asked for."""
    seen: set[str] = set()
    for item, score, source in candidates:
        if item not in seen and accept(item):
            seen.add(item)
            yield item, score, source
    for pool in (category_trending, trending):
        for item, popularity in pool:
            if item not in seen and accept(item):
                seen.add(item)
                yield item, popularity, "trending"
