"""``POST /v1/events``: validate a batch with the contract, then append it in one round trip.

A batch is **all or nothing**: if any event is invalid, the answer is 422
listing every bad event by index and field, and nothing is written. Valid
batches are appended inside one MULTI/EXEC pipeline, so a Redis failure
cannot leave half of a batch behind either (the client gets 503 and may
retry the whole batch; ``event_id`` makes the retry safe to count once).
"""

from __future__ import annotations

import time
from typing import Any

import orjson
import redis.asyncio as aioredis

from online.contract import Event, EventError, Settings, parse_event, stream_fields
from serving.http import HTTPError

__all__ = ["append_events", "parse_batch"]

_MAX_REPORTED_ERRORS = 100


def parse_batch(body: bytes, settings: Settings, now: float | None = None) -> list[Event]:
    """Decode and validate a body holding one event object or an array of them.

    >>> from online.contract import Settings
    >>> s = Settings.from_env({})
    >>> [e.item_id for e in parse_batch(b'[{"user_id":"u","item_id":"a","type":"view"}]', s)]
    ['a']
    >>> parse_batch(b'[{"user_id":"u","type":"view"}]', s)
    Traceback (most recent call last):
    ...
    serving.http.HTTPError: events[0].item_id: is required
    """
    if not body.strip():
        raise HTTPError(400, "bad_json", "body: empty; expected an event object or an array of events", field="body")
    try:
        decoded: Any = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise HTTPError(400, "bad_json", f"body: not valid UTF-8 JSON ({exc})", field="body") from None
    if isinstance(decoded, dict):
        decoded = [decoded]
    elif not isinstance(decoded, list):
        raise HTTPError(400, "bad_json", f"body: expected an object or an array, got {type(decoded).__name__}",
                        field="body")
    if not decoded:
        raise HTTPError(400, "bad_json", "body: the array holds no events", field="body")
    if len(decoded) > settings.max_batch:
        raise HTTPError(413, "batch_too_large", f"body: {len(decoded)} events; the limit is {settings.max_batch}",
                        field="body")
    now = time.time() if now is None else now
    events: list[Event] = []
    errors: list[dict[str, Any]] = []
    for index, obj in enumerate(decoded):
        try:
            events.append(parse_event(obj, now=now, weights=settings.weights))
        except EventError as exc:
            if len(errors) < _MAX_REPORTED_ERRORS:
                errors.append({"index": index, "field": exc.field, "message": exc.message})
    if errors:
        first = errors[0]
        raise HTTPError(
            422, "invalid_event", f"events[{first['index']}].{first['field']}: {first['message']}",
            field=first["field"], index=first["index"], errors=errors, rejected=len(decoded),
        )
    return events


async def append_events(client: aioredis.Redis, settings: Settings, events: list[Event]) -> list[str]:
    """XADD every event to its user's partition, atomically, in one round trip."""
    keys = settings.keys
    pipe = client.pipeline(transaction=True)
    for event in events:
        pipe.xadd(keys.stream_for_user(event.user_id), stream_fields(event),  # type: ignore[arg-type]
                  maxlen=settings.stream_maxlen, approximate=True)
    ids = await pipe.execute()
    return [i.decode() if isinstance(i, bytes) else str(i) for i in ids]
