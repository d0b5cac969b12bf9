"""A bounded replica of the most popular items, from forward-decayed log scores.

The item stage owns each item's popularity (see :mod:`online.forward_decay`);
replicas of this top list, one per shard of users, receive every update and
hand the current top items to the user-list stage. Because log scores only
ever grow for an item and compare correctly at any time, a replica is a plain
"keep the largest" structure: no rescaling, no clock.

Examples
--------
>>> top = TrendingTop(capacity=2)
>>> top.learn_one("a", 10.0); top.learn_one("b", 11.0); top.learn_one("c", 12.0)
>>> [item for item, _ in top.top(5)]
['c', 'b']
>>> top.learn_one("a", 13.0)
>>> [(item, round(rel, 3)) for item, rel in top.top(5)]
[('a', 1.0), ('c', 0.368)]
"""

from __future__ import annotations

from typing import Any

from online.forward_decay import place, strongest

__all__ = ["TrendingTop"]


class TrendingTop:
    """At most ``capacity`` items with the largest log scores.

    Items are kept in score order (:func:`online.forward_decay.place`), so an
    item below the weakest kept score is rejected without a scan and a read
    is a slice; the relative values of a read are cached until an update
    touches an item in it or beats its last one.
    """

    __slots__ = ("_cache", "_cached", "_cut", "_order", "_scores", "capacity")

    def __init__(self, capacity: int = 200):
        self.capacity = capacity
        self._scores: dict[str, float] = {}
        self._order: list[str] = []
        """The items, weakest first."""
        self._cache: list[tuple[str, float]] | None = None
        self._cached: frozenset[str] = frozenset()
        self._cut = float("-inf")
        """The log score of the last cached item: a new score below it leaves the cache valid."""

    def learn_one(self, item: str, log_score: float) -> None:
        """Record ``item``'s latest log score (scores of an item only grow)."""
        scores, order = self._scores, self._order
        if item not in scores and len(scores) >= self.capacity:
            if log_score <= scores[order[0]]:
                return
            weakest = order.pop(0)
            del scores[weakest]
            if weakest in self._cached:
                self._cache = None
        place(scores, order, item, log_score)
        if self._cache is not None and (item in self._cached or log_score > self._cut):
            self._cache = None

    def top(self, n: int) -> list[tuple[str, float]]:
        """The ``n`` most popular items, popularity relative to the first (1.0)."""
        cache = self._cache
        if cache is None or len(cache) < min(n, len(self._scores)):
            scores = self._scores
            cache = self._cache = strongest(scores, self._order, max(n, len(cache) if cache else 0))
            self._cached = frozenset(item for item, _ in cache)
            self._cut = scores[cache[-1][0]] if cache and len(cache) < len(scores) else float("-inf")
        return cache[:n]

    def __len__(self) -> int:
        return len(self._scores)

    def __getstate__(self) -> tuple[int, dict[str, float]]:
        return self.capacity, self._scores

    def __setstate__(self, state: tuple[Any, Any]) -> None:
        if state[0] is None:  # a snapshot from before the order was kept: (None, {slot: value})
            state = state[1]["capacity"], state[1]["_scores"]
        self.capacity, self._scores = state
        self._order = sorted(self._scores, key=self._scores.__getitem__)
        self._cache, self._cached, self._cut = None, frozenset(), float("-inf")
