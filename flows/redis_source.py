"""A Bytewax source reading the partitioned Redis event streams.

One Bytewax partition per stream key. ``next_batch`` never blocks: it issues
a non-blocking ``XREAD`` after the last entry id it handed on, and when the
stream is idle it asks to be woken after ``poll_interval_s``. That entry id
is the partition's resume state, so with recovery on, a restarted flow
re-reads exactly what came after the last consistent snapshot.

When Redis fails (down, restarting, loading its data), ``next_batch`` emits
nothing and asks to be woken later, 50 ms after the first failure and twice as
long after each further one, up to 2 s (:class:`~flows.redis_client.Backoff`:
one warning when the outage begins, one line when reads succeed again). The
position only moves past entries the partition has emitted, so a snapshot
taken during the outage holds the last entry handed on and the first read
after it starts right after that entry.

Every second each partition also publishes its progress
(:class:`~online.contract.progress.StreamProgress` in ``RedisKeys.flow_progress()``):
the last entry read, the entry up to which producers may trim (the position
of the snapshot before the last one: a restart resumes from a committed
snapshot, never from before that one), and a heartbeat. The server answers
``POST /v1/events`` with 503 rather than trimming unread events, and
``/readyz`` turns red when the heartbeat stops while events wait.

Every second each partition also exports its lag: entries in the stream
after the last one read (counted in Redis, capped at :data:`LAG_CAP`), the
seconds between that entry and the newest, and the stream's length. The
producers trim each stream to about ``LIVERECO_STREAM_MAXLEN`` entries, so
``lag_entries / length`` near 1 means events are about to be trimmed unread
(the ``LiverecoFlowNearTrim`` alert).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from typing_extensions import override

from flows.metrics import REDIS_ERRORS, STREAM_LAG_ENTRIES, STREAM_LAG_SECONDS, STREAM_LENGTH
from flows.redis_client import REDIS_EXCEPTIONS, Backoff, RedisClient, connect
from online.contract import RedisKeys, StreamProgress
from online.contract.progress import entry_order

__all__ = ["RedisStreamSource", "StreamEntry"]

log = logging.getLogger(__name__)

LAG_INTERVAL_S = 1.0
"""How often each partition measures its lag."""
LAG_CAP = 10_000
"""Entries counted past the last one read; a lag gauge at this value means "at least"."""
_COUNT_AFTER = "return #redis.call('XRANGE', KEYS[1], ARGV[1], '+', 'COUNT', tonumber(ARGV[2]))"



@dataclass(slots=True)  # never mutated, but not frozen: a frozen __init__ costs ~6x, per event
class StreamEntry:
    """One raw stream entry: where it came from, its id, its fields as stored."""

    stream: str
    entry_id: str
    fields: dict[bytes, bytes]


class _StreamPartition(StatefulSourcePartition[StreamEntry, str]):
    def __init__(self, client: RedisClient, stream: str, last_id: str, read_count: int,
                 poll_interval_s: float, stop_at_end: bool, progress_key: str | None = None,
                 catalog_loaded: threading.Event | None = None):
        self._client = client
        self._catalog_loaded = catalog_loaded
        """Set once the flow's catalog source has read the catalog: no event is handed on before (see the class)."""
        self._stream = stream
        self._last_id = last_id
        self._progress_key = progress_key
        self._safe_id = last_id
        """Entries up to this one are never needed again: a restart resumes after it or later."""
        self._snapshots: list[str] = []
        self._controls: list[str] = []
        """Control entries read (erase, merge, served: they name users), deleted once no restart can need them."""
        self._read_count = read_count
        self._poll = timedelta(seconds=poll_interval_s)
        self._stop_at_end = stop_at_end
        self._awake: datetime | None = None
        self._backoff = Backoff(f"reading {stream}", log)
        self._lag_due = 0.0

    @override
    def next_batch(self) -> list[StreamEntry]:
        if self._catalog_loaded is not None and not self._catalog_loaded.is_set():
            self._awake = datetime.now(UTC) + self._poll  # events wait for their items' catalog facts
            return []
        try:
            reply: Any = self._client.xread({self._stream: self._last_id}, count=self._read_count)
        except REDIS_EXCEPTIONS as exc:
            REDIS_ERRORS.labels("read").inc()
            self._awake = datetime.now(UTC) + timedelta(seconds=self._backoff.failed(exc))
            return []  # the position stays on the last entry emitted
        self._backoff.succeeded()
        if not reply:
            self._measure_lag()
            if self._stop_at_end:
                raise StopIteration
            self._awake = datetime.now(UTC) + self._poll
            return []
        self._awake = None
        entries = reply[0][1]
        stream = self._stream
        batch = [StreamEntry(stream, eid.decode(), fields) for eid, fields in entries]
        self._controls += [entry.entry_id for entry in batch if b"c" in entry.fields]
        self._last_id = batch[-1].entry_id
        self._measure_lag()
        return batch

    def _measure_lag(self) -> None:
        """Every ``LAG_INTERVAL_S``, export how far behind this partition is: entries (capped), seconds, stream length."""
        now = time.monotonic()
        if now < self._lag_due:
            return
        self._lag_due = now + LAG_INTERVAL_S
        try:
            # Three small calls, not a pipeline: cluster pipelines cannot carry EVAL.
            behind: Any = self._client.eval(_COUNT_AFTER, 1, self._stream,
                                            "(" + self._last_id if self._last_id != "0-0" else "-", LAG_CAP)
            newest: Any = self._client.xrevrange(self._stream, count=1)
            length: Any = self._client.xlen(self._stream)
        except REDIS_EXCEPTIONS as exc:
            log.debug("measuring the lag of %s failed: %s", self._stream, exc)
            return
        STREAM_LAG_ENTRIES.labels(self._stream).set(int(behind))
        STREAM_LENGTH.labels(self._stream).set(int(length))
        newest_ms = int(newest[0][0].split(b"-")[0]) if newest else 0
        read_ms = int(self._last_id.split("-")[0])
        STREAM_LAG_SECONDS.labels(self._stream).set(max(0, newest_ms - read_ms) / 1000.0 if behind else 0.0)
        self._publish_progress()

    def _publish_progress(self) -> None:
        """Tell producers and the server how far this partition has read, up to where they may trim, and that it lives."""
        if self._progress_key is None:
            return
        progress = StreamProgress(self._last_id, self._safe_id, int(time.time() * 1000))
        try:
            self._client.hset(self._progress_key, self._stream, progress.encode())
            self._delete_controls()
        except REDIS_EXCEPTIONS as exc:
            log.debug("publishing the progress of %s failed: %s", self._stream, exc)

    def _delete_controls(self) -> None:
        """``XDEL`` the control entries at or before the safe point: a restart resumes after them."""
        safe = entry_order(self._safe_id)
        done = [entry_id for entry_id in self._controls if entry_order(entry_id) <= safe]
        if done:
            for start in range(0, len(done), 1000):  # impression records come one per list answered: many
                self._client.xdel(self._stream, *done[start:start + 1000])
            self._controls = [entry_id for entry_id in self._controls if entry_order(entry_id) > safe]

    @override
    def next_awake(self) -> datetime | None:
        return self._awake

    @override
    def snapshot(self) -> str:
        # The snapshot before this one is the oldest a restart can resume from once this one is committed.
        self._snapshots.append(self._last_id)
        if len(self._snapshots) > 2:
            del self._snapshots[0]
        if len(self._snapshots) == 2:
            self._safe_id = self._snapshots[0]
        return self._last_id

    @override
    def close(self) -> None:
        self._client.close()


class RedisStreamSource(FixedPartitionedSource[StreamEntry, str]):
    """Reads every event stream of ``keys``, one partition per stream.

    ``stop_at_end`` ends each partition when it has read everything present
    (for replays, evaluations and tests); live runs leave it off.

    ``catalog_loaded`` (the flow's :class:`~flows.catalog_source.CatalogSource` sets it once it has read the
    catalog as it stood at start-up) holds events back until then: an event read before its item's catalog
    facts would be learned without its categories (no category trending, no affinity), for good.
    """

    def __init__(self, redis_url: str, keys: RedisKeys, *, read_count: int = 1000,
                 poll_interval_s: float = 0.005, stop_at_end: bool = False,
                 catalog_loaded: threading.Event | None = None):
        self.catalog_loaded = catalog_loaded
        self.redis_url = redis_url
        self.keys = keys
        self.read_count = read_count
        self.poll_interval_s = poll_interval_s
        self.stop_at_end = stop_at_end

    @override
    def list_parts(self) -> list[str]:
        return self.keys.streams()

    @override
    def build_part(self, step_id: str, for_part: str, resume_state: str | None) -> _StreamPartition:
        return _StreamPartition(connect(self.redis_url), for_part, resume_state or "0-0", self.read_count,
                                self.poll_interval_s, self.stop_at_end,
                                None if self.stop_at_end else self.keys.flow_progress(), self.catalog_loaded)
