"""Score-ordered structures: ``place`` keeps its order exactly as a fresh sort would, ties included."""

from __future__ import annotations

import random

import pytest

from online.forward_decay import place
from online.trending import TrendingTop


def _reference(history: list[tuple[str, float]]) -> list[str]:
    """Weakest first; among equal scores the item placed last is the weakest."""
    latest: dict[str, tuple[float, int]] = {}
    for step, (item, score) in enumerate(history):
        latest[item] = (score, step)
    return sorted(latest, key=lambda item: (latest[item][0], -latest[item][1]))


@pytest.mark.parametrize("seed", range(5))
def test_place_keeps_the_order_a_sort_gives_with_many_ties(seed: int) -> None:
    rng = random.Random(seed)
    scores: dict[str, float] = {}
    order: list[str] = []
    history: list[tuple[str, float]] = []
    for _ in range(2000):
        item = f"i{rng.randrange(40)}"
        score = scores.get(item, 0.0) + rng.choice((0.0, 0.0, 1.0, 2.0))  # scores only grow, often tie
        place(scores, order, item, score)
        history.append((item, score))
        assert order == _reference(history)


def test_trending_top_matches_a_brute_force_top_under_eviction() -> None:
    rng = random.Random(7)
    top = TrendingTop(capacity=25)
    kept: dict[str, float] = {}
    for _ in range(3000):
        item = f"i{rng.randrange(60)}"
        score = top._scores.get(item, 0.0) + rng.random()
        top.learn_one(item, score)
        if item in top._scores:
            kept[item] = score
        kept = {i: s for i, s in kept.items() if i in top._scores}
        assert len(top) <= 25
        best = sorted(kept.items(), key=lambda pair: -pair[1])[:10]
        assert [item for item, _ in top.top(10)] == [item for item, _ in best]
