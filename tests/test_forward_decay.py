"""Score-ordered structures: ``place`` keeps its order exactly as a fresh sort would, ties included."""

from __future__ import annotations

import random

import pytest

from online.forward_decay import place, strongest
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


@pytest.mark.parametrize("seed", range(40))
def test_trending_top_cache_moved_in_place_equals_a_rebuild_after_every_update(seed: int) -> None:
    """The cached read is moved entry by entry; after any update it must be what a rebuild gives (ties included)."""
    rng = random.Random(seed)
    top = TrendingTop(capacity=rng.choice((5, 20, 200)))
    items = [f"i{k}" for k in range(rng.choice((3, 30, 300)))]
    moved = 0
    for _ in range(1500):
        if rng.random() < 0.3:
            top.top(rng.randint(0, 40))
        item = rng.choice(items)
        score = top._scores.get(item, 0.0) + rng.choice((0.0, 0.5, 1.0, rng.random()))
        kept = top._cache is not None
        top.learn_one(item, round(score, 1) if rng.random() < 0.5 else score)  # rounding: ties, and a few drops
        if top._cache is not None:
            moved += kept and item in top._cached
            assert top._cache == strongest(top._scores, top._order, top._size)
            assert top._negative_logs == [-top._scores[i] for i, _ in top._cache]
    assert moved > 0 or len(items) == 3  # entries were moved, not only rebuilt


@pytest.mark.parametrize("seed", range(6))
def test_trending_top_positions_kept_across_updates_equal_the_read(seed: int) -> None:
    """The positions the ranker's replica keeps between outcomes are always those of its current read, and
    blending with them (positions past a shorter read included) gives what blending without them gives."""
    from online.blend import Candidates, Pool, blend

    rng = random.Random(seed)
    top = TrendingTop(capacity=rng.choice((5, 20, 200)))
    items = [f"i{k}" for k in range(rng.choice((3, 30, 300)))]
    reused = 0
    for _ in range(1500):
        n = rng.randint(0, 40)
        kept = top._positions
        listed, positions = top.top_positions(n)
        reused += positions is kept
        assert listed == top.top(n)
        assert positions == {item: at for at, (item, _) in enumerate(top._cache or [])}
        assert {item: at for item, at in positions.items() if at < n} == {item: at for at, (item, _) in enumerate(listed)}
        personal = [(item, rng.random()) for item in rng.sample(items, min(len(items), 8))]
        weights = {name: rng.uniform(-1, 1) for name in ("personal", "trending", "trending_rank", "both", "repeat")}
        exclude = frozenset(rng.sample(items, 1))
        plain = Pool(personal, listed, exclude=exclude)
        with_positions = Pool(personal, listed, exclude=exclude, trending_at=positions)
        assert blend(with_positions, weights, 20) == blend(plain, weights, 20)
        a, b = Candidates.score(plain, [0.5] * 10), Candidates.score(with_positions, [0.5] * 10)
        assert [a.features(row) for row in range(len(a.items))] == [b.features(row) for row in range(len(b.items))]
        item = rng.choice(items)
        top.learn_one(item, top._scores.get(item, 0.0) + rng.choice((0.0, 0.5, 1.0, rng.random())))
    assert reused > 0
