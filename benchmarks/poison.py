"""Poison: stream entries the event contract refuses, one of each kind we could think of.

``tests/test_poison_events.py`` writes each straight into the streams (bypassing the server) and
checks the flow dead-letters it and goes on; ``benchmarks.chaos`` mixes them into its load.

>>> len(POISON) > 25, all(isinstance(fields, dict) for fields in POISON.values())
(True, True)
"""

from __future__ import annotations

import time

import orjson

__all__ = ["NOW", "POISON", "event_fields"]

NOW = time.time()


def event_fields(user: str, item: str, **extra: object) -> dict[bytes, bytes]:
    """A view event's stream entry (the form the server writes)."""
    return {b"e": orjson.dumps({"user_id": user, "item_id": item, "type": "view", "ts": NOW, **extra})}


def _json(text: str) -> dict[bytes, bytes]:
    return {b"e": text.encode()}


POISON: dict[str, dict[bytes, bytes]] = {
    "newline in a context value": event_fields("p", "i", context={"category": "shoes\nx"}),
    "U+2028 in a context value": event_fields("p", "i", context={"category": "shoes\u2028x"}),
    "control character in a context key": event_fields("p", "i", context={"cat\x01": "x"}),
    "tab in item_id": event_fields("p", "sku\t1"),
    "NUL in user_id": _json('{"user_id":"a\\u0000b","item_id":"i","type":"view"}'),
    "lone surrogate": _json('{"user_id":"\\ud800","item_id":"i","type":"view"}'),
    "invalid UTF-8": {b"e": b'{"user_id":"\xff\xfe","item_id":"i","type":"view"}'},
    "not JSON": _json("{this is not json"),
    "empty object": _json("{}"),
    "an array": _json('[{"user_id":"u","item_id":"i","type":"view"}]'),
    "a number": _json("42"),
    "null": _json("null"),
    "no event field": {b"x": b"y"},
    "empty fields": {b"": b""},
    "binary field names": {b"\x00\xff": b"\x00"},
    "unknown field": _json('{"user_id":"u","item_id":"i","type":"view","itemId":"j"}'),
    "unknown type": _json('{"user_id":"u","item_id":"i","type":"teleport"}'),
    "rating without value": _json('{"user_id":"u","item_id":"i","type":"rating"}'),
    "value as a string": _json('{"user_id":"u","item_id":"i","type":"purchase","value":"12"}'),
    "boolean id": _json('{"user_id":true,"item_id":"i","type":"view"}'),
    "object as id": _json('{"user_id":{"a":1},"item_id":"i","type":"view"}'),
    "NaN": _json('{"user_id":"u","item_id":"i","type":"view","ts":NaN}'),
    "huge number": _json('{"user_id":"u","item_id":"i","type":"purchase","value":1e400}'),
    "timestamp in milliseconds": _json(f'{{"user_id":"u","item_id":"i","type":"view","ts":{NOW * 1000}}}'),
    "timestamp before 2000": _json('{"user_id":"u","item_id":"i","type":"view","ts":0}'),
    "ISO time without zone": _json('{"user_id":"u","item_id":"i","type":"view","ts":"2024-01-01T00:00:00"}'),
    "200 KB id": event_fields("x" * 200_000, "i"),
    "deep nesting": _json('{"user_id":"u","item_id":"i","type":"view","context":' + "[" * 2000 + "]" * 2000 + "}"),
    "100 context keys": event_fields("p", "i", context={f"k{n}": n for n in range(100)}),
    "context value an object": event_fields("p", "i", context={"category": {"a": 1}}),
    "field-per-key entry with a bad ts": {b"user_id": b"u", b"item_id": b"i", b"type": b"view", b"ts": b"soon"},
}
"""Entries the contract refuses: each is dead-lettered by the parse stage."""

