"""Append validated events to their partitioned streams, one round trip per batch, waiting while the flow is behind.

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

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import redis

from flows.redis_client import RedisClient
from online.contract import AppendDecision, Event, RedisKeys, StreamProgress, append_decision, stream_fields
from online.contract.backoff import Backoff

__all__ = ["BacklogWaitExpired", "EventWriter"]

log = logging.getLogger("livereco.producer")

_FULL = "%(what)s: %(problem)s: waiting for the flow to read them (nothing is dropped)"
_ROOM = "%(what)s: the partitions have room again after %(outage_s).1f s: appending"


class BacklogWaitExpired(TimeoutError):
    """A partition stayed full (the flow did not read it) for longer than the writer was allowed to wait."""


class EventWriter:
    """Writes events with ``XADD ... MINID ~ <the flow's safe point>`` inside one MULTI/EXEC.

    The transaction makes a batch all-or-nothing on a single Redis server, so
    a failure never leaves half of a batch in the streams. In Redis Cluster a
    transaction cannot span slots and every partition stream has its own, so
    there each partition's share of the batch is one MULTI/EXEC (all or
    nothing per partition; a failure part-way may leave earlier partitions'
    shares written, as ``POST /v1/events`` does, see :mod:`serving.ingest`).

    Backpressure is the server's rule (:func:`online.contract.append_decision`):
    a stream is trimmed only up to the flow's published safe point (nothing
    without progress), and while a partition the batch goes to holds ``maxlen``
    entries or more, :meth:`append` waits (backing off from 50 ms to 1 s,
    re-reading the lengths and the flow's progress) instead of dropping
    anything; after ``max_wait_s`` (None: no limit) it raises
    :class:`BacklogWaitExpired` having written nothing of the batch. Lengths and
    progress are re-read at most every ``ttl_s`` and this writer's own appends
    are counted in between, so a batch costs one round trip.
    """

    def __init__(self, client: RedisClient, keys: RedisKeys, maxlen: int = 1_000_000, *, ttl_s: float = 0.2,
                 max_wait_s: float | None = None, sleep: Callable[[float], None] = time.sleep):
        self.client = client
        self.keys = keys
        self.maxlen = maxlen
        self.ttl_s = ttl_s
        self.max_wait_s = max_wait_s
        self.sleep = sleep
        self.lengths: dict[str, int] = {}
        self.progress: dict[str, StreamProgress] = {}
        self.trimmed_to: dict[str, str] = {}
        self.refreshed_at = float("-inf")
        self.waits = 0
        """How many times :meth:`append` had to wait for a full partition (for reports and tests)."""

    def refresh(self) -> None:
        """The flow's progress and every partition's length in one round trip; a second one, exact
        ``XTRIM MINID``, only for partitions whose safe point moved since this writer last trimmed them."""
        streams = self.keys.streams()
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(self.keys.flow_progress())
        for stream in streams:
            pipe.xlen(stream)
        replies = pipe.execute()
        progress = {}
        for field, value in replies[0].items():
            try:
                progress[field.decode() if isinstance(field, bytes) else str(field)] = StreamProgress.decode(value)
            except (ValueError, UnicodeDecodeError):
                continue
        self.progress = progress
        self.lengths.update(zip(streams, (int(n) for n in replies[1:]), strict=True))
        moved = {s: t for s in streams
                 if (t := append_decision(0, 1, progress.get(s)).trim_to) and t != self.trimmed_to.get(s)}
        if moved:
            pipe = self.client.pipeline(transaction=False)
            for stream, trim_to in moved.items():
                pipe.xtrim(stream, minid=trim_to, approximate=False)  # exact: XLEN then counts unreleased entries
                pipe.xlen(stream)
            self.lengths.update(zip(moved, (int(n) for n in pipe.execute()[1::2]), strict=True))
            self.trimmed_to.update(moved)
        self.refreshed_at = time.monotonic()

    def _decisions(self, counts: dict[str, int]) -> dict[str, AppendDecision]:
        """The decision for each partition of the batch, waiting while one of them is full."""
        backoff = Backoff("event writer", log, first_s=0.05, max_s=1.0, began=_FULL, ended=_ROOM)
        while True:
            if time.monotonic() - self.refreshed_at > self.ttl_s or backoff.failing:
                self.refresh()
            decisions = {s: append_decision(self.lengths.get(s, 0), self.maxlen, self.progress.get(s)) for s in counts}
            full = next((s for s, d in decisions.items() if d.full), None)
            if full is None:
                backoff.succeeded()
                return decisions
            if not backoff.failing:
                self.waits += 1
            delay = backoff.failed(f"{full} holds {self.lengths[full]} entries, the bound (LIVERECO_STREAM_MAXLEN) is"
                                   f" {self.maxlen}")
            if self.max_wait_s is not None and backoff.outage_s >= self.max_wait_s:
                raise BacklogWaitExpired(f"{full} held {self.lengths[full]} entries (bound {self.maxlen}) for"
                                         f" {self.max_wait_s:g} s: is the flow running? Nothing of this batch was"
                                         " written")
            self.sleep(delay)

    def append(self, events: Sequence[Event]) -> list[str]:
        """Append ``events``; returns their stream entry ids in order."""
        if not events:
            return []
        streams = [self.keys.stream_for_user(e.user_id) for e in events]
        counts: dict[str, int] = {}
        for stream in streams:
            counts[stream] = counts.get(stream, 0) + 1
        trim = {s: d.trim_to for s, d in self._decisions(counts).items()}
        if not isinstance(self.client, redis.RedisCluster):
            ids = self._append(self.client, list(zip(streams, events, strict=True)), trim)
        else:
            by_stream: dict[str, list[int]] = {}
            for index, stream in enumerate(streams):
                by_stream.setdefault(stream, []).append(index)
            ids = [""] * len(events)
            for stream, indexes in by_stream.items():
                for index, entry_id in zip(indexes, self._append(self.client, [(stream, events[i]) for i in indexes],
                                                                 trim), strict=True):
                    ids[index] = entry_id
        for stream, n in counts.items():
            self.lengths[stream] = self.lengths.get(stream, 0) + n
        return ids

    def _append(self, client: RedisClient, writes: list[tuple[str, Event]], trim: dict[str, str | None]) -> list[str]:
        """One MULTI/EXEC of XADDs (in a cluster, all of ``writes`` must share one slot)."""
        pipe = client.pipeline(transaction=True)
        for stream, event in writes:
            trim_to = trim.get(stream)
            if trim_to is None:
                pipe.xadd(stream, stream_fields(event))  # type: ignore[arg-type]
            else:
                pipe.xadd(stream, stream_fields(event), minid=trim_to, approximate=True)  # type: ignore[arg-type]
        replies: list[Any] = pipe.execute()
        return [i.decode() if isinstance(i, bytes) else str(i) for i in replies]
