"""Online matrix factorisation with sampled negatives: BPR (Rendle et al. 2009) learned by SGD, one event at a time.

Every event is a positive for its user and item; it is learned against
``negatives`` items drawn uniformly from the items seen so far that the user has
not touched. For a positive ``i`` and a negative ``j`` of user ``u`` the model
takes one SGD step on ``ln sigmoid(x_uij)``, ``x_uij = b_i - b_j + p_u . (q_i -
q_j)``, with L2 regularisation. The user's list ranks every known item by ``b_i +
p_u . q_i``. Without negatives a factorisation of implicit events learns that
everything is liked, and collapses (River's ``BiasedMF``,
:mod:`online.baselines.river_mf`); the negatives are what make the ranking.

``GRID`` holds the learning rates ``livereco eval`` tries on the validation part.

>>> from online.contract import Event
>>> mf = BPRMatrixFactorisation(n_factors=8, seed=1)
>>> log = [(u, i) for _ in range(30) for u, i in [("a", "x"), ("a", "y"), ("b", "x"), ("b", "y"), ("c", "z"), ("c", "w")]]
>>> for t, (user, item) in enumerate(log):
...     mf.learn_one(Event(user, item, "view", float(t)))
>>> mf.learn_one(Event("d", "x", "view", 999.0))
>>> mf.recommend("d", 2)[0]   # d touched x: the item x goes with (users a and b) ranks first
'y'
"""

from __future__ import annotations

import math

import numpy as np

from online.contract import Event

__all__ = ["BPRMatrixFactorisation"]


class BPRMatrixFactorisation:
    """BPR matrix factorisation with uniformly sampled negatives, learned online (one SGD pass)."""

    GRID: tuple[float, ...] = (0.02, 0.05, 0.1)

    def __init__(self, learning_rate: float = 0.05, n_factors: int = 32, negatives: int = 4,
                 regularisation: float = 0.01, seed: int = 42) -> None:
        self.learning_rate = learning_rate
        self.n_factors = n_factors
        self.negatives = negatives
        self.regularisation = regularisation
        self.rng = np.random.default_rng(seed)
        self.index: dict[str, int] = {}
        self.items: list[str] = []
        self.factors = np.zeros((0, n_factors))
        self.biases = np.zeros(0)
        self.users: dict[str, np.ndarray] = {}
        self.seen: dict[str, set[str]] = {}

    def _row(self, item: str) -> int:
        row = self.index.get(item)
        if row is None:
            row = self.index[item] = len(self.items)
            self.items.append(item)
            if row >= len(self.biases):
                grow = max(1024, len(self.biases))
                self.factors = np.vstack([self.factors, np.zeros((grow, self.n_factors))])
                self.biases = np.concatenate([self.biases, np.zeros(grow)])
            self.factors[row] = self.rng.normal(0.0, 0.1, self.n_factors)
        return row

    def _user(self, user: str) -> np.ndarray:
        factors = self.users.get(user)
        if factors is None:
            factors = self.users[user] = self.rng.normal(0.0, 0.1, self.n_factors)
        return factors

    def learn_one(self, event: Event) -> None:
        user, item = event.user_id, event.item_id
        positive = self._row(item)
        p = self._user(user)
        seen = self.seen.setdefault(user, set())
        seen.add(item)
        count = len(self.items)
        if count <= len(seen):
            return  # nothing to contrast with yet
        lr, reg = self.learning_rate, self.regularisation
        q, b = self.factors, self.biases
        for negative in self.rng.integers(0, count, self.negatives):
            j = int(negative)
            if self.items[j] in seen:
                continue
            difference = q[positive] - q[j]
            x = b[positive] - b[j] + float(p @ difference)
            g = 1.0 / (1.0 + math.exp(x)) if x > -500.0 else 1.0  # sigmoid(-x): the gradient of ln sigmoid(x)
            user_before = p.copy()
            p += lr * (g * difference - reg * p)
            q[positive] += lr * (g * user_before - reg * q[positive])
            q[j] += lr * (-g * user_before - reg * q[j])
            b[positive] += lr * (g - reg * b[positive])
            b[j] += lr * (-g - reg * b[j])

    def recommend(self, user_id: str, n: int) -> list[str]:
        count = len(self.items)
        if not count or n <= 0:
            return []
        user = self.users.get(user_id)
        scores = self.biases[:count] if user is None else self.factors[:count] @ user + self.biases[:count]
        take = min(count, n)
        best = np.argpartition(-scores, take - 1)[:take]
        ranked = best[np.argsort(-scores[best], kind="stable")]
        return [self.items[i] for i in ranked]
