"""``NeighbourCandidates.rank`` alone, for counting: 12 recent items, 25 neighbours each from 150 ids, the top 50.

Run by path with ``PYTHONPATH`` set to the tree to count, under valgrind, with ``CALLS`` calls and with none
(the difference / ``CALLS``: instructions per call)::

    PYTHONHASHSEED=0 PYTHONPATH=TREE valgrind --tool=cachegrind --cache-sim=no python benchmarks/rank_count.py 2000
    PYTHONHASHSEED=0 PYTHONPATH=TREE valgrind --tool=cachegrind --cache-sim=no python benchmarks/rank_count.py 0

It prints the best three of the ranking, so two trees can be checked to rank alike.
"""

from __future__ import annotations

import random
import sys

from online.neighbour_candidates import NeighbourCandidates


def main(calls: int) -> list[tuple[str, float]]:
    rng = random.Random(1)
    pool = [f"sku-{k:05d}" for k in range(150)]
    candidates = NeighbourCandidates()
    recent: list[tuple[str, float, float]] = []
    for j in range(12):
        item = pool[j]
        candidates.learn_one(item, [(other, 1.0 / (k + 1)) for k, other in enumerate(rng.sample(pool, 25))])
        recent.append((item, rng.choice([1.0, 2.0, 3.0, -1.0]) if j else 1.0, 1.7e9 - j))
    exclude = set(rng.sample(pool, 5))
    ranked: list[tuple[str, float]] = []
    for _ in range(calls):
        ranked = candidates.rank(recent, 50, exclude, recent_weight=0.25, position_decay=2.0)
    return ranked[:3]


if __name__ == "__main__":
    print(main(int(sys.argv[1])))
