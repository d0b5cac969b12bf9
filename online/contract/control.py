"""Control messages in the event streams: erase a user, merge an anonymous visitor into an account.

The server writes them into the user's event stream partition (field ``c``,
not ``e``: they are not events), so the flow meets them in order with the
user's own events: an erase after everything the user did before it, a merge
after the account's earlier events.

* ``erase``: every stage drops the user's state, the sink deletes their keys,
  and the source deletes the control entry itself once no restart can need it.
* ``served``: the server answered the user a list (its ``rec_id``, the
  experiment and variant that made it, the items shown and their sources: at
  most :data:`MAX_SERVED_ITEMS`); the user-history stage remembers it to
  attribute the user's later clicks, carts and purchases
  (:mod:`online.attribution`), and the sink counts the impressions.
* ``merge``: the account absorbs the anonymous visitor's recent items (with
  their weights and times) and exclusions (bought, disliked), read by the server from what
  the flow stored for the visitor; the visitor is then erased. Absorbed items
  touch no item's popularity or co-visitation: those counted the visitor's
  events already.

>>> c = Control("merge", "acct-7", from_user="anon-3", recent=(("sku-1", 2.0, 1.7e9),), exclude=("sku-9",))
>>> decode_control({b"c": c.encode()}) == c
True
>>> decode_control({b"c": b'{"control":"erase","user_id":"u1"}'})
Control(kind='erase', user_id='u1', from_user=None, recent=(), exclude=(), served=None)
>>> s = Control.served_list("u1", "r7", 1.7e9, "home", "livereco", ("a", "b"), ("personal", "trending"))
>>> decode_control({b"c": s.encode()}).served
Served(rec_id='r7', ts=1700000000.0, experiment='home', variant='livereco', items=('a', 'b'), sources=('personal', 'trending'))
>>> decode_control({b"c": b'{"control":"teleport","user_id":"u1"}'})
Traceback (most recent call last):
...
online.contract.events.EventError: control: unknown control 'teleport' (known: erase, merge, served)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from online.contract.events import DEFAULT_LIMITS, EventError, unprintable_character

__all__ = ["CONTROL_FIELD", "CONTROL_KINDS", "MAX_SERVED_ITEMS", "Control", "Served", "decode_control", "is_control"]

CONTROL_FIELD = "c"
CONTROL_KINDS = ("erase", "merge", "served")
MAX_MERGED_ITEMS = 1000
MAX_SERVED_ITEMS = 50
"""Items of a served list the impression record keeps (the first ones; deeper places are not attributed)."""
MAX_LABEL_LENGTH = 64
"""A rec_id, experiment or variant name, or source, longer than this is refused."""


def _user(raw: Any, name: str) -> str:
    if not isinstance(raw, str) or not raw or len(raw) > DEFAULT_LIMITS.max_id_length:
        raise EventError(name, f"must be a string of 1-{DEFAULT_LIMITS.max_id_length} characters")
    if (bad := unprintable_character(raw)) is not None:
        raise EventError(name, f"contains {bad}")
    return raw


@dataclass(frozen=True, slots=True)
class Served:
    """What a ``served`` control message records: one list answer (its id, when, who made it, what it showed)."""

    rec_id: str
    ts: float
    experiment: str
    variant: str
    items: tuple[str, ...]
    sources: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Control:
    """One control message: ``kind`` for ``user_id`` (a merge names the user it absorbs, with their data)."""

    kind: str
    user_id: str
    from_user: str | None = None
    recent: tuple[tuple[str, float, float], ...] = ()
    """The absorbed user's recent items: (item, summed weight, last time), newest first."""
    exclude: tuple[str, ...] = ()
    """Items the absorbed user must not be shown again (bought, disliked)."""
    served: Served | None = None
    """A ``served`` message's list."""

    @classmethod
    def served_list(cls, user_id: str, rec_id: str, ts: float, experiment: str, variant: str,
                    items: tuple[str, ...], sources: tuple[str, ...]) -> Control:
        """The impression record of one list answer (its first :data:`MAX_SERVED_ITEMS` items)."""
        return cls("served", user_id, served=Served(rec_id, ts, experiment, variant, items[:MAX_SERVED_ITEMS],
                                                    sources[:MAX_SERVED_ITEMS]))

    def encode(self) -> bytes:
        body: dict[str, Any] = {"control": self.kind, "user_id": self.user_id}
        if self.served is not None:
            s = self.served
            body.update({"rec_id": s.rec_id, "ts": s.ts, "experiment": s.experiment, "variant": s.variant,
                         "items": s.items, "sources": s.sources})
        if self.kind == "merge":
            body.update({"from": self.from_user, "recent": [list(r) for r in self.recent],
                         "exclude": list(self.exclude)})
        return orjson.dumps(body)

    def fields(self) -> dict[str, bytes]:
        """The stream entry's fields."""
        return {CONTROL_FIELD: self.encode()}


def is_control(fields: Mapping[Any, Any]) -> bool:
    """Whether a stream entry is a control message (its ``c`` field), not an event."""
    return b"c" in fields or "c" in fields


def decode_control(fields: Mapping[Any, Any]) -> Control:
    """The control message of a stream entry; :class:`EventError` naming what is wrong."""
    raw = fields.get(b"c", fields.get("c"))
    try:
        obj = orjson.loads(raw)
    except (orjson.JSONDecodeError, TypeError):
        raise EventError("control", "not valid UTF-8 JSON") from None
    if not isinstance(obj, dict):
        raise EventError("control", "must be a JSON object")
    kind = obj.get("control")
    if kind not in CONTROL_KINDS:
        raise EventError("control", f"unknown control {str(kind)[:40]!r} (known: {', '.join(CONTROL_KINDS)})")
    user = _user(obj.get("user_id"), "user_id")
    if kind == "erase":
        return Control("erase", user)
    if kind == "served":
        return Control("served", user, served=_served(obj))
    source = _user(obj.get("from"), "from")
    if source == user:
        raise EventError("from", "a user cannot be merged into itself")
    recent_raw, exclude_raw = obj.get("recent", []), obj.get("exclude", [])
    if not isinstance(recent_raw, list) or len(recent_raw) > MAX_MERGED_ITEMS:
        raise EventError("recent", f"must be a list of at most {MAX_MERGED_ITEMS} [item, weight, ts]")
    recent = []
    for row in recent_raw:
        if (not isinstance(row, list) or len(row) != 3 or not isinstance(row[1], int | float)
                or not isinstance(row[2], int | float) or isinstance(row[1], bool)):
            raise EventError("recent", "each entry must be [item, weight, ts]")
        recent.append((_user(row[0], "recent.item"), float(row[1]), float(row[2])))
    if not isinstance(exclude_raw, list) or len(exclude_raw) > MAX_MERGED_ITEMS:
        raise EventError("exclude", f"must be a list of at most {MAX_MERGED_ITEMS} items")
    exclude = tuple(_user(item, "exclude.item") for item in exclude_raw)
    return Control("merge", user, source, tuple(recent), exclude)


def _label(raw: Any, name: str, empty: bool = False) -> str:
    if not isinstance(raw, str) or len(raw) > MAX_LABEL_LENGTH or not (raw or empty) or not raw.isprintable():
        raise EventError(name, f"must be a printable string of {0 if empty else 1}-{MAX_LABEL_LENGTH} characters")
    return raw


def _served(obj: dict[str, Any]) -> Served:
    items, sources, ts = obj.get("items"), obj.get("sources"), obj.get("ts")
    if not isinstance(items, list) or len(items) > MAX_SERVED_ITEMS:
        raise EventError("items", f"must be a list of at most {MAX_SERVED_ITEMS} items")
    if not isinstance(sources, list) or len(sources) != len(items):
        raise EventError("sources", "must be a list of one source per item")
    if isinstance(ts, bool) or not isinstance(ts, int | float):
        raise EventError("ts", "must be a number (epoch seconds)")
    return Served(_label(obj.get("rec_id"), "rec_id"), float(ts), _label(obj.get("experiment", ""), "experiment", True),
                  _label(obj.get("variant"), "variant"), tuple(_user(item, "items.item") for item in items),
                  tuple(_label(source, "sources.source") for source in sources))
