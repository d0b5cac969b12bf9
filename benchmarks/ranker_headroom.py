"""Can a learned ranker find anything beyond tuned decayed popularity on a user log? (issue 20, measured offline)

livereco's online ranker (:class:`online.ranker.BlendRanker`) learns weights of
candidate features from pairs across its list's cut. Before building a new
feature into the flow, this prototype measures, on the validation part only
(the warm-up ``livereco eval`` tunes its baselines on, same loader, same
candidate rule: every item the user touched before is removed), whether such a
ranker gains over decayed popularity with its validation half-life (3 d on
MovieTweetings) when it is given:

- item trend signals: decayed popularity at 1 d, 3 d and 30 d (relative to the
  top, log-scaled, and reciprocal ranks), popularity of positive ratings only,
  item freshness since first seen, momentum (1-day minus 30-day relative popularity);
- user-level signals that interact with popularity: the user's mainstream share
  (how many of their past items were in the 3-day top 50) times short- and
  long-horizon popularity, and a "same sitting or a return" switch (the gap since
  their last event, over 6 h) times the same;
- personal taste: online BPR factors (uniform negatives over the items seen so
  far, the ``bpr-mf`` baseline's update) and a user-kNN "what people who share
  your movies rated this week" score, each as a score and a reciprocal rank
  (the latter also proposes its top 30 as candidates).

A *future-popularity oracle* bounds what any trend feature could add: it ranks
items by how often they are rated in the next 1, 3 or 7 days (the event itself
excluded), information no online model has.

    .venv/bin/python -m benchmarks.ranker_headroom                  # every row (~10 minutes on 2 shared cores)
    .venv/bin/python -m benchmarks.ranker_headroom --rows trend,oracle
    .venv/bin/python -m benchmarks.ranker_headroom --rows classes    # HR@20 of the baselines by kind of user
    .venv/bin/python -m benchmarks.ranker_headroom /tmp/mt-val --warmup-fraction 0.5 --half-life-s 604800 --rows livereco

>>> rank_features(np.array([0.5, 2.0, 1.0]))     # reciprocal rank: best 1, then 1/2, 1/3
array([0.33333333, 1.        , 0.5       ])
"""

from __future__ import annotations

import argparse
import bisect
import math
import random
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from bytewax.testing import TestingSource, run_main

from benchmarks.machine import machine_line
from flows.dataflow import build_flow
from flows.eval_data import EvalData
from flows.evaluation import _CollectingSink, _entries, flow_time_shift, load
from online.baselines import BPRMatrixFactorisation, DecayedPopularity, ItemKNN, LastItemCoVisitation
from online.contract import Event, Settings
from online.protocol import Recommender

DEFAULT_LOG = Path(__file__).resolve().parents[2] / "shared" / "data" / "movietweetings-100k"
DAY = 86400.0
HALF_LIVES = (DAY, 3 * DAY, 30 * DAY, 365 * DAY)
POOL_PER_HORIZON = 60
"""Candidates per popularity horizon (1 d, 3 d, 30 d): livereco's trending pool is its top 50."""


def rank_features(values: np.ndarray) -> np.ndarray:
    """``1 / (rank + 1)`` of every entry, best first (stable)."""
    ranks = np.empty(len(values))
    ranks[np.argsort(-values, kind="stable")] = np.arange(len(values))
    return 1.0 / (1.0 + ranks)


def _log_relative(values: np.ndarray) -> np.ndarray:
    top = values.max()
    return np.log1p(100.0 * values / top) / math.log(101.0) if top > 0 else values


class Signals:
    """Every signal the rows draw on, learned one event at a time over a fixed item index."""

    def __init__(self, items: dict[str, int], t0: float, positive: float, factors: int = 32, seed: int = 0) -> None:
        self.items, self.t0, self.positive = items, t0, positive
        n = len(items)
        self.popularity = {h: np.zeros(n) for h in HALF_LIVES}
        self.positive_popularity = {h: np.zeros(n) for h in HALF_LIVES}
        self.first_seen = np.full(n, np.inf)
        self.consumed: dict[str, set[int]] = {}
        self.mainstream: dict[str, tuple[float, float]] = {}
        self.last_ts: dict[str, float] = {}
        self.raters: dict[int, list[str]] = {}
        self.history: dict[str, list[tuple[int, float]]] = {}
        self.rng = np.random.default_rng(seed)
        self.item_factors = self.rng.normal(0.0, 0.1, (n, factors))
        self.user_factors: dict[str, np.ndarray] = {}
        self.known: list[int] = []
        self.knn = ItemKNN(30 * DAY, alpha=1.0, fill=False)
        self.snapshots: dict[str, dict[str, list[tuple[str, float]]]] = {}
        """Each user's items' neighbour lists as they were when the user touched them (the first try's flow)."""
        self.crowd_half_life = 7 * DAY

    def _decayed(self, half_life: float, ts: float) -> float:
        return math.exp((ts - self.t0) * math.log(2.0) / half_life)

    def bpr(self, user: str) -> np.ndarray:
        factors = self.user_factors.get(user)
        return self.item_factors @ factors if factors is not None else np.zeros(len(self.items))

    def neighbours(self, user: str) -> np.ndarray:
        """Item-kNN (the ``item-knn`` baseline's validation choice): the user's last 20 items' neighbours, summed."""
        scores = np.zeros(len(self.items))
        for item in list(self.knn.histories.get(user, ()))[-self.knn.max_history:]:
            for other, similarity in self.knn.similar(item):
                scores[self.items[other]] += similarity
        return scores

    def stale_neighbours(self, user: str) -> np.ndarray:
        """As :meth:`neighbours`, but each item's list as of the user's touch, never refreshed since."""
        scores = np.zeros(len(self.items))
        for neighbours in list(self.snapshots.get(user, {}).values())[-self.knn.max_history:]:
            for other, similarity in neighbours:
                scores[self.items[other]] += similarity
        return scores

    def crowd(self, user: str, ts: float) -> np.ndarray:
        """User-kNN: what users who share a movie with ``user`` liked lately (rarer shared movies weigh more)."""
        scores = np.zeros(len(self.items))
        neighbours: dict[str, float] = {}
        for item, _ in self.history.get(user, [])[-20:]:
            raters = self.raters.get(item, [])
            weight = 1.0 / math.log(2.0 + len(raters))
            for other in raters[-200:]:
                if other != user:
                    neighbours[other] = neighbours.get(other, 0.0) + weight
        for other, weight in neighbours.items():
            for item, t in self.history[other][-50:]:
                scores[item] += weight * math.exp(-(ts - t) * math.log(2.0) / self.crowd_half_life)
        return scores

    def learn(self, event: Event) -> None:
        row, ts, user = self.items[event.item_id], event.ts, event.user_id
        liked = event.value is None or event.value >= self.positive
        in_top = float((self.popularity[3 * DAY] > self.popularity[3 * DAY][row]).sum() < 50)
        hits, seen = self.mainstream.get(user, (0.0, 0.0))
        self.mainstream[user] = (hits + in_top, seen + 1.0)
        self.last_ts[user] = ts
        for h in HALF_LIVES:
            self.popularity[h][row] += self._decayed(h, ts)
            if liked:
                self.positive_popularity[h][row] += self._decayed(h, ts)
        if not math.isfinite(self.first_seen[row]):
            self.first_seen[row] = ts
            self.known.append(row)
        if liked:
            self.raters.setdefault(row, []).append(user)
            self.history.setdefault(user, []).append((row, ts))
            self._bpr_step(user, row)
        self.consumed.setdefault(user, set()).add(row)
        self.knn.learn_one(event)
        if liked:
            touched = self.snapshots.setdefault(user, {})
            touched.pop(event.item_id, None)
            touched[event.item_id] = self.knn.similar(event.item_id)

    def _bpr_step(self, user: str, row: int, learning_rate: float = 0.05, regularisation: float = 0.01) -> None:
        if user not in self.user_factors:
            self.user_factors[user] = np.asarray(self.rng.normal(0.0, 0.1, self.item_factors.shape[1]))
        p: np.ndarray = self.user_factors[user]
        q = self.item_factors
        for j in (self.known[int(k)] for k in self.rng.integers(0, len(self.known), 4)):
            if j == row:
                continue
            difference = q[row] - q[j]
            x = float(p @ difference)
            g = 1.0 / (1.0 + math.exp(x)) if x > -500.0 else 1.0
            before = p.copy()
            p += learning_rate * (g * difference - regularisation * p)
            q[row] += learning_rate * (g * before - regularisation * q[row])
            q[j] += learning_rate * (-g * before - regularisation * q[j])


LIVERECO_MT = {"LIVERECO_RATING_RANGE": "0,10", "LIVERECO_RECENT_WEIGHT": "0", "LIVERECO_TRENDING_HALF_LIFE_S": "86400"}
"""The settings of the MovieTweetings command in docs/quality.md."""


def livereco_lists(part: EvalData) -> dict[int, list[str]]:
    """The top 20 the real dataflow served at each event of ``part`` (as ``livereco eval`` runs it, batch size 1)."""
    sink = _CollectingSink()
    settings = Settings.from_env({**LIVERECO_MT, "LIVERECO_FLOW_METRICS_PORT": "0"})
    entries = list(_entries(part.events, flow_time_shift(part.events)))
    run_main(build_flow(settings, source=TestingSource(entries, batch_size=settings.read_count), sink=sink,
                        flow_id="ranker-headroom", recoverable=False))
    return {index: list(score.listed) for index, score in sink.scores.items()}


FeatureMaker = Callable[[Signals, str, float, dict[str, np.ndarray]], np.ndarray]


def _cached(name: str, make: Callable[[], np.ndarray], cache: dict[str, np.ndarray]) -> np.ndarray:
    if name not in cache:
        cache[name] = make()
    return cache[name]


def _user_share(s: Signals, user: str) -> float:
    hits, seen = s.mainstream.get(user, (0.0, 0.0))
    return (hits + 0.3) / (seen + 1.0)


def _returning(s: Signals, user: str, ts: float) -> float:
    return 1.0 if ts - s.last_ts.get(user, -math.inf) > 6 * 3600 else 0.0


def _rr(h: float) -> FeatureMaker:
    return lambda s, u, ts, c: _cached(f"rr{h}", lambda: rank_features(s.popularity[h]), c)


def _relative(values: np.ndarray) -> np.ndarray:
    top = values.max()
    return values / top if top > 0 else values


def _age(s: Signals, ts: float) -> np.ndarray:
    return np.where(np.isfinite(s.first_seen), (ts - s.first_seen) / DAY, np.inf)


FEATURES: dict[str, FeatureMaker] = {
    "pop1d": lambda s, u, ts, c: _log_relative(s.popularity[DAY]),
    "pop3d": lambda s, u, ts, c: _log_relative(s.popularity[3 * DAY]),
    "pop30d": lambda s, u, ts, c: _log_relative(s.popularity[30 * DAY]),
    "rr1d": _rr(DAY),
    "rr3d": _rr(3 * DAY),
    "rr30d": _rr(30 * DAY),
    "liked1d": lambda s, u, ts, c: _log_relative(s.positive_popularity[DAY]),
    "liked3d": lambda s, u, ts, c: _log_relative(s.positive_popularity[3 * DAY]),
    "fresh": lambda s, u, ts, c: 1.0 / (1.0 + _age(s, ts)),
    "age30d": lambda s, u, ts, c: np.exp(-_age(s, ts) / 30.0),
    "momentum": lambda s, u, ts, c: _relative(s.popularity[DAY]) - _relative(s.popularity[30 * DAY]),
    "mainstream×rr1d": lambda s, u, ts, c: _user_share(s, u) * _rr(DAY)(s, u, ts, c),
    "digger×rr30d": lambda s, u, ts, c: (1 - _user_share(s, u)) * _rr(30 * DAY)(s, u, ts, c),
    "digger×rr365d": lambda s, u, ts, c: (1 - _user_share(s, u)) * _rr(365 * DAY)(s, u, ts, c),
    "return×rr1d": lambda s, u, ts, c: _returning(s, u, ts) * _rr(DAY)(s, u, ts, c),
    "sitting×rr30d": lambda s, u, ts, c: (1 - _returning(s, u, ts)) * _rr(30 * DAY)(s, u, ts, c),
    "sitting×rr365d": lambda s, u, ts, c: (1 - _returning(s, u, ts)) * _rr(365 * DAY)(s, u, ts, c),
    "bpr": lambda s, u, ts, c: _cached("bpr", lambda: s.bpr(u), c),
    "bpr_rank": lambda s, u, ts, c: rank_features(FEATURES["bpr"](s, u, ts, c)),
    "livereco": lambda s, u, ts, c: c["livereco"],
    "knn": lambda s, u, ts, c: _relative(_cached("knn", lambda: s.neighbours(u), c)),
    "knn_rank": lambda s, u, ts, c: np.where(_cached("knn", lambda: s.neighbours(u), c) > 0, rank_features(c["knn"]), 0.0),
    "stale_knn": lambda s, u, ts, c: _relative(_cached("stale_knn", lambda: s.stale_neighbours(u), c)),
    "stale_knn_rank": lambda s, u, ts, c: np.where(_cached("stale_knn", lambda: s.stale_neighbours(u), c) > 0,
                                                   rank_features(c["stale_knn"]), 0.0),
    "crowd": lambda s, u, ts, c: _relative(_cached("crowd", lambda: s.crowd(u, ts), c)),
    "crowd_rank": lambda s, u, ts, c: np.where(_cached("crowd", lambda: s.crowd(u, ts), c) > 0,
                                               rank_features(c["crowd"]), 0.0),
}

BASE = ["pop1d", "pop3d", "pop30d", "rr1d", "rr3d", "rr30d"]
ROWS: dict[str, list[tuple[str, list[str]]]] = {
    "trend": [("popularity, 3 horizons", BASE),
              ("+ liked-only popularity", [*BASE, "liked1d", "liked3d"]),
              ("+ freshness, momentum", [*BASE, "fresh", "age30d", "momentum"])],
    "user": [("+ mainstream share × horizons", [*BASE, "mainstream×rr1d", "digger×rr30d", "digger×rr365d"]),
             ("+ return or same sitting × horizons", [*BASE, "return×rr1d", "sitting×rr30d", "sitting×rr365d"])],
    "taste": [("+ BPR factors", [*BASE, "bpr", "bpr_rank"]),
              ("+ user-kNN crowd of the week (also proposes 30)", [*BASE, "crowd", "crowd_rank"]),
              ("+ item-kNN (also proposes 30)", [*BASE, "knn", "knn_rank"]),
              ("+ item-kNN + crowd", [*BASE, "knn", "knn_rank", "crowd", "crowd_rank"])],
    "livereco": [("livereco's own list (its rank; untrained: its order)", ["livereco"]),
                 ("livereco + popularity", ["livereco", *BASE]),
                 ("livereco + popularity + item-kNN", ["livereco", *BASE, "knn", "knn_rank"]),
                 ("livereco + popularity + item-kNN, lists as of the touch",
                  ["livereco", *BASE, "stale_knn", "stale_knn_rank"]),
                 ("livereco + popularity + crowd", ["livereco", *BASE, "crowd", "crowd_rank"]),
                 ("livereco + popularity + item-kNN + crowd", ["livereco", *BASE, "knn", "knn_rank", "crowd", "crowd_rank"])],
}


def learned_ranker(events: Sequence[Event], scored: Sequence[bool], features: list[str], positive: float,
                   learning_rate: float = 0.05, negatives: int = 2, seed: int = 0, crowd_half_life: float = 7 * DAY,
                   lists: dict[int, list[str]] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Test-then-learn with a pairwise logistic ranker over ``features``: per-prediction HR@10 and MRR@10, and the weights.

    Ranks the union of each popularity horizon's top 60 (and the crowd's top 30 when
    it is a feature), without the user's consumed items; learns like
    :class:`online.ranker.BlendRanker`: the item the user liked against
    ``negatives`` candidates across the top 20's cut, only when it was a candidate.
    """
    items: dict[str, int] = {}
    for event in events:
        items.setdefault(event.item_id, len(items))
    signals = Signals(items, events[0].ts, positive)
    signals.crowd_half_life = crowd_half_life
    rng = random.Random(seed)
    weights = np.zeros(len(features))
    hits: list[float] = []
    reciprocal: list[float] = []
    for index, event in enumerate(events):
        row = items[event.item_id]
        liked = event.value is None or event.value >= positive
        learn = liked and event.user_id in signals.consumed
        if scored[index] or learn:
            cache: dict[str, np.ndarray] = {}
            if lists is not None:   # livereco's served top 20 as a feature: 1 / (its position + 1)
                served = np.zeros(len(items))
                for position, item in enumerate(lists.get(index, [])[:20]):
                    if item in items:
                        served[items[item]] = 1.0 / (position + 1)
                cache["livereco"] = served
            matrix = np.stack([FEATURES[name](signals, event.user_id, event.ts, cache) for name in features], 1)
            consumed = list(signals.consumed.get(event.user_id, ()))
            pool: set[int] = set()
            proposers = [(signals.popularity[h], POOL_PER_HORIZON) for h in (DAY, 3 * DAY, 30 * DAY)]
            proposers += [(cache[name], 30) for name in ("crowd", "knn", "stale_knn", "livereco") if name in cache]
            for proposed, depth in proposers:
                values = proposed.copy()
                values[consumed] = -1.0
                pool.update(int(j) for j in np.argpartition(-values, depth)[:depth] if values[j] > 0)
            candidates = np.array(sorted(pool), dtype=int)
            first = cache["livereco"] if "livereco" in features else _relative(signals.popularity[3 * DAY])
            tie_break = 1e-9 * first[candidates]   # untrained: livereco's order if a feature, else 3-day popularity
            scores = matrix[candidates] @ weights + tie_break
            order = candidates[np.argsort(-scores, kind="stable")]
            if scored[index]:
                at = np.flatnonzero(order[:10] == row)
                hits.append(1.0 if len(at) else 0.0)
                reciprocal.append(1.0 / (at[0] + 1) if len(at) else 0.0)
            if learn and learning_rate > 0 and row in pool:
                listed = order[:20].tolist()
                others = [j for j in (order[20:60].tolist() if row in listed else listed) if j != row]
                for other in rng.sample(others, min(negatives, len(others))):
                    difference = matrix[row] - matrix[other]
                    p = 1.0 / (1.0 + math.exp(-float(weights @ difference)))
                    weights += learning_rate * (1.0 - p) * difference
        signals.learn(event)
    return np.array(hits), np.array(reciprocal), weights


def popularity_list(events: Sequence[Event], scored: Sequence[bool], half_life: float,
                    future: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Per-prediction HR@10 and MRR@10 of decayed popularity, or (``future``) of the count in the next ``half_life`` seconds."""
    items: dict[str, int] = {}
    for event in events:
        items.setdefault(event.item_id, len(items))
    times = [event.ts for event in events]
    rows = np.array([items[event.item_id] for event in events])
    counts = np.zeros(len(items))
    consumed: dict[str, set[int]] = {}
    hits: list[float] = []
    reciprocal: list[float] = []
    t0 = events[0].ts
    for index, event in enumerate(events):
        row = rows[index]
        if scored[index]:
            if future:
                later = rows[index + 1: bisect.bisect_right(times, event.ts + half_life)]
                values = np.bincount(later, minlength=len(items)).astype(float)
            else:
                values = counts.copy()
            values[list(consumed.get(event.user_id, ()))] = -1.0
            at = np.flatnonzero(np.argsort(-values, kind="stable")[:10] == row)
            hits.append(1.0 if len(at) else 0.0)
            reciprocal.append(1.0 / (at[0] + 1) if len(at) else 0.0)
        counts[row] += math.exp((event.ts - t0) * math.log(2.0) / half_life)
        consumed.setdefault(event.user_id, set()).add(int(row))
    return np.array(hits), np.array(reciprocal)


USER_CLASSES = ((20, "median rank < 20 (mainstream)"), (100, "median rank 20-99"), (500, "median rank 100-499"),
                (math.inf, "median rank >= 500 (catalog diggers)"))


def by_user_class(events: Sequence[Event], scored: Sequence[bool], half_life: float) -> dict[str, dict[str, float]]:
    """HR@20 of four baselines for users classed by the median 3-day popularity rank of their past items (when touched)."""
    items: dict[str, int] = {}
    for event in events:
        items.setdefault(event.item_id, len(items))
    models: dict[str, Recommender] = {"popularity": DecayedPopularity(half_life), "item-knn": ItemKNN(30 * DAY, alpha=1.0, fill=False),
              "covisitation": LastItemCoVisitation(), "bpr": BPRMatrixFactorisation(0.05)}
    counts = np.zeros(len(items))
    ranks: dict[str, list[int]] = {}
    consumed: dict[str, set[str]] = {}
    table: dict[str, dict[str, float]] = {}
    t0 = events[0].ts
    for index, event in enumerate(events):
        row = items[event.item_id]
        if scored[index]:
            median = float(np.median(ranks[event.user_id])) if event.user_id in ranks else math.inf
            name = next(label for bound, label in USER_CLASSES if median < bound)
            line = table.setdefault(name, {"predictions": 0.0})
            line["predictions"] += 1
            exclude = consumed.get(event.user_id, set())
            for model_name, model in models.items():
                listed = [item for item in model.recommend(event.user_id, 20 + len(exclude)) if item not in exclude][:20]
                line[model_name] = line.get(model_name, 0.0) + (event.item_id in listed)
        ranks.setdefault(event.user_id, []).append(int((counts > counts[row]).sum()))
        consumed.setdefault(event.user_id, set()).add(event.item_id)
        for model in models.values():
            model.learn_one(event)
        counts[row] += math.exp((event.ts - t0) * math.log(2.0) / half_life)
    return table


def _line(name: str, hits: np.ndarray, reciprocal: np.ndarray, base: tuple[np.ndarray, np.ndarray], extra: str = "") -> str:
    dh, dr = hits - base[0], reciprocal - base[1]
    n = len(hits)
    return (f"{name:<50}{hits.mean():>8.4f}{reciprocal.mean():>9.4f}  {dh.mean():+.4f} ± {dh.std(ddof=1) / math.sqrt(n):.4f}"
            f"  {dr.mean():+.4f} ± {dr.std(ddof=1) / math.sqrt(n):.4f}  {extra}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("log", nargs="?", default=str(DEFAULT_LOG))
    parser.add_argument("--positive", type=float, default=7.0, help="ratings at or above this are positives")
    parser.add_argument("--half-life-s", type=float, default=3 * DAY, help="the tuned decayed popularity's")
    parser.add_argument("--rows", default="oracle,trend,user,taste")
    parser.add_argument("--crowd-half-life-d", type=float, default=7.0)
    parser.add_argument("--only", help="run only the rows whose name contains this")
    parser.add_argument("--warmup-fraction", type=float,
                        help="score the log's own scored part after this warm-up (as livereco eval --warmup-fraction), "
                             "not its validation part: to set the rows beside livereco's own eval of a validation log")
    args = parser.parse_args()
    data = load(args.log, Settings.from_env({"LIVERECO_RATING_RANGE": "0,10"}), args.positive, mode="user",
                warmup_fraction=args.warmup_fraction)
    part = data if args.warmup_fraction is not None else data.validation
    if part is None:
        parser.error("the log has no validation part")
    events, scored = part.events, part.scored
    print(machine_line())
    print(f"{part.name}: {sum(scored):,} predictions; differences are paired against the first row")
    print(f"{'row':<50}{'HR@10':>8}{'MRR@10':>9}  {'ΔHR@10 ± SE':<18}{'ΔMRR@10 ± SE':<18}")
    base = popularity_list(events, scored, args.half_life_s)
    print(_line(f"decayed popularity ({args.half_life_s / DAY:g} d)", *base, base), flush=True)
    lists = livereco_lists(part) if "livereco" in args.rows.split(",") else None
    own: tuple[np.ndarray, np.ndarray] | None = None   # livereco's own row, the livereco rows' second reference
    for group in args.rows.split(","):
        if group == "classes":
            table = by_user_class(events, scored, args.half_life_s)
            for name, line in ((label, table[label]) for _, label in USER_CLASSES if label in table):
                n = line.pop("predictions")
                print(f"HR@20 for users with {name}: {n:,.0f} predictions, "
                      + ", ".join(f"{model} {hits / n:.3f}" for model, hits in line.items()), flush=True)
            continue
        if group == "oracle":
            for window in (DAY, 3 * DAY, 7 * DAY):
                print(_line(f"oracle: count in the next {window / DAY:g} d", *popularity_list(events, scored, window, True),
                            base), flush=True)
            continue
        for name, features in ROWS[group]:
            if args.only and args.only not in name and not (group == "livereco" and own is None):
                continue
            hits, reciprocal, weights = learned_ranker(events, scored, features, args.positive,
                                                       crowd_half_life=args.crowd_half_life_d * DAY,
                                                       lists=lists if group == "livereco" else None)
            learned = ", ".join(f"{f} {w:.2f}" for f, w in zip(features, weights, strict=True))
            if group == "livereco" and own is None:
                own = hits, reciprocal
            elif group == "livereco" and own is not None:
                learned = f"against livereco: {_line('', hits, reciprocal, own).split(None, 2)[2]}; {learned}"
            print(_line(f"ranker: {name}", hits, reciprocal, base, learned), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
