"""Backpressure for ``POST /v1/events`` and the flow's health for ``/readyz``, from the flow's published progress.

The flow publishes, about once a second, a :class:`~online.contract.StreamProgress`
per stream partition (``RedisKeys.flow_progress()``). From it and each
partition's XLEN, :func:`online.contract.append_decision` says what an append
may trim (``MINID ~ safe_id``; nothing without progress) and whether the
partition is full (``LIVERECO_STREAM_MAXLEN`` entries or more: answer 503 with
``Retry-After`` and write nothing, instead of trimming unread events).

:class:`StreamBacklog` keeps the lengths and the progress per server process,
refreshed at most every ``ttl_s`` (0.2 s) in one pipelined round trip (plus an
exact trim of each partition whose safe point moved, so a full partition drains
as soon as the flow catches up, even while every append is refused), and counts its own
appends in between, so the hot path stays the one round trip of the append.
The bound is soft across processes: each may append up to ``ttl_s`` worth of
events past it before its next refresh.

:func:`flow_status` is the readiness rule (:func:`online.contract.flow_stalled`)
for every partition, read when ``/readyz`` or ``/metrics`` is asked.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from online.contract import AppendDecision, Settings, StreamProgress, append_decision, flow_stalled
from online.contract.progress import entry_ms
from serving.api import StreamState
from serving.http import HTTPError
from serving.redis_connect import AsyncRedisClient

__all__ = ["RETRY_AFTER_S", "StreamBacklog", "StreamStatus", "flow_status", "read_progress"]

RETRY_AFTER_S = 1
"""What a refused producer is told to wait: about the flow's progress period."""


def _text(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def read_progress(raw: dict[Any, Any]) -> dict[str, StreamProgress]:
    """The flow's progress hash, decoded; malformed fields are skipped (treated as no progress)."""
    progress: dict[str, StreamProgress] = {}
    for field, value in raw.items():
        try:
            progress[_text(field)] = StreamProgress.decode(value)
        except (ValueError, UnicodeDecodeError):
            continue
    return progress


class StreamBacklog:
    """Per-process cache of partition lengths and flow progress; the append decision for each partition."""

    def __init__(self, settings: Settings, ttl_s: float = 0.2):
        self.settings = settings
        self.ttl_s = ttl_s
        self.streams = settings.keys.streams()
        self.lengths: dict[str, int] = {}
        self.progress: dict[str, StreamProgress] = {}
        self.trimmed_to: dict[str, str] = {}
        self.refreshed_at = float("-inf")
        self._refreshing: asyncio.Task[None] | None = None

    async def refresh(self, client: AsyncRedisClient) -> None:
        """The progress hash and every partition's length in one round trip; a second one, exact
        ``XTRIM MINID``, only for partitions whose safe point moved since this process last trimmed them."""
        pipe = client.pipeline(transaction=False)
        pipe.hgetall(self.settings.keys.flow_progress())
        for stream in self.streams:
            pipe.xlen(stream)
        replies = await pipe.execute()
        self.progress = read_progress(replies[0])
        self.lengths.update(zip(self.streams, (int(n) for n in replies[1:]), strict=True))
        moved = {s: t for s in self.streams
                 if (t := append_decision(0, 1, self.progress.get(s)).trim_to) and t != self.trimmed_to.get(s)}
        if moved:
            pipe = client.pipeline(transaction=False)
            for stream, trim_to in moved.items():
                pipe.xtrim(stream, minid=trim_to, approximate=False)  # exact: XLEN then counts unreleased entries
                pipe.xlen(stream)
            replies = await pipe.execute()
            self.lengths.update(zip(moved, (int(n) for n in replies[1::2]), strict=True))
            self.trimmed_to.update(moved)
        self.refreshed_at = time.monotonic()

    async def decisions(self, client: AsyncRedisClient, counts: dict[str, int]) -> dict[str, AppendDecision]:
        """The decision for each partition in ``counts`` (stream -> events to append); 503 when one is full."""
        if time.monotonic() - self.refreshed_at > self.ttl_s:
            if self._refreshing is None or self._refreshing.done():
                self._refreshing = asyncio.ensure_future(self.refresh(client))
            await asyncio.shield(self._refreshing)
        bound = self.settings.stream_maxlen
        decisions = {s: append_decision(self.lengths.get(s, 0), bound, self.progress.get(s)) for s in counts}
        full = [s for s, d in decisions.items() if d.full]
        if full:
            stream = full[0]
            raise HTTPError(
                503, "backlog_full",
                f"{stream}: holds {self.lengths[stream]} entries the flow has not released; the bound"
                f" (LIVERECO_STREAM_MAXLEN) is {bound}. Nothing was written; retry after {RETRY_AFTER_S} s",
                retry_after_s=RETRY_AFTER_S, stream=stream, entries=self.lengths[stream], bound=bound)
        return decisions

    def appended(self, counts: dict[str, int]) -> None:
        """Count this process's appends until the next refresh reads the true lengths."""
        for stream, n in counts.items():
            self.lengths[stream] = self.lengths.get(stream, 0) + n


@dataclass(frozen=True, slots=True)
class StreamStatus:
    """One partition as ``/readyz`` sees it."""

    stream: str
    entries: int
    oldest_unread_age_s: float | None
    heartbeat_age_s: float | None
    stalled: bool

    def as_struct(self) -> StreamState:
        return StreamState(stream=self.stream, entries=self.entries, oldest_unread_age_s=self.oldest_unread_age_s,
                           heartbeat_age_s=self.heartbeat_age_s)


async def flow_status(client: AsyncRedisClient, settings: Settings) -> list[StreamStatus]:
    """Every partition: its length, its oldest unread entry's age, the flow's heartbeat age, stalled or not."""
    streams = settings.keys.streams()
    progress = read_progress(await client.hgetall(settings.keys.flow_progress()))
    pipe = client.pipeline(transaction=False)
    for stream in streams:
        pipe.xlen(stream)
        seen = progress.get(stream)
        pipe.xrange(stream, min=f"({seen.read_id}" if seen is not None else "-", max="+", count=1)
    replies = await pipe.execute()
    now_ms = int(time.time() * 1000)
    statuses = []
    for k, stream in enumerate(streams):
        length, first = int(replies[2 * k]), replies[2 * k + 1]
        oldest = _text(first[0][0]) if first else None
        seen = progress.get(stream)
        statuses.append(StreamStatus(
            stream, length,
            None if oldest is None else max(0.0, (now_ms - entry_ms(oldest)) / 1000.0),
            None if seen is None else max(0.0, (now_ms - seen.seen_ms) / 1000.0),
            flow_stalled(now_ms, settings.flow_stale_s, seen, oldest)))
    return statuses
