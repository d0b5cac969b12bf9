"""How much a popularity list loses by being computed at the user's previous event instead of now.

The argument for blending trending at request time (README, architecture):
on a user log, compare decayed popularity ranked at prediction time, the
same excluding what the user already rated, and the same frozen at the
user's previous event (what a list written by the flow at that event holds).
Same loader, positives and metrics as ``livereco eval``.

    .venv/bin/python -m benchmarks.popularity_staleness                  # MovieTweetings 100k
    .venv/bin/python -m benchmarks.popularity_staleness path/to/ratings.dat --positive 7
"""

from __future__ import annotations

import argparse
import statistics
from collections import defaultdict
from pathlib import Path

from benchmarks.machine import machine_line
from flows.evaluation import KS, load
from online.baselines import DecayedPopularity
from online.contract import Settings
from online.metrics import PrequentialMetrics

DEFAULT_LOG = Path(__file__).resolve().parents[2] / "shared" / "data" / "movietweetings-100k"
N = 10


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("log", nargs="?", default=str(DEFAULT_LOG))
    parser.add_argument("--positive", type=float, default=7.0, help="ratings at or above this are positives")
    parser.add_argument("--half-life-s", type=float, default=86400.0)
    args = parser.parse_args()
    data = load(args.log, Settings.from_env({"LIVERECO_RATING_RANGE": "0,10"}), args.positive)
    model = DecayedPopularity(args.half_life_s)
    live, unseen, frozen = PrequentialMetrics(KS), PrequentialMetrics(KS), PrequentialMetrics(KS)
    rated: defaultdict[str, set[str]] = defaultdict(set)
    at_previous: dict[str, list[str]] = {}
    last_ts: dict[str, float] = {}
    gaps: list[float] = []
    for index, event in enumerate(data.events):
        user = event.user_id
        if data.scored[index]:
            seen = rated[user]
            live.update(model.recommend(user, N), event.item_id, data.popularity)
            unseen.update([i for i in model.recommend(user, N + len(seen)) if i not in seen][:N], event.item_id,
                          data.popularity)
            frozen.update(at_previous.get(user, []), event.item_id, data.popularity)
            gaps.append(event.ts - last_ts[user])
        model.learn_one(event)
        rated[user].add(event.item_id)
        at_previous[user] = model.recommend(user, N)
        last_ts[user] = event.ts
    print(f"{data.name}: {sum(data.scored):,} predictions; median gap since the user's previous event "
          f"{statistics.median(gaps) / 86400:.1f} days")
    print(f"{'decayed popularity (half-life ' + f'{args.half_life_s:g} s)':<52}{'HR@10':>8}{'MRR@10':>8}")
    for name, metrics in (("ranked at prediction time", live), ("  the same, excluding the user's rated items", unseen),
                          ("frozen at the user's previous event", frozen)):
        report = metrics.report(len(data.catalog))
        print(f"{name:<52}{report['HR@10']:>8.4f}{report['MRR@10']:>8.4f}")
    print(machine_line())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
