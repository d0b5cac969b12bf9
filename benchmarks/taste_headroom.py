"""How much lasting taste (item-kNN over whole histories) adds to decayed popularity on a user log.

Before building a lasting-taste model into the flow, measure its headroom
offline: decayed popularity (half-life chosen as ``livereco eval`` chose it)
plus ``w`` times the user's item-kNN score (asymmetric cosine, alpha 1, the
validation choice; relative to the user's best), for a few ``w``, scored on
the validation part only (the warm-up ``livereco eval`` tunes baselines on),
with the same loader, candidate rule and metrics. ``w = 0`` is decayed
popularity alone; a small gain at the best ``w`` bounds what such taste can
add to a popularity-led list on this log.

    .venv/bin/python -m benchmarks.taste_headroom                         # MovieTweetings 100k
    .venv/bin/python -m benchmarks.taste_headroom path/to/ratings.dat --weights 0,0.2,0.4
"""

from __future__ import annotations

import argparse
import heapq
import math
from pathlib import Path

from benchmarks.machine import machine_line
from flows.evaluation import evaluate_baseline, load
from online.baselines import DecayedPopularity, ItemKNN
from online.contract import Event, Settings

DEFAULT_LOG = Path(__file__).resolve().parents[2] / "shared" / "data" / "movietweetings-100k"
DAY = 86400.0


class PopularityWithTaste:
    """Decayed popularity (relative to the top item) plus ``weight`` × the user's item-kNN score (relative to their best)."""

    def __init__(self, weight: float, popularity_half_life_s: float, knn_half_life_s: float, depth: int = 200) -> None:
        self.weight = weight
        self.popularity = DecayedPopularity(popularity_half_life_s)
        self.knn = ItemKNN(knn_half_life_s, alpha=1.0, fill=False)
        self.depth = depth

    def learn_one(self, event: Event) -> None:
        self.popularity.learn_one(event)
        self.knn.learn_one(event)

    def recommend(self, user_id: str, n: int) -> list[str]:
        log_scores = self.popularity.scores
        top = heapq.nlargest(self.depth + n, log_scores, key=log_scores.__getitem__)
        if not top:
            return []
        best = log_scores[top[0]]
        scores = {item: math.exp(log_scores[item] - best) for item in top}
        taste: dict[str, float] = {}
        for item in list(self.knn.histories.get(user_id, ()))[-self.knn.max_history:]:
            for other, similarity in self.knn.similar(item):
                taste[other] = taste.get(other, 0.0) + similarity
        if taste and self.weight:
            strongest = max(taste.values())
            for item, value in taste.items():
                scores[item] = scores.get(item, 0.0) + self.weight * value / strongest
        return heapq.nlargest(n, scores, key=scores.__getitem__)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("log", nargs="?", default=str(DEFAULT_LOG))
    parser.add_argument("--positive", type=float, default=7.0, help="ratings at or above this are positives")
    parser.add_argument("--popularity-half-life-s", type=float, default=3 * DAY)
    parser.add_argument("--knn-half-life-s", type=float, default=30 * DAY)
    parser.add_argument("--weights", default="0,0.1,0.2,0.4")
    args = parser.parse_args()
    data = load(args.log, Settings.from_env({"LIVERECO_RATING_RANGE": "0,10"}), args.positive, mode="user")
    if data.validation is None:
        parser.error("the log has no validation part")
    print(machine_line())
    print(f"{data.validation.name}: {sum(data.validation.scored):,} validation predictions")
    print(f"{'weight':>8}{'HR@10':>10}{'MRR@10':>10}{'HR@20':>10}")
    for weight in (float(w) for w in args.weights.split(",")):
        model = PopularityWithTaste(weight, args.popularity_half_life_s, args.knn_half_life_s)
        report = evaluate_baseline(model, data.validation).report()
        print(f"{weight:>8g}{report['HR@10']:>10.4f}{report['MRR@10']:>10.4f}{report['HR@20']:>10.4f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
