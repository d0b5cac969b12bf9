"""How far the dataflow has read each event stream: the flow writes it, the server reads it.

The flow's source publishes, about once a second per stream partition, a
:class:`StreamProgress` in the hash ``RedisKeys.flow_progress()`` (field: the
stream key). It says three things:

* ``read_id``: the last entry the flow has read from the stream;
* ``safe_id``: the newest entry that no restart can need again. With recovery
  on, it is the position of the snapshot *before* the last one taken (the last
  one may not be committed yet); without recovery it is ``read_id``. Producers
  trim the stream to it (``XADD ... MINID``) and never further, so nothing the
  flow has not read, or may have to read again after ``kill -9``, is trimmed;
* ``seen_ms``: wall-clock milliseconds of the publication: a heartbeat. The
  server's ``/readyz`` turns red when it is older than ``LIVERECO_FLOW_STALE_S``
  while the stream holds entries after ``read_id`` (accepted, not processed).

>>> p = StreamProgress("1700000000000-3", "1699999990000-0", 1700000001234)
>>> p.encode()
b'1700000000000-3 1699999990000-0 1700000001234'
>>> StreamProgress.decode(p.encode()) == p
True
>>> p.read_ms
1700000000000
>>> StreamProgress.decode(b"garbage")
Traceback (most recent call last):
...
ValueError: flow progress b'garbage': expected '<read_id> <safe_id> <seen_ms>'
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AppendDecision", "StreamProgress", "append_decision", "entry_ms", "entry_order", "flow_stalled"]


def entry_ms(entry_id: str) -> int:
    """The milliseconds part of a stream entry id (Redis gives new entries the time they were added).

    >>> entry_ms("1700000000000-7"), entry_ms("0-0")
    (1700000000000, 0)
    """
    return int(entry_id.partition("-")[0])


def entry_order(entry_id: str) -> tuple[int, int]:
    """A stream entry id as a sortable pair (milliseconds, sequence).

    >>> entry_order("1700000000000-7") < entry_order("1700000000000-10") < entry_order("1700000000001")
    True
    """
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


@dataclass(frozen=True, slots=True)
class StreamProgress:
    """One stream partition's read position, the position safe to trim to, and when it was published."""

    read_id: str
    safe_id: str
    seen_ms: int

    @property
    def read_ms(self) -> int:
        return entry_ms(self.read_id)

    def encode(self) -> bytes:
        return f"{self.read_id} {self.safe_id} {self.seen_ms}".encode()

    @classmethod
    def decode(cls, raw: bytes | str) -> StreamProgress:
        text = raw.decode() if isinstance(raw, bytes) else raw
        parts = text.split(" ")
        try:
            read_id, safe_id, seen = parts
            entry_ms(read_id), entry_ms(safe_id)
            return cls(read_id, safe_id, int(seen))
        except ValueError:
            raise ValueError(f"flow progress {raw!r}: expected '<read_id> <safe_id> <seen_ms>'") from None


@dataclass(frozen=True, slots=True)
class AppendDecision:
    """What a producer may do to one stream partition before appending to it."""

    full: bool
    """The partition holds the bound or more: append nothing, answer 503 / wait and retry."""
    trim_to: str | None
    """``XADD ... MINID ~ trim_to``: entries before it are ones the flow can never need again; None: trim nothing."""


def append_decision(length: int, bound: int, progress: StreamProgress | None) -> AppendDecision:
    """Backpressure and trimming for one partition, the same rule for the server and every producer.

    ``length`` is the partition's XLEN (a cached value is fine: it is a soft bound),
    ``bound`` is ``LIVERECO_STREAM_MAXLEN``, ``progress`` the flow's last
    :class:`StreamProgress` on it (None: the flow has never published one).
    Trimming never goes past ``safe_id`` (nor ``read_id``, should a flow ever
    publish them out of order), and without progress nothing is trimmed: no
    unread event, and none the flow may re-read after a crash, is ever dropped.
    A partition at or over the bound is full: the producer must wait instead.

    >>> append_decision(10, 100, None)
    AppendDecision(full=False, trim_to=None)
    >>> append_decision(100, 100, None)
    AppendDecision(full=True, trim_to=None)
    >>> append_decision(5, 100, StreamProgress("1700000000500-0", "1700000000400-2", 1700000001000))
    AppendDecision(full=False, trim_to='1700000000400-2')
    >>> append_decision(5, 100, StreamProgress("1700000000300-0", "1700000000400-2", 1700000001000))
    AppendDecision(full=False, trim_to='1700000000300-0')
    >>> append_decision(5, 100, StreamProgress("0-0", "0-0", 1700000001000))
    AppendDecision(full=False, trim_to=None)
    """
    trim_to: str | None = None
    if progress is not None:
        trim_to = min(progress.safe_id, progress.read_id, key=entry_order)
        if entry_order(trim_to) <= (0, 0):
            trim_to = None
    return AppendDecision(full=length >= bound, trim_to=trim_to)


def flow_stalled(now_ms: int, stale_s: float, progress: StreamProgress | None, oldest_unread_id: str | None) -> bool:
    """Whether a partition's events are accepted but not processed: the readiness rule.

    ``oldest_unread_id`` is the first entry after the flow's ``read_id`` (the
    first entry of the stream when there is no progress), None when there is
    none. Stalled when entries wait and the flow's heartbeat is older than
    ``stale_s``, or, with no progress at all, when the oldest entry waiting is.

    >>> p = StreamProgress("1700000000000-0", "1700000000000-0", 1700000000000)
    >>> flow_stalled(1700000020000, 15.0, p, None), flow_stalled(1700000020000, 15.0, p, "1700000019000-0")
    (False, True)
    >>> flow_stalled(1700000010000, 15.0, p, "1700000009000-0")  # a fresh heartbeat: it is on its way
    False
    >>> flow_stalled(1700000020000, 15.0, None, "1700000010000-0"), flow_stalled(1700000020000, 15.0, None, "1700000000000-0")
    (False, True)
    """
    if oldest_unread_id is None:
        return False
    since_ms = progress.seen_ms if progress is not None else entry_ms(oldest_unread_id)
    return now_ms - since_ms > stale_s * 1000.0
