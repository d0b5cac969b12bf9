"""The blend: a user's personal candidates and live trending, scored into one final list.

What :func:`blend` computes is what is served: the server calls it at request
time and the flow's ranker stage calls it before each outcome, both with the
weights :class:`~online.ranker.BlendRanker` learns. This module is the
innermost loop of the flow (about 100 candidates per outcome: 50 personal, 50 trending) and of the
server, so it imports nothing but the standard library: it is one of the
modules the build compiles with mypyc when it can (see ``setup.py``).

Examples
--------
>>> pool = Pool(personal=[("b", 2.0), ("c", 1.0)], trending=[("t", 1.0), ("b", 0.5)], exclude=frozenset({"x"}))
>>> [item for item, _, _ in blend(pool, {}, n=3)]            # untrained: personal first, then trending
['b', 'c', 't']
>>> [source for _, _, source in blend(pool, {}, n=3)]
['personal', 'personal', 'trending']
>>> [item for item, _, _ in blend(pool, {"trending": 1.0}, n=3)]
['t', 'b', 'c']
>>> [item for item, _, _ in blend(Pool(trending=pool.trending), {"trending_rank": -1.0}, n=2)]  # cold: trending order
['t', 'b']
>>> blend(pool, {}, n=3, explore=["b", "x", "new"], explore_at=2)   # the exploration slot: 2nd, the first new item allowed
[('b', 2.0, 'personal'), ('new', 1.0, 'explore'), ('c', 1.0, 'personal')]

Affinity candidates (:mod:`online.affinity_candidates`) come after trending
until the ranker learns what they are worth; a trending or personal item they
also propose gets their features too.

>>> liked = Pool(personal=[("b", 2.0)], trending=[("t", 1.0)], affinity=[("t", 0.9), ("d", 0.5)])
>>> blend(liked, {}, n=3)
[('b', 2.0, 'personal'), ('t', 1.0, 'trending'), ('d', 0.5, 'affinity')]
>>> [(item, source) for item, _, source in blend(liked, {"affinity": 1.0}, n=3)]
[('t', 'trending'), ('d', 'affinity'), ('b', 'personal')]
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from online.init_pickle import reduce_by_init

__all__ = ["FEATURES", "Candidates", "Pool", "blend", "candidate_features", "explore_slot", "weight_vector"]

FEATURES = ("personal", "personal_rank", "trending", "trending_rank", "repeat", "both", "affinity", "affinity_rank",
            "device", "hour")


@dataclass(slots=True)  # never mutated, but not frozen: a frozen __init__ costs ~6x, per event
class Pool:
    """What one final list is made of.

    ``personal``: the user's candidates, best first, with their own scores.
    ``trending``: popular items, best first, popularity relative to the top (1.0).
    ``repeats``: personal candidates that are the user's own recent items.
    ``exclude``: items never to show (purchased, disliked, already consumed, request exclusions).
    ``affinity``: trending items of the user's favourite categories, best first, with their
    generator's scores (:func:`online.affinity_candidates.affinity_candidates`; empty when off).
    ``device``, ``hour``: items' popularity in the request's device and hour-of-day segments,
    relative to each segment's best (:class:`online.context_popularity.ContextPopularity`;
    empty when off). They are features of the candidates above, not candidates themselves.
    ``trending_at``: optionally, each trending item's position in a list ``trending`` is a
    prefix of (positions ``>= len(trending)`` count as absent): the flow's replica keeps it
    between outcomes (:meth:`online.trending.TrendingTop.top_positions`); ``None``: built per scoring.
    """

    personal: Sequence[tuple[str, float]] = ()
    trending: Sequence[tuple[str, float]] = ()
    repeats: Collection[str] = frozenset()
    exclude: Collection[str] = frozenset()
    affinity: Sequence[tuple[str, float]] = ()
    device: Mapping[str, float] = field(default_factory=dict)
    hour: Mapping[str, float] = field(default_factory=dict)
    trending_at: dict[str, int] | None = None

    def __init__(self, personal: Sequence[tuple[str, float]] = (), trending: Sequence[tuple[str, float]] = (),
                 repeats: Collection[str] = frozenset(), exclude: Collection[str] = frozenset(),
                 affinity: Sequence[tuple[str, float]] = (), device: Mapping[str, float] | None = None,
                 hour: Mapping[str, float] | None = None, trending_at: dict[str, int] | None = None) -> None:
        # Written out, not generated: mypyc compiles only the methods in the source (see online.init_pickle).
        self.personal = personal
        self.trending = trending
        self.repeats = repeats
        self.exclude = exclude
        self.affinity = affinity
        self.device = {} if device is None else device
        self.hour = {} if hour is None else hour
        self.trending_at = trending_at

    def __reduce__(self) -> tuple[Any, ...]:  # its __init__ is compiled: pickle through it
        return reduce_by_init(self)


def _best_score(personal: Sequence[tuple[str, float]]) -> float:
    """What personal scores are divided by: the best one (1.0 for an empty or non-positive list)."""
    return personal[0][1] if personal and personal[0][1] > 0.0 else 1.0


_RECIPROCALS = tuple(1.0 / (position + 1) for position in range(4096))
"""``1 / (position + 1)``, the rank features, looked up instead of divided in the scoring loop."""


def _reciprocal(position: int) -> float:
    return _RECIPROCALS[position] if position < len(_RECIPROCALS) else 1.0 / (position + 1)


@dataclass(slots=True)
class Candidates:
    """A pool's candidates in tie-break order (personal, trending-only, then affinity-only), scored by one weighting.

    ``negative_scores[j]`` is minus the score of ``items[j]`` (so an ascending
    stable sort ranks them); :meth:`features` rebuilds a row's
    :data:`FEATURES` when the ranker learns from it. Excluded items are left
    out. The ranker scores every outcome's ~100 candidates, so this one pass is
    the flow's innermost loop: it indexes the trending list once (positions,
    not scores: a personal row that is also trending computes its trending part
    itself) and keeps each row's positions in the pool's lists for
    :meth:`features` (numpy loses to plain Python at this size: ~75 µs against
    ~20 µs per pool). Items within each of the pool's lists are unique.
    """

    pool: Pool
    items: list[str]
    negative_scores: list[float]
    personal: int
    """Rows that came from the personal list (they come first)."""
    personal_ranks: list[int]
    """Where each personal row stands in the pool's personal list (excluded items are skipped)."""
    trending_at: dict[str, int]
    """Each trending item's position in the pool's trending list (positions past its end: not in it)."""
    affinity_only: int = 0
    """Rows that only the affinity list proposed (they come last)."""
    _affinity_ids: list[str] | None = None

    def __init__(self, pool: Pool, items: list[str], negative_scores: list[float], personal: int,
                 personal_ranks: list[int], trending_at: dict[str, int], affinity_only: int = 0,
                 _affinity_ids: list[str] | None = None) -> None:
        # Written out, not generated: mypyc compiles only the methods in the source (see online.init_pickle).
        self.pool = pool
        self.items = items
        self.negative_scores = negative_scores
        self.personal = personal
        self.personal_ranks = personal_ranks
        self.trending_at = trending_at
        self.affinity_only = affinity_only
        self._affinity_ids = _affinity_ids

    def __reduce__(self) -> tuple[Any, ...]:
        return reduce_by_init(self)

    @classmethod
    def score(cls, pool: Pool, weights: Sequence[float]) -> Candidates:
        (w_personal, w_personal_rank, w_trending, w_trending_rank, w_repeat, w_both, w_affinity, w_affinity_rank,
         w_device, w_hour) = weights
        exclude, repeats = pool.exclude, pool.repeats
        reciprocals, trending, personal_list = _RECIPROCALS, pool.trending, pool.personal
        if max(len(trending), len(personal_list)) > len(reciprocals):
            reciprocals = tuple(_reciprocal(position) for position in range(max(len(trending), len(personal_list))))
        trending_at = pool.trending_at
        if trending_at is None:
            trending_at = {item: position for position, (item, _) in enumerate(trending)}
        listed_trending = len(trending)
        taken = [False] * len(trending)  # the trending positions personal rows hold
        items: list[str] = []
        negative: list[float] = []
        ranks: list[int] = []
        top = _best_score(personal_list)
        any_repeats, any_excluded = bool(repeats), bool(exclude)  # tested once, not per row
        for rank, (item, score) in enumerate(personal_list):
            if item in exclude:
                continue
            value = w_personal * (score / top) + w_personal_rank * reciprocals[rank]
            position = trending_at.get(item, -1)
            if 0 <= position < listed_trending:
                value += w_trending * trending[position][1] + w_trending_rank * reciprocals[position] + w_both
                taken[position] = True
            if any_repeats and item in repeats:
                value += w_repeat
            items.append(item)  # called directly, not through aliases: mypyc compiles these to C calls
            negative.append(-value)
            ranks.append(rank)
        personal = len(items)
        for position, (item, popularity) in enumerate(trending):
            if taken[position] or (any_excluded and item in exclude):
                continue
            items.append(item)
            negative.append(-(w_trending * popularity + w_trending_rank * reciprocals[position]))
        candidates = cls(pool, items, negative, personal, ranks, trending_at)
        if pool.affinity:
            candidates._add_affinity(w_affinity, w_affinity_rank)
        if (pool.device or pool.hour) and (w_device or w_hour):
            candidates._add_context(w_device, w_hour)
        return candidates

    def _add_context(self, w_device: float, w_hour: float) -> None:
        """Each candidate's context part: its popularity in the request's device and hour segments."""
        items, negative = self.items, self.negative_scores
        for weight, shares in ((w_device, self.pool.device), (w_hour, self.pool.hour)):
            if not weight or not shares:
                continue  # most events name no device
            for row in range(len(items)):
                share = shares.get(items[row])
                if share is not None:
                    negative[row] -= weight * share

    def _add_affinity(self, w_affinity: float, w_affinity_rank: float) -> None:
        """The affinity list's part: rows already proposed take it, the others come last."""
        affinity, exclude, items, negative = self.pool.affinity, self.pool.exclude, self.items, self.negative_scores
        best = _best_score(affinity)
        part = {item: w_affinity * (value / best) + w_affinity_rank * _reciprocal(position)
                for position, (item, value) in enumerate(affinity)}
        for row, item in enumerate(items):
            value = part.pop(item, None)
            if value is not None:
                negative[row] -= value
        rest = [item for item in part if item not in exclude]
        items += rest
        negative += [-part[item] for item in rest]
        self.affinity_only = len(rest)

    def top(self, n: int) -> list[int]:
        """Rows of the ``n`` best scores; ties keep candidate order (personal first, then trending).

        Without personal or affinity candidates there is nothing to blend: trending keeps
        its own order (the weights say how to mix the lists, and a learned
        negative ``trending_rank`` weight must not turn a cold user's list upside down).
        """
        if not self.personal and not self.pool.affinity:
            return list(range(min(n, len(self.items))))
        negative = self.negative_scores
        if not 0 < 2 * n <= len(negative):
            return sorted(range(len(negative)), key=negative.__getitem__)[:n]
        # A short top (the prequential 20 of ~60-100 candidates): the n-th best score from a sort of bare floats,
        # then a keyed sort of only the rows up to it (the same rows in the same order as a stable sort of them
        # all; 28k instead of 36k instructions for 20 of 40-100, but 41k instead of 36k for 50 of them).
        cut = sorted(negative)[n - 1]
        rows = [row for row in range(len(negative)) if negative[row] <= cut]
        rows.sort(key=negative.__getitem__)
        return rows[:n]

    def positions(self, row: int) -> tuple[int, int]:
        """Where ``items[row]`` stands in the pool's personal and trending lists (-1: not there)."""
        position = self.trending_at.get(self.items[row], -1)
        return (self.personal_ranks[row] if row < self.personal else -1,
                position if position < len(self.pool.trending) else -1)

    def source(self, row: int) -> str:
        """The generator ``items[row]`` is listed for: ``personal``, ``trending`` or ``affinity``, the first that proposed it."""
        if row < self.personal:
            return "personal"
        return "trending" if row < len(self.items) - self.affinity_only else "affinity"

    def affinity_position(self, row: int) -> int:
        """Where ``items[row]`` stands in the pool's affinity list (-1: not there)."""
        if not self.pool.affinity:
            return -1
        if self._affinity_ids is None:
            self._affinity_ids = [item for item, _ in self.pool.affinity]
        ids, item = self._affinity_ids, self.items[row]
        return ids.index(item) if item in ids else -1

    def generator_score(self, row: int) -> float:
        """The score of ``items[row]`` from its own generator: personal, trending for trending-only rows, or affinity."""
        if row >= len(self.items) - self.affinity_only:
            return self.pool.affinity[self.affinity_position(row)][1]
        rank, position = self.positions(row)
        return self.pool.personal[rank][1] if row < self.personal else self.pool.trending[position][1]

    def features(self, row: int) -> list[float]:
        """The :data:`FEATURES` of one candidate."""
        pool = self.pool
        rank, position = self.positions(row)
        out = [0.0] * len(FEATURES)
        if rank >= 0:
            out[0] = pool.personal[rank][1] / _best_score(pool.personal)
            out[1] = _reciprocal(rank)
            out[4] = 1.0 if self.items[row] in pool.repeats else 0.0
        if position >= 0:
            out[2] = pool.trending[position][1]
            out[3] = _reciprocal(position)
            out[5] = 1.0 if rank >= 0 else 0.0
        if pool.affinity:
            at = self.affinity_position(row)
            if at >= 0:
                out[6] = pool.affinity[at][1] / _best_score(pool.affinity)
                out[7] = _reciprocal(at)
        if pool.device or pool.hour:
            item = self.items[row]
            out[8] = pool.device.get(item, 0.0)
            out[9] = pool.hour.get(item, 0.0)
        return out


def candidate_features(pool: Pool) -> dict[str, dict[str, float]]:
    """Every candidate's non-zero features, excluded items left out.

    >>> candidate_features(Pool(personal=[("a", 4.0), ("b", 1.0)], trending=[("b", 1.0)], repeats={"a"}))["b"]
    {'personal': 0.25, 'personal_rank': 0.5, 'trending': 1.0, 'trending_rank': 1.0, 'both': 1.0}
    """
    candidates = Candidates.score(pool, _NO_WEIGHTS)
    return {item: {name: value for name, value in zip(FEATURES, candidates.features(row), strict=True) if value}
            for row, item in enumerate(candidates.items)}


_NO_WEIGHTS = (0.0,) * len(FEATURES)


def weight_vector(weights: Mapping[str, float]) -> list[float]:
    """``weights`` in :data:`FEATURES` order (0.0 for a feature never learned).

    >>> weight_vector({"trending": 0.5})[:4]
    [0.0, 0.0, 0.5, 0.0]
    """
    if isinstance(weights, dict):  # the ranker's own dict: native lookups (a Mapping's .get is a method call each)
        table: dict[str, float] = weights
        return [table.get(name, 0.0) for name in FEATURES]
    return [weights.get(name, 0.0) for name in FEATURES]


def explore_slot(pool: Pool, explore: Sequence[str], listed: int, position: int, n: int) -> tuple[int, str] | None:
    """Where the exploration slot goes in a list of ``listed`` items cut at ``n``, and the new item that fills it.

    The slot is the ``position``-th place (1-based; a shorter list gets it at
    its end) and goes to the first item of ``explore`` (the order the
    exploration bandit drew, :class:`online.exploration.ExplorationPool`) that
    is neither excluded nor among the pool's candidates: an item this user's
    personal or trending candidates hold has its own signal here. ``None``:
    no slot (``position`` 0, or beyond ``n``) or no item for it. The server and
    the flow's ranker stage both place the slot with this function.

    >>> explore_slot(Pool(personal=[("a", 1.0)], exclude={"x"}), ["a", "x", "y"], listed=5, position=3, n=10)
    (2, 'y')
    >>> explore_slot(Pool(), ["y"], listed=1, position=3, n=10), explore_slot(Pool(), ["y"], listed=9, position=3, n=2)
    ((1, 'y'), None)
    """
    if position <= 0 or not explore:
        return None
    at = min(position - 1, listed)
    if at >= n:
        return None
    exclude = pool.exclude
    taken: set[str] | None = None
    for item in explore:
        if item in exclude:
            continue
        if taken is None:  # built only when a candidate reaches it: most lists have no slot to fill
            taken = _proposed(pool)
        if item not in taken:
            return at, item
    return None


def _proposed(pool: Pool) -> set[str]:
    """The items of the pool's personal, trending and affinity lists (loops, not generators: mypyc built a list
    for each ``update`` of a generator and unboxed then boxed every score it unpacked)."""
    taken: set[str] = set()
    for lists in (pool.personal, pool.trending, pool.affinity):
        for pair in lists:
            taken.add(pair[0])
    return taken


def blend(pool: Pool, weights: Mapping[str, float], n: int, explore: Sequence[str] = (),
          explore_at: int = 0) -> list[tuple[str, float, str]]:
    """The top ``n`` of ``pool`` as ``(item, score, source)``: ``source`` is ``personal``, ``trending``, ``affinity`` or ``explore``.

    Ties (an untrained ranker scores everything 0) keep the personal order
    first, then the trending order, then the affinity order; without weights the score reported is
    the generator's own (the personal score, or the relative popularity).
    With ``explore`` and ``explore_at``, the ``explore_at``-th place goes to a
    new item (:func:`explore_slot`), scored as the item it pushes down, and
    the list is cut at ``n`` again.
    """
    vector = weight_vector(weights)
    candidates = Candidates.score(pool, vector)
    rows = candidates.top(n)
    items, source = candidates.items, candidates.source
    if any(vector):
        negative = candidates.negative_scores
        ranked = [(items[row], -negative[row], source(row)) for row in rows]
    else:
        ranked = [(items[row], candidates.generator_score(row), source(row)) for row in rows]
    slot = explore_slot(pool, explore, len(ranked), explore_at, n) if explore_at > 0 else None
    if slot is not None:
        at, item = slot
        score = ranked[at][1] if at < len(ranked) else ranked[-1][1] if ranked else 0.0
        ranked.insert(at, (item, score, "explore"))
        del ranked[n:]
    return ranked
