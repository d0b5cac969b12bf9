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

from online.forward_decay import ForwardDecay, place, strongest

__all__ = ["CoVisitationNeighbours"]


class CoVisitationNeighbours:
    """At most ``capacity`` neighbours of one item, scored with forward decay.

    Parameters
    ----------
    capacity
        Neighbours kept (the published top-K is at most this).
    half_life_s
        Half-life of the evidence, in event time.

    The neighbours are also kept in score order (weakest first): evidence
    only grows, so an update moves one neighbour up by a binary search
    instead of re-sorting the list, the weakest is evicted without a scan,
    and the top-k is a slice. (Items are touched several times per event,
    each time followed by a read of their top list.)
    """

    __slots__ = ("_best", "_decay", "_order", "_scores", "capacity")

    def __init__(self, capacity: int = 100, half_life_s: float = 7 * 86400.0):
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self._decay = ForwardDecay(half_life_s)
        self._scores: dict[str, float] = {}
        self._order: list[str] = []
        """The keys of ``_scores``, weakest first (among equal scores the latest update: shown last, evicted first)."""
        self._best: list[tuple[str, float]] | None = None

    def __len__(self) -> int:
        return len(self._scores)

    def __contains__(self, item: object) -> bool:
        return item in self._scores

    def learn_one(self, other: str, weight: float, ts: float) -> None:
        """Add ``weight`` (> 0) of evidence that ``other`` goes with this item."""
        if weight <= 0.0:
            return
        scores, order = self._scores, self._order
        previous = scores.get(other)
        if previous is None and len(scores) >= self.capacity:
            previous = scores.pop(order.pop(0))  # Space-Saving: the newcomer inherits the weakest's score
        place(scores, order, other, self._decay.add(previous, weight, ts))
        self._best = None

    def top(self, k: int) -> list[tuple[str, float]]:
        """The ``k`` strongest neighbours, with evidence relative to the strongest (1.0).

        Forward decay makes both the order and these ratios independent of the
        time they are read at, so the list is cached until new evidence arrives.
        """
        cached = self._best
        if cached is None or len(cached) < min(k, len(self._scores)):
            cached = self._best = strongest(self._scores, self._order, max(k, len(cached or ())))
        return cached[:k]

    def value(self, other: str, now: float) -> float:
        """The decayed evidence for ``other`` at ``now`` (0.0 when unknown)."""
        score = self._scores.get(other)
        return 0.0 if score is None else self._decay.value(score, now)

    def __getstate__(self) -> tuple[int, float, dict[str, float]]:
        return (self.capacity, self._decay.half_life_s, self._scores)

    def __setstate__(self, state: tuple[int, float, dict[str, float]]) -> None:
        self.capacity, half_life_s, self._scores = state
        self._order = sorted(self._scores, key=self._scores.__getitem__)
        self._decay = ForwardDecay(half_life_s)
        self._best = None
