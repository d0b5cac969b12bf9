"""Append validated events to their partitioned streams, one round trip per batch.

Examples
--------
>>> from flows.embedded_redis import EmbeddedRedis
>>> from flows.redis_client import connect
>>> from online.contract import Event, RedisKeys
>>> with EmbeddedRedis() as server:
...     writer = EventWriter(connect(server.url), RedisKeys("doc", 2))
...     ids = writer.append([Event("u1", "i1", "view", 1.7e9), Event("u2", "i2", "view", 1.7e9)])
...     len(ids), sum(writer.client.xlen(k) for k in writer.keys.streams())
(2, 2)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis

from flows.redis_client import RedisClient
from online.contract import Event, RedisKeys, stream_fields

__all__ = ["EventWriter"]


class EventWriter:
    """Writes events with ``XADD ... MAXLEN ~ maxlen`` inside one MULTI/EXEC.

    The transaction makes a batch all-or-nothing on a single Redis server, so
    a failure never leaves half of a batch in the streams. In Redis Cluster a
    transaction cannot span slots and every partition stream has its own, so
    there each partition's share of the batch is one MULTI/EXEC (all or
    nothing per partition; a failure part-way may leave earlier partitions'
    shares written, as ``POST /v1/events`` does, see :mod:`serving.ingest`).
    """

    def __init__(self, client: RedisClient, keys: RedisKeys, maxlen: int = 1_000_000):
        self.client = client
        self.keys = keys
        self.maxlen = maxlen

    def append(self, events: Sequence[Event]) -> list[str]:
        """Append ``events``; returns their stream entry ids in order."""
        if not events:
            return []
        if not isinstance(self.client, redis.RedisCluster):
            return self._append(self.client, [(self.keys.stream_for_user(e.user_id), e) for e in events])
        by_stream: dict[str, list[int]] = {}
        for index, event in enumerate(events):
            by_stream.setdefault(self.keys.stream_for_user(event.user_id), []).append(index)
        ids: list[str] = [""] * len(events)
        for stream, indexes in by_stream.items():
            for index, entry_id in zip(indexes, self._append(self.client, [(stream, events[i]) for i in indexes]),
                                       strict=True):
                ids[index] = entry_id
        return ids

    def _append(self, client: RedisClient, writes: list[tuple[str, Event]]) -> list[str]:
        """One MULTI/EXEC of XADDs (in a cluster, all of ``writes`` must share one slot)."""
        pipe = client.pipeline(transaction=True)
        for stream, event in writes:
            pipe.xadd(stream, stream_fields(event), maxlen=self.maxlen, approximate=True)  # type: ignore[arg-type]
        replies: list[Any] = pipe.execute()
        return [i.decode() if isinstance(i, bytes) else str(i) for i in replies]

