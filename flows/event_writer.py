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

import redis

from online.contract import Event, RedisKeys, stream_fields

__all__ = ["EventWriter"]


class EventWriter:
    """Writes events with ``XADD ... MAXLEN ~ maxlen`` inside one MULTI/EXEC.

    The transaction makes a batch all-or-nothing on a single Redis server, so
    a failure never leaves half of a batch in the streams.
    """

    def __init__(self, client: redis.Redis, keys: RedisKeys, maxlen: int = 1_000_000):
        self.client = client
        self.keys = keys
        self.maxlen = maxlen

    def append(self, events: Sequence[Event]) -> list[str]:
        """Append ``events``; returns their stream entry ids in order."""
        if not events:
            return []
        pipe = self.client.pipeline(transaction=True)
        for event in events:
            pipe.xadd(
                self.keys.stream_for_user(event.user_id),
                stream_fields(event),  # type: ignore[arg-type]
                maxlen=self.maxlen,
                approximate=True,
            )
        return [i.decode() if isinstance(i, bytes) else str(i) for i in pipe.execute()]

