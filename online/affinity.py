"""A user's decayed affinity to catalog attributes (categories), in bounded memory.

Each positive event adds its interest weight to the event's category, decayed
in event time (:mod:`online.forward_decay`), so last week's hobby fades behind
today's. At most ``capacity`` categories are kept; a new one replaces the
weakest and inherits its score (the Space-Saving rule), so a stream of
one-off categories cannot push out a lasting interest.

Examples
--------
>>> affinity = CategoryAffinity(half_life_s=86400.0, capacity=2)
>>> affinity.learn_one("shoes", 1.0, ts=0.0); affinity.learn_one("shoes", 1.0, ts=10.0)
>>> affinity.learn_one("tv", 1.0, ts=20.0)
>>> [(category, round(score, 2)) for category, score in affinity.top(5)]
[('shoes', 1.0), ('tv', 0.5)]
>>> affinity.learn_one("books", 1.0, ts=30.0)          # full: replaces tv, the weakest
>>> [category for category, _ in affinity.top(5)]
['books', 'shoes']
"""

from __future__ import annotations

import math

from online.forward_decay import ForwardDecay

__all__ = ["CategoryAffinity"]


class CategoryAffinity:
    """Forward-decayed interest per category, at most ``capacity`` categories."""

    __slots__ = ("_decay", "_scores", "capacity")

    def __init__(self, half_life_s: float = 7 * 86400.0, capacity: int = 16):
        self.capacity = capacity
        self._decay = ForwardDecay(half_life_s)
        self._scores: dict[str, float] = {}

    def learn_one(self, category: str, weight: float, ts: float) -> None:
        """An event of interest ``weight`` (> 0 counts) in ``category`` at event time ``ts``."""
        if weight <= 0.0:
            return
        scores = self._scores
        previous = scores.get(category)
        if previous is None and len(scores) >= self.capacity:
            weakest = min(scores, key=scores.__getitem__)
            previous = scores.pop(weakest)
        scores[category] = self._decay.add(previous, weight, ts)

    def top(self, k: int) -> list[tuple[str, float]]:
        """The ``k`` strongest categories, scores relative to the strongest (1.0)."""
        best = sorted(self._scores.items(), key=lambda pair: pair[1], reverse=True)[:k]
        return [(category, math.exp(score - best[0][1])) for category, score in best]

    def __len__(self) -> int:
        return len(self._scores)

    def __getstate__(self) -> tuple[int, float, dict[str, float]]:
        return self.capacity, self._decay.half_life_s, self._scores

    def __setstate__(self, state: tuple[int, float, dict[str, float]]) -> None:
        self.capacity, half_life_s, self._scores = state
        self._decay = ForwardDecay(half_life_s)
