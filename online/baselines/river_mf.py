"""River's online biased matrix factorisation (``river.reco.BiasedMF``), kept for reference.

It learns to predict rating values and, on implicit events, a constant: with
no negative examples every item looks alike to it, and it ranks next to
random (HR@20 0.0045 on rsc15, see docs/quality.md). :mod:`online.baselines.bpr`
is the matrix factorisation to compare with.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from river import reco

from online.contract import Event

__all__ = ["MatrixFactorisation"]


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
        if not count or n <= 0:
            return []
        user = self.model.u_latents[user_id] if user_id in self.model.u_latents else np.zeros(self.n_factors)
        scores = self.factors[:count] @ user + self.biases[:count]
        seen = self.seen.get(user_id, set())
        take = min(count, n + len(seen))
        best = np.argpartition(-scores, take - 1)[:take]
        ranked = best[np.argsort(-scores[best])]
        return [self.items[i] for i in ranked if self.items[i] not in seen][:n]
