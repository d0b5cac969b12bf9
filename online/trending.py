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

from online.forward_decay import strongest

__all__ = ["TrendingTop"]


class TrendingTop:
    """At most ``capacity`` items with the largest log scores.

    Updates that cannot change the answer are cheap: an item below the
    weakest kept score is rejected without a scan, and the cached top list is
    only rebuilt when an update touches an item in it or beats its last one.
    """

    __slots__ = ("_cache", "_cached", "_cut", "_floor", "_scores", "capacity")

    def __init__(self, capacity: int = 200):
        self.capacity = capacity
        self._scores: dict[str, float] = {}
        self._floor = float("-inf")
        """A lower bound of the weakest kept score (scores only grow, so it stays one)."""
        self._cache: list[tuple[str, float]] | None = None
        self._cached: frozenset[str] = frozenset()
        self._cut = float("-inf")
        """The log score of the last cached item: a new score below it leaves the cache valid."""

    def learn_one(self, item: str, log_score: float) -> None:
        """Record ``item``'s latest log score (scores of an item only grow)."""
        scores = self._scores
        if item not in scores and len(scores) >= self.capacity:
            if log_score <= self._floor:
                return
            weakest = min(scores, key=scores.__getitem__)
            self._floor = scores[weakest]
            if self._floor >= log_score:
                return
            del scores[weakest]
            if weakest in self._cached:
                self._cache = None
        scores[item] = log_score
        if self._cache is not None and (item in self._cached or log_score > self._cut):
            self._cache = None

    def top(self, n: int) -> list[tuple[str, float]]:
        """The ``n`` most popular items, popularity relative to the first (1.0)."""
        cache = self._cache
        if cache is None or len(cache) < min(n, len(self._scores)):
            scores = self._scores
            cache = self._cache = strongest(scores, max(n, len(cache) if cache else 0))
            self._cached = frozenset(item for item, _ in cache)
            self._cut = scores[cache[-1][0]] if cache and len(cache) < len(scores) else float("-inf")
        return cache[:n]

    def __len__(self) -> int:
        return len(self._scores)
