"""The final ranking: a user's personal candidates blended with live trending by a learned ranker.

A user's personal candidates are fresh to their last event; trending keeps
moving after it. So the final list is made where both are fresh: by the
server at request time, and, for the prequential evaluation, by the flow's
ranker stage at the moment of the user's next event. Both call
:func:`blend` with the same weights, so what is scored is what is served.

Each candidate has six features (:data:`FEATURES`): its personal score relative
to the user's best candidate and its reciprocal rank there, its popularity
relative to the top trending item and its reciprocal rank there, whether it is
a *repeat* (one of the user's own recent items), and whether both generators
proposed it. The score is a linear function of them. :class:`BlendRanker`
learns the weights online with a River logistic regression on pairs: for
each event, the item the user went to against impressions they passed over
(drawn from the top of the list they were shown), i.e. a pairwise
(RankNet-style) logistic loss. Until it has learned, every score is 0 and ties keep the
personal order first, then the trending order: personal candidates padded
with trending, the behaviour of a server without a ranker.

Examples
--------
>>> pool = Pool(personal=[("b", 2.0), ("c", 1.0)], trending=[("t", 1.0), ("b", 0.5)], exclude=frozenset({"x"}))
>>> [item for item, _, _ in blend(pool, {}, n=3)]            # untrained: personal first, then trending
['b', 'c', 't']
>>> [source for _, _, source in blend(pool, {}, n=3)]
['personal', 'personal', 'trending']
>>> [item for item, _, _ in blend(pool, {"trending": 1.0}, n=3)]
['t', 'b', 'c']
>>> ranker = BlendRanker(seed=1)
>>> for _ in range(50):
...     shown = ranker.learn_one(pool, positive="t", n=3)     # this user's crowd goes where everyone goes
>>> ranker.rank(pool, n=1)[0][0]
't'
"""

from __future__ import annotations

import random
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from river import linear_model, optim

__all__ = ["FEATURES", "BlendRanker", "Pool", "blend", "candidate_features"]

FEATURES = ("personal", "personal_rank", "trending", "trending_rank", "repeat", "both")


@dataclass(frozen=True, slots=True)
class Pool:
    """What one final list is made of.

    ``personal``: the user's candidates, best first, with their own scores.
    ``trending``: popular items, best first, popularity relative to the top (1.0).
    ``repeats``: personal candidates that are the user's own recent items.
    ``exclude``: items never to show (purchased, disliked, already consumed, request exclusions).
    """

    personal: Sequence[tuple[str, float]] = ()
    trending: Sequence[tuple[str, float]] = ()
    repeats: Collection[str] = frozenset()
    exclude: Collection[str] = frozenset()


def _best_score(personal: Sequence[tuple[str, float]]) -> float:
    """What personal scores are divided by: the best one (1.0 for an empty or non-positive list)."""
    return personal[0][1] if personal and personal[0][1] > 0.0 else 1.0


def _candidates(pool: Pool) -> dict[str, list[float]]:
    """item -> its features in :data:`FEATURES` order, then its tie-break order."""
    out: dict[str, list[float]] = {}
    exclude = pool.exclude
    repeats = pool.repeats
    personal = pool.personal
    top = _best_score(personal)
    for rank, (item, score) in enumerate(personal):
        if item not in exclude:
            out[item] = [score / top, 1.0 / (rank + 1), 0.0, 0.0, 1.0 if item in repeats else 0.0, 0.0, rank]
    offset = len(personal)
    for rank, (item, popularity) in enumerate(pool.trending):
        if item in exclude:
            continue
        entry = out.get(item)
        if entry is None:
            out[item] = [0.0, 0.0, popularity, 1.0 / (rank + 1), 0.0, 0.0, offset + rank]
        else:
            entry[2] = popularity
            entry[3] = 1.0 / (rank + 1)
            entry[5] = 1.0
    return out


def candidate_features(pool: Pool) -> dict[str, dict[str, float]]:
    """Every candidate's non-zero features, excluded items left out.

    >>> candidate_features(Pool(personal=[("a", 4.0), ("b", 1.0)], trending=[("b", 1.0)], repeats={"a"}))["b"]
    {'personal': 0.25, 'personal_rank': 0.5, 'trending': 1.0, 'trending_rank': 1.0, 'both': 1.0}
    """
    return {item: {name: value for name, value in zip(FEATURES, entry, strict=False) if value}
            for item, entry in _candidates(pool).items()}


def _ranked(candidates: dict[str, list[float]], weights: Mapping[str, float], n: int) -> list[tuple[float, float, str]]:
    w = [weights.get(name, 0.0) for name in FEATURES]
    keyed = [(-(w[0] * f[0] + w[1] * f[1] + w[2] * f[2] + w[3] * f[3] + w[4] * f[4] + w[5] * f[5]), f[6], item)
             for item, f in candidates.items()]
    keyed.sort()
    return keyed[:n]


def blend(pool: Pool, weights: Mapping[str, float], n: int) -> list[tuple[str, float, str]]:
    """The top ``n`` of ``pool`` as ``(item, score, source)``, ``source`` being ``personal`` or ``trending``.

    Ties (an untrained ranker scores everything 0) keep the personal order
    first, then the trending order; without weights the score reported is
    the generator's own (the personal score, or the relative popularity).
    """
    personal = len(pool.personal)
    candidates = _candidates(pool)
    ranked = _ranked(candidates, weights, n)
    if any(weights.values()):
        return [(item, -negative, "personal" if order < personal else "trending") for negative, order, item in ranked]
    top = _best_score(pool.personal)
    return [(item, candidates[item][0] * top, "personal") if order < personal else
            (item, candidates[item][2], "trending") for _, order, item in ranked]


@dataclass
class BlendRanker:
    """Learns :func:`blend`'s weights online from what users did next (pairwise logistic loss).

    Each item a user went to is compared with ``negatives`` items drawn from
    the top ``negative_depth`` of the list they were shown: impressions they
    passed over. (Comparing only with the items placed above it teaches the
    model to distrust whatever ranked them there; comparing with the whole pool
    teaches it to beat random candidates, not to order the top.) State is a
    River ``LogisticRegression`` over the six features and a seeded RNG.
    """

    learning_rate: float = 0.05
    negatives: int = 2
    seed: int = 0
    negative_depth: int = 20
    model: linear_model.LogisticRegression = field(init=False)
    rng: random.Random = field(init=False)
    learned: int = 0
    """Pairs learned so far."""

    def __post_init__(self) -> None:
        self.model = linear_model.LogisticRegression(optimizer=optim.SGD(self.learning_rate), intercept_lr=0.0)
        self.rng = random.Random(self.seed)

    @property
    def weights(self) -> dict[str, float]:
        return {name: float(w) for name, w in self.model.weights.items()}

    def rank(self, pool: Pool, n: int) -> list[tuple[str, float, str]]:
        return blend(pool, self.weights, n)

    def learn_one(self, pool: Pool, positive: str, n: int = 0) -> list[str]:
        """Rank ``pool`` as the user saw it, learn that they went to ``positive``; returns the top ``n`` shown.

        Nothing is learned when ``positive`` was not a candidate at all: no
        weighting of these features would have shown it.
        """
        candidates = _candidates(pool)
        shown = [item for _, _, item in _ranked(candidates, self.weights, max(n, self.negative_depth))]
        chosen = candidates.get(positive)
        if chosen is not None and self.learning_rate > 0.0 and self.negatives > 0:
            passed_over = [item for item in shown[: self.negative_depth] if item != positive]
            for item in self.rng.sample(passed_over, min(len(passed_over), self.negatives)):
                other = candidates[item]
                self.model.learn_one({name: chosen[i] - other[i] for i, name in enumerate(FEATURES)}, True)
                self.learned += 1
        return shown[:n]
