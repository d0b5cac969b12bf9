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

__all__ = ["StreamProgress", "entry_ms"]


def entry_ms(entry_id: str) -> int:
    """The milliseconds part of a stream entry id (Redis gives new entries the time they were added).

    >>> entry_ms("1700000000000-7"), entry_ms("0-0")
    (1700000000000, 0)
    """
    return int(entry_id.partition("-")[0])


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
