"""How far affinity candidates could reach on MovieTweetings, per genre rule, before any ranker.

``python -m benchmarks.affinity_reach [DATA]`` replays ``ratings.dat`` in time
order with exact (sequential) forward-decayed popularity, globally and per
category, and each user's decayed category affinity, as the flow keeps them
(trending half-life one day, affinity seven days, ratings weighted as with
``LIVERECO_RATING_RANGE=0,10``). For every prediction of the README's
protocol (a rating ≥ 7 by a user seen before) it asks: is the movie's category
among the user's 3 strongest; is the movie in the affinity list (the 20
trending movies of each of those categories); and is it there but not in the
global trending top 200 (the trending pool the ranker already has), i.e. a
hit only this generator can add. Movies the user has rated are left out, as
livereco does.
"""

from __future__ import annotations

import argparse
import heapq
import math
import sys
from collections import Counter, defaultdict
from pathlib import Path

from flows.catalog import GENRE_RULES, read_movie_genres
from online.forward_decay import log_add

__all__ = ["main", "reach"]

_LN2 = math.log(2.0)


def _add(scores: dict[str, float], key: str, weight: float, ts: float, half_life_s: float) -> None:
    value = math.log(weight) + ts * _LN2 / half_life_s
    old = scores.get(key)
    scores[key] = value if old is None else log_add(old, value)


def _top(scores: dict[str, float], k: int) -> list[str]:
    return heapq.nlargest(k, scores, key=scores.__getitem__)


def reach(data: Path, rule: str, categories: int = 3, per_category: int = 20, trending_pool: int = 200) -> dict[str, float]:
    """Shares of the scored ratings (see the module docstring)."""
    category_of = read_movie_genres(data / "movies.dat").categories(rule)
    rows = []
    with (data / "ratings.dat").open() as f:
        for line in f:
            user, movie, rating, ts = line.strip().split("::")
            rows.append((float(ts), user, movie, float(rating)))
    rows.sort(key=lambda row: row[0])
    trending: dict[str, float] = {}
    by_category: dict[str, dict[str, float]] = defaultdict(dict)
    affinity: dict[str, dict[str, float]] = defaultdict(dict)
    rated: dict[str, set[str]] = defaultdict(set)
    counts: Counter[str] = Counter()
    for ts, user, movie, rating in rows:
        if rating >= 7 and user in rated:
            counts["predictions"] += 1
            seen = rated[user]
            pool = [m for m in _top(trending, trending_pool + len(seen)) if m not in seen][:trending_pool]
            counts["in the trending top 10"] += movie in pool[:10]
            counts[f"in the trending top {trending_pool}"] += movie in pool
            mine = affinity[user]
            if mine:
                best = max(mine.values())
                strongest = _top(mine, categories)
                counts[f"its category among the user's {categories} strongest"] += category_of.get(movie) in strongest
                scored: dict[str, float] = {}
                for category in strongest:
                    top = _top(by_category[category], per_category)
                    for m in top:
                        score = math.exp(mine[category] - best) * math.exp(by_category[category][m] -
                                                                           by_category[category][top[0]])
                        scored[m] = max(scored.get(m, 0.0), score)
                listed = [m for m in sorted(scored, key=scored.__getitem__, reverse=True) if m not in seen]
                counts["in the affinity list"] += movie in listed
                counts[f"in the affinity list, not in the trending top {trending_pool}"] += \
                    movie in listed and movie not in pool
        rated[user].add(movie)
        weight = (rating - 5.0) / 5.0 * 4.0
        if weight > 0.0:
            _add(trending, movie, weight, ts, 86400.0)
            category = category_of.get(movie)
            if category is not None:
                _add(by_category[category], movie, weight, ts, 86400.0)
                _add(affinity[user], category, weight, ts, 7 * 86400.0)
    total = counts.pop("predictions")
    return {name: count / total for name, count in counts.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" /
                                                       "movietweetings-100k"))
    args = parser.parse_args(argv)
    for rule in GENRE_RULES[:-1]:
        shares = reach(Path(args.data), rule)
        print(f"{rule}: " + ", ".join(f"{name} {share:.4f}" for name, share in shares.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
