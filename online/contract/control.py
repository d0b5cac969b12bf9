"""Control messages in the event streams: erase a user, merge an anonymous visitor into an account.

The server writes them into the user's event stream partition (field ``c``,
not ``e``: they are not events), so the flow meets them in order with the
user's own events: an erase after everything the user did before it, a merge
after the account's earlier events.

* ``erase``: every stage drops the user's state, the sink deletes their keys,
  and the source deletes the control entry itself once no restart can need it.
* ``merge``: the account absorbs the anonymous visitor's recent items (with
  their weights and times) and exclusions (bought, disliked), read by the server from what
  the flow stored for the visitor; the visitor is then erased. Absorbed items
  touch no item's popularity or co-visitation: those counted the visitor's
  events already.

>>> c = Control("merge", "acct-7", from_user="anon-3", recent=(("sku-1", 2.0, 1.7e9),), exclude=("sku-9",))
>>> decode_control({b"c": c.encode()}) == c
True
>>> decode_control({b"c": b'{"control":"erase","user_id":"u1"}'})
Control(kind='erase', user_id='u1', from_user=None, recent=(), exclude=())
>>> decode_control({b"c": b'{"control":"teleport","user_id":"u1"}'})
Traceback (most recent call last):
...
online.contract.events.EventError: control: unknown control 'teleport' (known: erase, merge)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from online.contract.events import DEFAULT_LIMITS, EventError, unprintable_character

__all__ = ["CONTROL_FIELD", "CONTROL_KINDS", "Control", "decode_control", "is_control"]

CONTROL_FIELD = "c"
CONTROL_KINDS = ("erase", "merge")
MAX_MERGED_ITEMS = 1000


def _user(raw: Any, name: str) -> str:
    if not isinstance(raw, str) or not raw or len(raw) > DEFAULT_LIMITS.max_id_length:
        raise EventError(name, f"must be a string of 1-{DEFAULT_LIMITS.max_id_length} characters")
    if (bad := unprintable_character(raw)) is not None:
        raise EventError(name, f"contains {bad}")
    return raw


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

    def encode(self) -> bytes:
        body: dict[str, Any] = {"control": self.kind, "user_id": self.user_id}
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
