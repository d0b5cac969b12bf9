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

import math
from bisect import bisect_left, bisect_right
from typing import Any

from online.forward_decay import place, strongest

__all__ = ["TrendingTop"]


class TrendingTop:
    """At most ``capacity`` items with the largest log scores.

    Items are kept in score order (:func:`online.forward_decay.place`), so an
    item below the weakest kept score is rejected without a scan and a read
    is a slice. The relative values of a read are cached; an update that
    moves an item within them (or into them) moves that one entry, and only
    an update of the best item, which every relative value is divided by,
    drops the cache (the ranker's replica reads it before every outcome:
    recomputing ~60 values after most events was a tenth of its work).
    """

    __slots__ = ("_cache", "_cached", "_cut", "_negative_logs", "_order", "_positions", "_scores", "_size", "capacity")

    def __init__(self, capacity: int = 200):
        self.capacity = capacity
        self._scores: dict[str, float] = {}
        self._order: list[str] = []
        """The items, weakest first."""
        self._cache: list[tuple[str, float]] | None = None
        self._cached: set[str] = set()
        self._negative_logs: list[float] = []
        """Minus the log score of each cached item, in the cache's order (ascending: bisected)."""
        self._size = 0
        """How many items the cache was asked for."""
        self._cut = float("-inf")
        """The log score of the last cached item: a new score below it leaves the cache valid."""
        self._positions: dict[str, int] | None = None
        """Each cached item's position in the cache, built on demand (:meth:`top_positions`); dropped when the cache moves."""

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
        previous = scores.get(item)
        place(scores, order, item, log_score)
        if self._cache is not None and (item in self._cached or log_score > self._cut):
            self._move(item, previous, log_score)

    def _move(self, item: str, previous: float | None, log_score: float) -> None:
        """Move ``item``'s cached entry to its new score, as a rebuild by :func:`strongest` would place it."""
        cache, negative, cached = self._cache, self._negative_logs, self._cached
        if not cache:
            self._cache = None
            return
        first = -negative[0]
        if cache[0][0] == item or log_score > first or (previous is not None and log_score < previous) \
                or log_score == self._cut:  # the best item changed (every relative value does), or a tie at the cut
            self._cache = None
            return
        was = -1
        if item in cached:
            assert previous is not None
            was = bisect_left(negative, -previous)
            while cache[was][0] != item:  # past the equal scores cached before it
                was += 1
            del cache[was]
            del negative[was]
        else:
            cached.add(item)
        at = bisect_right(negative, -log_score)  # after the equal scores: the latest placed is the weakest
        cache.insert(at, (item, math.exp(log_score - first)))
        negative.insert(at, -log_score)
        if len(cache) > self._size:
            dropped = cache.pop()[0]
            cached.discard(dropped)
            negative.pop()
            if self._positions is not None and dropped != item:
                del self._positions[dropped]
        positions = self._positions
        if positions is not None:  # the entries between the old place and the new one moved by one
            if item not in cached:
                positions.pop(item, None)
            end = len(cache) if was < 0 else min(max(was, at) + 1, len(cache))
            for moved in range(min(was, at) if was >= 0 else at, end):
                positions[cache[moved][0]] = moved
        self._cut = -negative[-1] if len(cache) < len(self._scores) else float("-inf")

    def top(self, n: int) -> list[tuple[str, float]]:
        """The ``n`` most popular items, popularity relative to the first (1.0)."""
        cache = self._cache
        if cache is None or len(cache) < min(n, len(self._scores)):
            scores = self._scores
            self._size = max(n, len(cache) if cache else 0)
            cache = self._cache = strongest(scores, self._order, self._size)
            self._cached = {item for item, _ in cache}
            self._negative_logs = [-scores[item] for item, _ in cache]
            self._cut = scores[cache[-1][0]] if cache and len(cache) < len(scores) else float("-inf")
            self._positions = None
        return cache[:n]

    def top_positions(self, n: int) -> tuple[list[tuple[str, float]], dict[str, int]]:
        """:meth:`top` and each item's position in it, from a dict kept while the cache does not move.

        The dict may also hold items beyond the ``n`` returned (positions ``>= n``): the
        ranker reads a different ``n`` per user. Most outcomes see the cache unchanged since
        the previous one, so the dict is not rebuilt per outcome (see :class:`online.blend.Pool`).

        >>> top = TrendingTop(capacity=3)
        >>> top.learn_one("a", 1.0); top.learn_one("b", 2.0); top.learn_one("c", 3.0)
        >>> top.top_positions(2)[1] == {"c": 0, "b": 1}, top.top_positions(3)[1]
        (True, {'c': 0, 'b': 1, 'a': 2})
        >>> top.learn_one("a", 4.0); top.top_positions(3)[1]
        {'a': 0, 'c': 1, 'b': 2}
        """
        listed = self.top(n)
        positions = self._positions
        if positions is None:
            cache = self._cache
            positions = self._positions = {item: at for at, (item, _) in enumerate(cache)} if cache else {}
        return listed, positions

    def __len__(self) -> int:
        return len(self._scores)

    def __getstate__(self) -> tuple[int, dict[str, float]]:
        return self.capacity, self._scores

    def __setstate__(self, state: tuple[Any, Any]) -> None:
        if state[0] is None:  # a snapshot from before the order was kept: (None, {slot: value})
            state = state[1]["capacity"], state[1]["_scores"]
        self.capacity, self._scores = state
        self._order = sorted(self._scores, key=self._scores.__getitem__)
        self._cache, self._cached, self._negative_logs, self._size, self._cut = None, set(), [], 0, float("-inf")
        self._positions = None
