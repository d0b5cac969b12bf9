"""The online ranker learns from the pairs across its list's cut, and only from them.

A recording wrapper around the ranker's model shows which candidates each
event's item was compared with: their personal rank is read back from the pair's
``personal_rank`` feature difference.
"""

from __future__ import annotations

from typing import Any

import pytest

from online.contract.settings import Settings
from online.ranker import BlendRanker, Pool

PERSONAL = [(f"p{k}", 100.0 - k) for k in range(40)]
"""A user's 40 personal candidates, p0 best: untrained, the ranker keeps this order."""


class RecordingModel:
    """Passes everything to the ranker's model and keeps each learned pair's feature differences."""

    def __init__(self, model: Any):
        self.model = model
        self.pairs: list[dict[str, float]] = []

    @property
    def weights(self) -> Any:
        return self.model.weights

    def learn_one(self, x: dict[str, float], y: bool = True) -> None:
        self.pairs.append(dict(x))
        self.model.learn_one(x, y)


def _compared_ranks(positive_rank: int, **ranker: Any) -> list[int]:
    """Personal ranks (0-based) of the candidates the item at ``positive_rank`` was compared with, on an untrained ranker."""
    blend_ranker = BlendRanker(seed=7, **ranker)
    recorder = RecordingModel(blend_ranker.model)
    blend_ranker.model = recorder  # type: ignore[assignment]
    blend_ranker.learn_one(Pool(personal=PERSONAL), positive=f"p{positive_rank}", n=10)
    chosen = 1.0 / (positive_rank + 1)
    return sorted(round(1.0 / (chosen - pair.get("personal_rank", 0.0))) - 1 for pair in recorder.pairs)


def test_an_item_the_list_missed_is_compared_with_items_listed_instead() -> None:
    ranks = _compared_ranks(25, list_length=10, negative_depth=30, negatives=4)
    assert len(ranks) == 4 and all(rank < 10 for rank in ranks)


def test_a_listed_item_is_compared_with_candidates_just_below_the_list() -> None:
    ranks = _compared_ranks(3, list_length=10, negative_depth=30, negatives=4)
    assert len(ranks) == 4 and all(10 <= rank < 30 for rank in ranks)


def test_pairs_on_one_side_of_the_cut_are_never_learned() -> None:
    small = Pool(personal=PERSONAL[:8], trending=[("t", 1.0)])  # 9 candidates: all fit in a list of 10
    ranker = BlendRanker(seed=7, list_length=10, negative_depth=30)
    for positive in ("p5", "t", "p0"):
        ranker.learn_one(small, positive=positive, n=10)
    assert ranker.learned == 0 and ranker.weights == {}


def test_the_ranker_learns_to_list_what_users_go_to() -> None:
    trending = [(f"t{k}", 1.0 - k / 100) for k in range(20)]
    pool = Pool(personal=PERSONAL[:15], trending=trending)
    ranker = BlendRanker(seed=7, list_length=10, negative_depth=35)
    assert "t0" not in [item for item, _, _ in ranker.rank(pool, n=10)]  # untrained: 15 personal candidates first
    for _ in range(40):
        ranker.learn_one(pool, positive="t0", n=10)
    assert ranker.learned > 0
    assert "t0" in [item for item, _, _ in ranker.rank(pool, n=10)]


@pytest.mark.parametrize(("list_length", "depth"), [(20, 20), (30, 20), (0, 20)])
def test_a_list_length_that_leaves_nothing_below_the_list_is_refused(list_length: int, depth: int) -> None:
    with pytest.raises(ValueError, match="list length"):
        BlendRanker(list_length=list_length, negative_depth=depth)


def test_the_settings_name_both_ranker_lengths_when_depth_is_not_below_the_list() -> None:
    with pytest.raises(ValueError, match="LIVERECO_RANKER_NEGATIVE_DEPTH=20: must be above LIVERECO_RANKER_LIST_LENGTH=20"):
        Settings.from_env({"LIVERECO_RANKER_LIST_LENGTH": "20", "LIVERECO_RANKER_NEGATIVE_DEPTH": "20"})
    with pytest.raises(ValueError, match="LIVERECO_RANKER_LIST_LENGTH=0: must be positive"):
        Settings.from_env({"LIVERECO_RANKER_LIST_LENGTH": "0"})
