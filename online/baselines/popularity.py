"""Popularity baselines: counts, and counts decayed in event time (half-life chosen on a validation part).

>>> from online.contract import Event
>>> pop, recent = MostPopular(), DecayedPopularity(half_life_s=10.0)
>>> for item, ts in [("a", 0.0), ("a", 1.0), ("a", 2.0), ("b", 60.0), ("b", 61.0)]:
...     pop.learn_one(Event("u", item, "view", ts))
...     recent.learn_one(Event("u", item, "view", ts))
>>> pop.recommend("anyone", 2), recent.recommend("anyone", 2)
(['a', 'b'], ['b', 'a'])
"""

from __future__ import annotations

import heapq
import math
from collections import Counter

from online.contract import Event
from online.forward_decay import ForwardDecay

__all__ = ["DAY", "DecayedPopularity", "MostPopular"]

DAY = 86400.0


class MostPopular:
    """Items by how often they were touched, the same list for everyone."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def learn_one(self, event: Event) -> None:
        self.counts[event.item_id] += 1

    def recommend(self, user_id: str, n: int) -> list[str]:
        return [item for item, _ in self.counts.most_common(n)] if n > 0 else []


class DecayedPopularity:
    """Items by exponentially time-decayed popularity (forward decay, event time).

    ``GRID`` is the half-lives ``livereco eval`` tries on the validation part
    (the one with the best HR@10 there is the one it reports); ``math.inf``
    is plain popularity.
    """

    GRID: tuple[float, ...] = (3600.0, 6 * 3600.0, DAY, 3 * DAY, 7 * DAY, 30 * DAY, 90 * DAY, 365 * DAY)

    def __init__(self, half_life_s: float = DAY) -> None:
        self.half_life_s = half_life_s
        self.decay = ForwardDecay(half_life_s)
        self.scores: dict[str, float] = {}

    def learn_one(self, event: Event) -> None:
        self.scores[event.item_id] = self.decay.add(self.scores.get(event.item_id), 1.0, event.ts)

    def recommend(self, user_id: str, n: int) -> list[str]:
        return heapq.nlargest(n, self.scores, key=self.scores.__getitem__) if n > 0 else []

    @staticmethod
    def describe(half_life_s: float) -> str:
        """A half-life in the unit a reader thinks in.

        >>> DecayedPopularity.describe(6 * 3600.0), DecayedPopularity.describe(365 * DAY), DecayedPopularity.describe(math.inf)
        ('6 h', '365 d', 'none')
        """
        if math.isinf(half_life_s):
            return "none"
        return f"{half_life_s / DAY:g} d" if half_life_s >= DAY else f"{half_life_s / 3600.0:g} h"
