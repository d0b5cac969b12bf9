"""How an event is laid out inside a Redis stream entry.

Producers that write straight into the streams (instead of ``POST
/v1/events``) put the event's JSON in one field, ``e``; a flat entry whose
fields are the event's fields (``user_id``, ``item_id``, ``type``, ...) is
accepted too. Either way the dataflow runs the same validation as the server.

Examples
--------
>>> from online.contract.events import Event
>>> fields = stream_fields(Event("u1", "i1", "view", 1.7e9))
>>> fields
{'e': b'{"user_id":"u1","item_id":"i1","type":"view","ts":1700000000.0}'}
>>> decode_stream_fields({b"e": fields["e"]})["item_id"]
'i1'
>>> decode_stream_fields({b"user_id": b"u", b"item_id": b"i", b"type": b"view", b"value": b"4"})["value"]
4.0
>>> decode_stream_fields({b"e": b"\\xff\\xfe"})
Traceback (most recent call last):
...
online.contract.events.EventError: e: not valid UTF-8 JSON
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from online.contract.events import Event, EventError

__all__ = ["EVENT_FIELD", "accepted_ms", "decode_stream_fields", "entry_user_id", "stream_fields"]

EVENT_FIELD = "e"
_NUMERIC_FLAT_FIELDS = ("ts", "value")


def stream_fields(event: Event) -> dict[str, bytes]:
    """The fields of the stream entry that carries ``event``."""
    return {EVENT_FIELD: orjson.dumps(event.to_dict())}


def _text(raw: bytes | str, field: str) -> str:
    if isinstance(raw, str):
        return raw
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise EventError(field, "not valid UTF-8") from None


def decode_stream_fields(fields: Mapping[Any, Any]) -> Any:
    """The decoded JSON object of one stream entry (validate it with ``parse_event``)."""
    by_name = {_text(k, "field name"): v for k, v in fields.items()}
    if EVENT_FIELD in by_name:
        if len(by_name) != 1:
            extra = sorted(k for k in by_name if k != EVENT_FIELD)
            raise EventError(extra[0], f"unexpected beside '{EVENT_FIELD}'")
        try:
            return orjson.loads(by_name[EVENT_FIELD])
        except orjson.JSONDecodeError:
            raise EventError(EVENT_FIELD, "not valid UTF-8 JSON") from None
    if not by_name:
        raise EventError("event", "the stream entry has no fields")
    obj: dict[str, Any] = {}
    for name, raw in by_name.items():
        text = _text(raw, name)
        if name in _NUMERIC_FLAT_FIELDS:
            try:
                obj[name] = float(text)
            except ValueError:
                obj[name] = text  # parse_event names the problem (ISO ts stays valid)
        elif name == "context":
            try:
                obj[name] = orjson.loads(text)
            except orjson.JSONDecodeError:
                raise EventError("context", "not valid JSON") from None
        else:
            obj[name] = text
    return obj


def accepted_ms(entry_id: bytes | str) -> int:
    """The acceptance time (ms since epoch) encoded in a stream entry id.

    >>> accepted_ms(b"1700000000123-4")
    1700000000123
    """
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return int(text.partition("-")[0])


def entry_user_id(fields: Mapping[Any, Any]) -> str | None:
    """The ``user_id`` a stream entry names (an event, or a control message), or ``None`` if it names none.

    >>> entry_user_id({b"e": b'{"user_id":"ann","item_id":"a","type":"view"}'}), entry_user_id({b"e": b"junk"})
    ('ann', None)
    >>> entry_user_id({b"c": b'{"control":"erase","user_id":"bob"}'}), entry_user_id({b"user_id": b"cy"})
    ('bob', 'cy')
    """
    raw = fields.get(b"e", fields.get(b"c"))
    if raw is not None:
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None
        user = obj.get("user_id") if isinstance(obj, dict) else None
        return str(user) if isinstance(user, str | int) and not isinstance(user, bool) else None
    user = fields.get(b"user_id")
    return user.decode("utf-8", "replace") if isinstance(user, bytes) else None
