"""Time-decayed, bounded co-visitation neighbours of one item.

Each item keeps the items that users went on to (or came from) within a
session, with forward-decayed evidence (see :mod:`online.forward_decay`).
Memory is bounded by ``capacity``: when full, a new neighbour replaces the
weakest one and inherits its score (the Space-Saving rule, Metwally et al.
2005), so frequent neighbours are never lost to a stream of one-off ones.

Examples
--------
>>> n = CoVisitationNeighbours(capacity=3, half_life_s=86400.0)
>>> for other, ts in [("b", 0.0), ("b", 5.0), ("b", 10.0), ("c", 20.0), ("d", 30.0), ("e", 40.0)]:
...     n.learn_one(other, 1.0, ts)
>>> [(item, round(evidence, 3)) for item, evidence in n.top(2)]
[('b', 1.0), ('e', 0.667)]
>>> len(n)
3
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from functools import lru_cache
from typing import Any, overload

from online.forward_decay import ForwardDecay

__all__ = ["CoVisitationNeighbours", "TopNeighbours"]


@lru_cache(maxsize=16)
def _decay(half_life_s: float) -> ForwardDecay:
    """A shared :class:`ForwardDecay` (a frozen dataclass, ~1k instructions to make): every new item, user affinity
    and purchase list makes a :class:`CoVisitationNeighbours`, with one of a few half-lives."""
    return ForwardDecay(half_life_s)


class TopNeighbours(Sequence[tuple[str, float]]):
    """A snapshot of an item's strongest neighbours, read as ``(id, evidence relative to the first)`` pairs.

    Taking it is two C-level slices; the relative values (an ``exp`` each)
    are computed only when it is read. The flow emits one per changed item
    and batch for the item's similar list, and most are never read: the sink
    keeps the last per item, and the evaluation none.

    >>> n = CoVisitationNeighbours(capacity=5)
    >>> n.learn_one("b", 2.0, ts=0.0); n.learn_one("c", 1.0, ts=0.0)
    >>> snapshot = n.snapshot(5)
    >>> n.learn_one("d", 9.0, ts=0.0)                  # later evidence does not change a snapshot
    >>> len(snapshot), list(snapshot) == [("b", 1.0), ("c", 0.5)], snapshot[1][0]
    (2, True, 'c')
    """

    __slots__ = ("_ids", "_negated")

    def __init__(self, ids: list[str], negated: array[float]):
        self._ids = ids
        self._negated = negated

    def __reduce__(self) -> tuple[Any, ...]:  # compiled by mypyc, pickle would call __init__ without arguments
        return TopNeighbours, (self._ids, self._negated)

    def __len__(self) -> int:
        return len(self._ids)

    @overload
    def __getitem__(self, index: int) -> tuple[str, float]: ...
    @overload
    def __getitem__(self, index: slice) -> list[tuple[str, float]]: ...
    def __getitem__(self, index: int | slice) -> tuple[str, float] | list[tuple[str, float]]:
        return self._pairs()[index]

    def __iter__(self) -> Iterator[tuple[str, float]]:
        return iter(self._pairs())

    def columns(self) -> tuple[tuple[str, ...], tuple[float, ...]]:
        """The ids and the relative values as two tuples (what a user's neighbour cache keeps)."""
        negated = self._negated
        first = negated[0] if negated else 0.0
        return tuple(self._ids), tuple([math.exp(first - score) for score in negated])

    def _pairs(self) -> list[tuple[str, float]]:
        negated = self._negated
        first = negated[0] if negated else 0.0
        return [(item, math.exp(first - score)) for item, score in zip(self._ids, negated, strict=True)]


class CoVisitationNeighbours:
    """At most ``capacity`` neighbours of one item, scored with forward decay.

    Parameters
    ----------
    capacity
        Neighbours kept (the published top-K is at most this).
    half_life_s
        Half-life of the evidence, in event time.

    The neighbours are kept compact and in score order, strongest first: a
    list of ids and an ``array('d')`` of their negated log scores (16 B per
    neighbour instead of ~100 B for a dict of floats; every item has one).
    Evidence only grows, so an update moves one neighbour up by a binary
    search instead of re-sorting, the weakest is evicted from the end, and the
    top-k is a slice. Finding a neighbour is a C-level scan of the ids from the
    strongest (where repeat neighbours mostly are; ids are interned at parse
    time, so it is mostly identity checks).
    """

    __slots__ = ("_decay", "_ids", "_negated", "capacity")

    def __init__(self, capacity: int = 100, half_life_s: float = 7 * 86400.0):
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self._decay = _decay(half_life_s)
        self._ids: list[str] = []
        """Neighbours, strongest first (among equal scores the latest update last: shown last, evicted first)."""
        self._negated = array("d")
        """Minus their forward-decayed log scores, ascending."""

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, item: object) -> bool:
        return item in self._ids

    def learn_one(self, other: str, weight: float, ts: float) -> None:
        """Add ``weight`` (> 0) of evidence that ``other`` goes with this item."""
        if weight <= 0.0:
            return
        ids, negated = self._ids, self._negated
        previous: float | None = None
        if other in ids:
            at = ids.index(other)
            previous = -negated[at]
            del ids[at], negated[at]
        elif len(ids) >= self.capacity:  # Space-Saving: the newcomer inherits the weakest's score
            ids.pop()
            previous = -negated.pop()
        score = -self._decay.add(previous, weight, ts)
        at = bisect_right(negated, score)
        ids.insert(at, other)
        negated.insert(at, score)

    def top(self, k: int) -> list[tuple[str, float]]:
        """The ``k`` strongest neighbours, with evidence relative to the strongest (1.0).

        Forward decay makes both the order and these ratios independent of the
        time they are read at.
        """
        # What list() of snapshot(k) gives, read in place: no slices, no TopNeighbours, no zip.
        ids, negated = self._ids, self._negated
        count = min(max(k, 0), len(ids))
        if not count:
            return []
        first = negated[0]
        return [(ids[i], math.exp(first - negated[i])) for i in range(count)]

    def snapshot(self, k: int) -> TopNeighbours:
        """The ``k`` strongest neighbours as they are now, relative values computed when read (see :meth:`top`)."""
        return TopNeighbours(self._ids[:k], self._negated[:k])

    def value(self, other: str, now: float) -> float:
        """The decayed evidence for ``other`` at ``now`` (0.0 when unknown)."""
        if other not in self._ids:
            return 0.0
        return self._decay.value(-self._negated[self._ids.index(other)], now)

    def __getstate__(self) -> tuple[int, float, list[str], bytes]:
        return self.capacity, self._decay.half_life_s, self._ids, self._negated.tobytes()

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        if len(state) == 3:  # an older snapshot: (capacity, half_life_s, {id: log score})
            capacity, half_life_s, scores = state
            ids = sorted(scores, key=scores.__getitem__, reverse=True)
            state = capacity, half_life_s, ids, array("d", [-scores[i] for i in ids]).tobytes()
        self.capacity, half_life_s, self._ids, raw = state
        self._negated = array("d")
        self._negated.frombytes(raw)
        self._decay = _decay(half_life_s)
