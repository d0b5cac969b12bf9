"""The final ranking: a user's personal candidates blended with live trending by a learned ranker.

A user's personal candidates are fresh to their last event; trending keeps
moving after it. So the final list is made where both are fresh: by the
server at request time, and, for the prequential evaluation, by the flow's
ranker stage at the moment of the user's next event. Both call
:func:`blend` with the same weights, so what is scored is what is served.

Each candidate has ten features (:data:`FEATURES`): its personal score relative
to the user's best candidate and its reciprocal rank there, its popularity
relative to the top trending item and its reciprocal rank there, whether it is
a *repeat* (one of the user's own recent items), whether both generators
proposed it, and its affinity-candidate score relative to the best and its
reciprocal rank there (:mod:`online.affinity_candidates`; 0 while they are off), and its
popularity in the request's device and hour-of-day segments
(:mod:`online.context_popularity`; 0 while they are off). The score is a linear function of them. :class:`BlendRanker`
learns the weights online with a River logistic regression on pairs: for
each event, the item the user went to against candidates it should have
beaten, i.e. a pairwise (RankNet-style) logistic loss. Only pairs whose order
decides whether that item is in the list are learned (LambdaRank's idea, for
hit rate at the list's length): if it was listed, against the candidates just
below the list; if not, against the items listed instead. Until it has
learned, every score is 0 and ties keep the personal order first, then the
trending order: personal candidates padded with trending, the behaviour of a
server without a ranker.

Examples
--------
>>> pool = Pool(personal=[("b", 2.0), ("c", 1.0)], trending=[("t", 1.0), ("b", 0.5)], exclude=frozenset({"x"}))
>>> ranker = BlendRanker(seed=1, list_length=1, negative_depth=3)   # a list of one: which item gets it?
>>> for _ in range(50):
...     shown = ranker.learn_one(pool, positive="t", n=3)     # this user's crowd goes where everyone goes
>>> ranker.rank(pool, n=1)[0][0]
't'
>>> BlendRanker(seed=1).learn_one(pool, positive="t", n=3), BlendRanker(seed=1).learned   # all 3 fit in a list of 20
(['b', 'c', 't'], 0)
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from online.blend import FEATURES, Candidates, Pool, blend, candidate_features, weight_vector
from online.logistic_sgd import LogisticSGD, PairModel

__all__ = ["FEATURES", "BlendRanker", "Candidates", "Pool", "blend", "candidate_features"]  # blend's re-exported


@dataclass
class BlendRanker:
    """Learns :func:`blend`'s weights online from what users did next (pairwise logistic loss).

    Each item a user went to is compared with ``negatives`` candidates on the
    other side of the list's cut, the top ``list_length``: if the item was in
    the list, candidates ranked below the list but within ``negative_depth``
    (they must stay out); if not, items that took the list's places. Pairs on
    the same side of the cut are not learned: their order does not change
    which items are listed, and learning it measured worse. On the RSC15
    validation split (``benchmarks.validation_split``) learning from all pairs
    in the top 20 cost HR@20 0.6935 against 0.6972 for the personal order
    alone; these pairs score 0.6971, and on MovieTweetings they raise HR@20
    from 0.2757 to 0.2853 (README, Quality). State is a logistic regression
    over the ten features (:class:`~online.logistic_sgd.LogisticSGD`, River's
    ``LogisticRegression`` arithmetic, compiled) and a seeded RNG.
    """

    learning_rate: float = 0.05
    negatives: int = 2
    seed: int = 0
    list_length: int = 20
    """The list the ranker learns to fill: pairs are learned across its cut."""
    negative_depth: int = 50
    """How far below the list a candidate still counts as one that must stay out of it."""
    model: PairModel = field(init=False)
    rng: random.Random = field(init=False)
    learned: int = 0
    """Pairs learned so far."""

    def __post_init__(self) -> None:
        if not 0 < self.list_length < self.negative_depth:
            raise ValueError(f"the ranker's list length ({self.list_length}) must be positive and below its "
                             f"negative depth ({self.negative_depth}): the pairs it learns cross the list's cut")
        self.model = LogisticSGD(self.learning_rate)
        self.rng = random.Random(self.seed)

    @property
    def weights(self) -> dict[str, float]:
        return dict(self.model.weights)

    def rank(self, pool: Pool, n: int) -> list[tuple[str, float, str]]:
        return blend(pool, self.weights, n)

    def learn_one(self, pool: Pool, positive: str, n: int = 0, learn: bool = True) -> list[str]:
        """Rank ``pool`` as the user saw it, learn that they went to ``positive``; returns the top ``n`` shown.

        With ``learn`` false it only ranks (the stage learns from a sample of outcomes, and scores them all).

        Nothing is learned when ``positive`` was not a candidate at all (no
        weighting of these features would have shown it), nor when no
        candidate is on the other side of the list's cut from it (a pool that
        fits in the list).
        """
        candidates = Candidates.score(pool, weight_vector(self.model.weights))  # no float() copy per event
        rows = candidates.top(max(n, self.negative_depth) if learn else n)
        items = candidates.items
        shown = [items[row] for row in rows[:n]]
        if not learn or self.learning_rate <= 0.0 or self.negatives <= 0 or positive not in items:
            return shown
        chosen_row = items.index(positive)
        listed = rows[: self.list_length]
        # The other side of the cut: below the list if it was listed, the list itself if not.
        others = rows[self.list_length: self.negative_depth] if chosen_row in listed else listed
        if not others:
            return shown
        chosen = candidates.features(chosen_row)
        for row in _sample(self.rng, others, min(len(others), self.negatives)):
            other = candidates.features(row)
            # Only the features that differ: a zero difference moves no weight, and River's work is per feature.
            self.model.learn_one({name: chosen[i] - other[i] for i, name in enumerate(FEATURES) if chosen[i] != other[i]},
                                 True)
            self.learned += 1
        return shown


def _sample(rng: random.Random, population: list[int], k: int) -> list[int]:
    """``rng.sample(population, k)``, the same draws and picks (CPython's algorithm), compiled: the library's
    pure-Python ``sample`` cost ~15k instructions per outcome, more than the pairs it picks are learned for."""
    n = len(population)
    if not 0 <= k <= n:
        raise ValueError("sample larger than population")
    setsize = 21 if k <= 5 else 21 + 4 ** math.ceil(math.log(k * 3, 4))
    result: list[int] = []
    if n <= setsize:
        pool = list(population)
        for i in range(k):
            j = _below(rng, n - i)
            result.append(pool[j])
            pool[j] = pool[n - i - 1]
    else:
        selected: set[int] = set()
        for _ in range(k):
            j = _below(rng, n)
            while j in selected:
                j = _below(rng, n)
            selected.add(j)
            result.append(population[j])
    return result


def _below(rng: random.Random, n: int) -> int:
    """``rng._randbelow(n)`` (by ``getrandbits``, as CPython's ``Random`` draws it)."""
    bits = n.bit_length()
    r = rng.getrandbits(bits)
    while r >= n:
        r = rng.getrandbits(bits)
    return r
