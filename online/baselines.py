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

import numpy as np
from river import reco

from online.contract import Event
from online.forward_decay import ForwardDecay

__all__ = ["DecayedPopularity", "LastItemCoVisitation", "MatrixFactorisation", "MostPopular"]


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


class MatrixFactorisation:
    """River's online biased matrix factorisation, ranking every known item for the user.

    Learns each rating (``value``; other events count as ``implicit_value``)
    with :class:`river.reco.BiasedMF`, and keeps a numpy copy of the item
    factors so that ranking all items is one matrix-vector product. Items the
    user already touched are not recommended again.

    >>> from online.contract import Event
    >>> mf = MatrixFactorisation(n_factors=4, seed=1)
    >>> for user, item, value in [("a", "x", 9.0), ("a", "y", 2.0), ("b", "x", 8.0), ("b", "z", 9.0)]:
    ...     mf.learn_one(Event(user, item, "rating", 1.7e9, value=value))
    >>> mf.recommend("a", 5)
    ['z']
    """

    def __init__(self, n_factors: int = 10, seed: int = 42, implicit_value: float = 1.0) -> None:
        self.model = reco.BiasedMF(n_factors=n_factors, seed=seed)
        self.implicit_value = implicit_value
        self.n_factors = n_factors
        self.index: dict[str, int] = {}
        self.items: list[str] = []
        self.factors = np.zeros((0, n_factors))
        self.biases = np.zeros(0)
        self.seen: defaultdict[str, set[str]] = defaultdict(set)

    def _row(self, item: str) -> int:
        row = self.index.get(item)
        if row is None:
            row = self.index[item] = len(self.items)
            self.items.append(item)
            if row >= len(self.biases):
                grow = max(1024, len(self.biases))
                self.factors = np.vstack([self.factors, np.zeros((grow, self.n_factors))])
                self.biases = np.concatenate([self.biases, np.zeros(grow)])
        return row

    def learn_one(self, event: Event) -> None:
        value = event.value if event.value is not None else self.implicit_value
        self.model.learn_one(user=event.user_id, item=event.item_id, y=value)
        row = self._row(event.item_id)
        self.factors[row] = self.model.i_latents[event.item_id]
        self.biases[row] = self.model.i_biases[event.item_id]
        self.seen[event.user_id].add(event.item_id)

    def recommend(self, user_id: str, n: int) -> list[str]:
        count = len(self.items)
        if not count:
            return []
        user = self.model.u_latents[user_id] if user_id in self.model.u_latents else np.zeros(self.n_factors)
        scores = self.factors[:count] @ user + self.biases[:count]
        seen = self.seen.get(user_id, set())
        take = min(count, n + len(seen))
        best = np.argpartition(-scores, take - 1)[:take]
        ranked = best[np.argsort(-scores[best])]
        return [self.items[i] for i in ranked if self.items[i] not in seen][:n]
