"""The ranker learns from a sample of outcomes and scores every one (``LIVERECO_RANKER_LEARN_EVERY``).

The sample is one in n of each user's events, by a hash of the user and their event count (kept in
the user's history state), not by arrival or stream entry id: a replay after a crash, the same events cut
into other batches, or the evaluation of a log the live flow also ran (other entry ids,
``tests/test_evaluation.py``) learn from the same outcomes and end with the same weights.
"""

from __future__ import annotations

import random

import pytest

from flows.stages import RankerLogic
from flows.stages.messages import Outcome, PersonalPool
from flows.stages.ranker import _sampled
from flows.writes import PrequentialScore, RankerWrite, TrendingWrite
from online.contract import Settings


def _events(count: int, seed: int = 5) -> list[TrendingWrite | Outcome]:
    """Popularity updates and outcomes of users whose personal lists hold the item they go to, or not."""
    rng = random.Random(seed)
    items = [f"i{k}" for k in range(80)]
    values: list[TrendingWrite | Outcome] = []
    for n in range(count):
        ts = 1.7e9 + n
        item = rng.choice(items[:30])
        values.append(TrendingWrite(item, None, 0.01 * n + rng.random(), ts - 0.5, 1))
        personal = [(candidate, 1.0 / (k + 1)) for k, candidate in enumerate(rng.sample(items, 40))]
        values.append(Outcome(f"u{n % 13}", f"{int(ts * 1000)}-{n}", item, ts,
                              PersonalPool(personal, frozenset(), frozenset()), (), n // 13 + 1))
    return values


def _run(settings: Settings, batches: list[list[TrendingWrite | Outcome]]) -> tuple[dict[str, int | None], dict[str, float], int]:
    logic = RankerLogic(settings, None, recoverable=False)
    ranks: dict[str, int | None] = {}
    for batch in batches:
        out, _ = logic.on_batch(batch)
        ranks.update((w.entry_id, w.rank) for w in out if isinstance(w, PrequentialScore))
    return ranks, logic.state.ranker.weights, logic.state.ranker.learned


def test_every_outcome_is_scored_and_only_the_sampled_ones_are_learned_from() -> None:
    settings = Settings(ranker_learn_every=4)
    logic = RankerLogic(settings, None, recoverable=False)
    sampled = scored = 0
    events = _events(400)
    for first in range(0, 800, 2):
        pair = events[first: first + 2]
        outcome = pair[1]
        assert isinstance(outcome, Outcome)
        before = logic.state.ranker.learned
        out, _ = logic.on_batch(pair)
        scored += sum(isinstance(w, PrequentialScore) for w in out)
        chosen = _sampled(outcome.user_id, outcome.seq, 4)
        sampled += chosen
        if not chosen:
            assert logic.state.ranker.learned == before, outcome.entry_id
    assert scored == 400
    assert 70 < sampled < 130 and logic.state.ranker.learned > 0  # about a quarter, and they were learned from


@pytest.mark.parametrize("every", [1, 4])
def test_the_same_events_in_other_batches_learn_the_same_weights_and_scores(every: int) -> None:
    events, settings = _events(600), Settings(ranker_learn_every=every)
    whole = _run(settings, [events])
    cut = _run(settings, [events[start: start + 37] for start in range(0, len(events), 37)])
    assert whole == cut and whole[2] > 0


def test_learning_from_all_outcomes_is_still_available() -> None:
    events = _events(400)
    _, _, all_pairs = _run(Settings(ranker_learn_every=1), [events])
    _, _, sampled_pairs = _run(Settings(ranker_learn_every=4), [events])
    assert sampled_pairs < all_pairs / 2


def test_a_ranker_write_still_follows_a_batch_with_a_sampled_outcome() -> None:
    logic = RankerLogic(Settings(ranker_learn_every=4), None, recoverable=False)
    out, _ = logic.on_batch(_events(200))
    assert any(isinstance(w, RankerWrite) for w in out)


def test_the_sample_does_not_depend_on_entry_ids() -> None:
    """The live flow's entry ids are Redis's, the evaluation's its own: the same events learn the same."""
    events = _events(300)
    renamed = [Outcome(v.user_id, f"other-{k}", v.item_id, v.ts, v.previous, v.segments, v.seq)
               if isinstance(v, Outcome) else v for k, v in enumerate(events)]
    settings = Settings(ranker_learn_every=4)
    assert _run(settings, [events])[1:] == _run(settings, [renamed])[1:]
