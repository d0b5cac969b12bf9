"""``POST /v1/events``: validate a batch with the contract, then append it in one round trip.

A batch is **all or nothing**: if any event is invalid, the answer is 422
listing every bad event by index and field, and nothing is written. Valid
batches are appended inside one MULTI/EXEC pipeline, so a Redis failure
cannot leave half of a batch behind either (the client gets 503 and may
retry the whole batch; ``event_id`` makes the retry safe to count once).

In Redis Cluster a transaction cannot span hash slots, and each event
stream partition has its own slot (``lr:events:{p<n>}``). There the batch is
split by partition and each partition's share is appended in its own
MULTI/EXEC; the shares go out concurrently, so it is still one round trip
of wall time. Validation is unchanged (a bad event still means nothing is
written), and each partition's share is all or nothing, but a Redis failure
part-way can leave the shares of some partitions written and others not.
The client gets 503 either way; retrying the whole batch with ``event_id``
set is then safe, because the flow counts an ``event_id`` once.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
import redis.asyncio as aioredis

from online.contract import Event, EventError, Settings, parse_event, stream_fields
from serving.api import EventRefusal
from serving.backlog import StreamBacklog
from serving.http import HTTPError
from serving.redis_connect import AsyncRedisClient

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
    errors: list[EventRefusal] = []
    for index, obj in enumerate(decoded):
        try:
            events.append(parse_event(obj, now=now, weights=settings.weights))
        except EventError as exc:
            if len(errors) < _MAX_REPORTED_ERRORS:
                errors.append(EventRefusal(index=index, field=exc.field, message=exc.message))
    if errors:
        first = errors[0]
        raise HTTPError(
            422, "invalid_event", f"events[{first.index}].{first.field}: {first.message}",
            field=first.field, index=first.index, errors=errors, rejected=len(decoded),
        )
    return events


def _decoded(ids: list[Any]) -> list[str]:
    return [i.decode() if isinstance(i, bytes) else str(i) for i in ids]


def _xadd(pipe: Any, stream: str, event: Event, trim_to: str | None) -> None:
    if trim_to is None:
        pipe.xadd(stream, stream_fields(event))
    else:  # MINID, never MAXLEN: only what the flow can never need again is trimmed
        pipe.xadd(stream, stream_fields(event), minid=trim_to, approximate=True)


async def append_events(client: AsyncRedisClient, settings: Settings, events: list[Event],
                        backlog: StreamBacklog | None = None) -> list[str]:
    """XADD every event to its user's partition, in one round trip; returns the entry ids in event order.

    One MULTI/EXEC for the whole batch on a single server; one per partition in Redis Cluster.
    With ``backlog``, a partition at its bound refuses the whole batch (503, nothing written) and
    each append trims its partition to the flow's safe point; without, nothing is trimmed.
    """
    keys = settings.keys
    streams = [keys.stream_for_user(event.user_id) for event in events]
    by_stream: dict[str, list[int]] = {}
    for index, stream in enumerate(streams):
        by_stream.setdefault(stream, []).append(index)
    counts = {stream: len(indexes) for stream, indexes in by_stream.items()}
    trim = {s: d.trim_to for s, d in (await backlog.decisions(client, counts)).items()} if backlog else {}
    if not isinstance(client, aioredis.RedisCluster):
        pipe = client.pipeline(transaction=True)
        for stream, event in zip(streams, events, strict=True):
            _xadd(pipe, stream, event, trim.get(stream))
        appended = _decoded(await pipe.execute())
        if backlog:
            backlog.appended(counts)
        return appended

    async def append_share(stream: str, indexes: list[int]) -> list[Any]:
        pipe = client.pipeline(transaction=True)  # one slot: the cluster client sends MULTI/EXEC to its master
        for index in indexes:
            _xadd(pipe, stream, events[index], trim.get(stream))
        return list(await pipe.execute())

    # Every share runs to its end before an error is raised: no write is left in flight behind a 503.
    results = await asyncio.gather(*(append_share(s, ix) for s, ix in by_stream.items()), return_exceptions=True)
    if backlog:
        backlog.appended({s: n for (s, n), r in zip(counts.items(), results, strict=True)
                          if not isinstance(r, BaseException)})
    for result in results:
        if isinstance(result, BaseException):
            raise result
    ids: list[str] = [""] * len(events)
    for indexes, share_ids in zip(by_stream.values(), results, strict=True):
        for index, entry_id in zip(indexes, _decoded(share_ids), strict=True):  # type: ignore[arg-type]
            ids[index] = entry_id
    return ids
