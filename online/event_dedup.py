"""Which ``event_id``\\ s a user has already sent: de-duplication over a horizon of event time.

Producers retry: a ``POST /v1/events`` that timed out is sent again, a
stream entry is written twice. An event carrying an ``event_id`` the user
already sent is a retry and must count once. :class:`EventDedup` remembers,
per user, the 64-bit hash of each id with the event time it first came with,
and forgets an id once the user's clock has moved ``horizon_s`` past it, or
once ``max_ids`` ids of later event time are remembered. The guarantee
(``docs/deduplication.md``):

* a retry counts once if its id is still remembered when it arrives: the
  first event's time is within ``horizon_s`` of the user's clock (the latest
  event time among the user's events with an id, the retry's own included)
  and fewer than ``max_ids`` ids of the same or later event time came since;
* a retry is recognised by its id alone; its ``ts`` only moves the clock, so a
  retry stamped more than ``horizon_s`` after the first counts again;
* an event more than ``horizon_s`` behind the user's clock counts and is not
  remembered (its retries count again);
* events without an ``event_id`` are never de-duplicated (and do not move the clock);
* two different ids of one user are taken for one with probability about
  ``n / 2**64`` per event (``n`` ids remembered: ~1e-16 at 2,000).

The ids are kept in three flat arrays, 24 bytes each: hashes and times in
event-time order (what expiry and the cap remove, from the front) and the
same hashes sorted (membership by binary search). A snapshot pickles the
first two as bytes, 16 bytes per id; the sorted copy is rebuilt on load.

Examples
--------
>>> seen = EventDedup(horizon_s=3600.0, max_ids=1000)
>>> seen.is_duplicate("e1", ts=0.0), seen.is_duplicate("e2", ts=10.0), seen.is_duplicate("e1", ts=0.0)
(False, False, True)

Expiry by event time: once the user's clock is more than an hour past ``e1``'s
time, a retry of ``e1`` counts again (and, that far behind, is not remembered).

>>> seen.is_duplicate("e3", ts=3600.0), seen.is_duplicate("e1", ts=0.0)
(False, True)
>>> seen.is_duplicate("e4", ts=3600.5), seen.is_duplicate("e1", ts=0.0), len(seen)
(False, False, 3)

The cap: at most ``max_ids`` ids, the oldest by event time make way.

>>> few = EventDedup(horizon_s=3600.0, max_ids=2)
>>> [few.is_duplicate(e, ts) for e, ts in [("a", 1.0), ("b", 2.0), ("c", 3.0), ("b", 3.0), ("a", 3.0)]]
[False, False, False, True, False]

A snapshot is its settings, its clock and 16 bytes per id:

>>> import pickle
>>> copy = pickle.loads(pickle.dumps(few))
>>> copy.is_duplicate("c", ts=3.0), copy.is_duplicate("b", ts=3.0), copy.horizon_s, copy.max_ids
(True, False, 3600.0, 2)
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from hashlib import blake2b
from typing import Any

__all__ = ["EventDedup", "id_hash"]


def id_hash(event_id: str) -> int:
    """The 64-bit hash an id is remembered by (BLAKE2b: the same in every process and after a restart)."""
    return int.from_bytes(blake2b(event_id.encode(), digest_size=8).digest(), "little")


class EventDedup:
    """The ``event_id``\\ s one user sent within ``horizon_s`` of event time, at most ``max_ids`` of them.

    Parameters
    ----------
    horizon_s
        Seconds of event time an id is remembered after the user's clock passed its time (``>= 0``).
    max_ids
        Ids remembered at most (``>= 1``); beyond, the one with the oldest event time is forgotten.
    """

    __slots__ = ("_clock", "_hashes", "_order", "_times", "horizon_s", "max_ids")

    def __init__(self, horizon_s: float = 86400.0, max_ids: int = 2000) -> None:
        if max_ids < 1 or not horizon_s >= 0.0:
            raise ValueError(f"need max_ids >= 1 and horizon_s >= 0, got {max_ids} and {horizon_s}")
        self.horizon_s = horizon_s
        self.max_ids = max_ids
        self._clock = float("-inf")
        """The latest event time seen (of the events with an id)."""
        self._times = array("d")
        """Each remembered id's event time, ascending (ties in arrival order)."""
        self._order = array("Q")
        """The remembered ids' hashes, in the order of ``_times``."""
        self._hashes = array("Q")
        """The same hashes, sorted: membership by binary search."""

    def __len__(self) -> int:
        return len(self._times)

    def is_duplicate(self, event_id: str, ts: float) -> bool:
        """Whether ``event_id`` is remembered (a retry); if not, remember it with time ``ts``."""
        if ts > self._clock:
            self._clock = ts
            self._expire(ts - self.horizon_s)
        digest = id_hash(event_id)
        hashes = self._hashes
        at = bisect_left(hashes, digest)
        if at < len(hashes) and hashes[at] == digest:
            return True
        times = self._times
        if ts < self._clock - self.horizon_s:
            return False  # behind the horizon already: counted, not remembered
        if len(times) >= self.max_ids:
            if ts < times[0]:
                return False  # older than every remembered id: it would be the one to go
            self._forget(1)
        hashes.insert(bisect_left(hashes, digest), digest)
        if not times or ts >= times[-1]:
            times.append(ts)
            self._order.append(digest)
        else:  # out of event-time order
            place = bisect_right(times, ts)
            times.insert(place, ts)
            self._order.insert(place, digest)
        return False

    def _expire(self, cutoff: float) -> None:
        """Forget the ids first seen before ``cutoff``."""
        times = self._times
        if times and times[0] < cutoff:
            self._forget(bisect_left(times, cutoff))

    def _forget(self, n: int) -> None:
        """Forget the ``n`` ids of oldest event time."""
        order, hashes = self._order, self._hashes
        for k in range(n):
            del hashes[bisect_left(hashes, order[k])]
        del self._times[:n]
        del order[:n]

    def __reduce__(self) -> tuple[Any, ...]:  # compiled by mypyc: rebuilt through __init__, then its state
        return EventDedup, (self.horizon_s, self.max_ids), (self._clock, self._times.tobytes(), self._order.tobytes())

    def __setstate__(self, state: tuple[float, bytes, bytes]) -> None:
        self._clock, times, order = state
        self._times = array("d")
        self._times.frombytes(times)
        self._order = array("Q")
        self._order.frombytes(order)
        self._hashes = array("Q", sorted(self._order))
