"""Reference recommenders for the evaluation driver: popularity and last-item co-visitation.

They follow the same small protocol as livereco's models: ``learn_one(event)``
then ``recommend(user_id, n)``. They are deliberately simple; their value is
as yardsticks run through exactly the same driver and protocol.

Examples
--------
>>> from online.contract import Event
>>> stream = [Event("s1", "a", "view", 0.0), Event("s1", "b", "view", 1.0),
...           Event("s2", "a", "view", 2.0), Event("s2", "b", "view", 3.0), Event("s3", "c", "view", 4.0)]
>>> pop, covis = MostPopular(), LastItemCoVisitation()
>>> for e in stream:
...     pop.learn_one(e)
...     covis.learn_one(e)
>>> pop.recommend("anyone", 2)
['a', 'b']
>>> covis.learn_one(Event("s4", "a", "view", 5.0))
>>> covis.recommend("s4", 2)
['b']
"""

from __future__ import annotations

import heapq
from collections import Counter, defaultdict

from online.contract import Event
from online.forward_decay import ForwardDecay

__all__ = ["DecayedPopularity", "LastItemCoVisitation", "MostPopular"]


class MostPopular:
    """Items by how often they were touched, the same list for everyone."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def learn_one(self, event: Event) -> None:
        self.counts[event.item_id] += 1

    def recommend(self, user_id: str, n: int) -> list[str]:
        return [item for item, _ in self.counts.most_common(n)]


class DecayedPopularity:
    """Items by exponentially time-decayed popularity (forward decay, event time)."""

    def __init__(self, half_life_s: float = 86400.0) -> None:
        self.decay = ForwardDecay(half_life_s)
        self.scores: dict[str, float] = {}

    def learn_one(self, event: Event) -> None:
        self.scores[event.item_id] = self.decay.add(self.scores.get(event.item_id), 1.0, event.ts)

    def recommend(self, user_id: str, n: int) -> list[str]:
        return heapq.nlargest(n, self.scores, key=self.scores.__getitem__)


class LastItemCoVisitation:
    """What followed the user's last item most often, across all sessions ("item-item next click")."""

    def __init__(self) -> None:
        self.following: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.last: dict[str, str] = {}

    def learn_one(self, event: Event) -> None:
        previous = self.last.get(event.user_id)
        if previous is not None:
            self.following[previous][event.item_id] += 1
            self.following[event.item_id][previous] += 0  # known item, even with no successor yet
        self.last[event.user_id] = event.item_id

    def observe_one(self, event: Event) -> None:
        """Follow the session without learning (frozen evaluation)."""
        self.last[event.user_id] = event.item_id

    def recommend(self, user_id: str, n: int) -> list[str]:
        last = self.last.get(user_id)
        if last is None or last not in self.following:
            return []
        return [item for item, count in self.following[last].most_common(n) if count > 0]
