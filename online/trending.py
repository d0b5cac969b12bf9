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

import heapq
import math

__all__ = ["TrendingTop"]


class TrendingTop:
    """At most ``capacity`` items with the largest log scores."""

    __slots__ = ("_cache", "_scores", "capacity")

    def __init__(self, capacity: int = 200):
        self.capacity = capacity
        self._scores: dict[str, float] = {}
        self._cache: list[tuple[str, float]] | None = None

    def learn_one(self, item: str, log_score: float) -> None:
        """Record ``item``'s latest log score (scores of an item only grow)."""
        scores = self._scores
        if item not in scores and len(scores) >= self.capacity:
            weakest = min(scores, key=scores.__getitem__)
            if scores[weakest] >= log_score:
                return
            del scores[weakest]
        scores[item] = log_score
        self._cache = None

    def top(self, n: int) -> list[tuple[str, float]]:
        """The ``n`` most popular items, popularity relative to the first (1.0)."""
        cache = self._cache
        if cache is None or len(cache) < min(n, len(self._scores)):
            scores = self._scores
            best = heapq.nlargest(n, scores, key=scores.__getitem__)
            first = scores[best[0]] if best else 0.0
            cache = self._cache = [(item, math.exp(scores[item] - first)) for item in best]
        return cache[:n]

    def __len__(self) -> int:
        return len(self._scores)
