"""The ranker stage's cheaper parts compute exactly what the parts they replaced did.

To cut the flow's instructions per event, :class:`online.logistic_sgd.LogisticSGD` replaced River's
``LogisticRegression``, ``online.ranker._sample`` replaced ``random.Random.sample`` and
:meth:`online.blend.Candidates.top` sorts fewer rows by key: rankings, prequential scores and published
weights must not move at all, so each is checked against the original, bit for bit.
"""

from __future__ import annotations

import pickle
import random

import pytest
from river import linear_model, optim

from online.blend import FEATURES, Candidates
from online.logistic_sgd import LogisticSGD
from online.ranker import BlendRanker, Pool, _sample


@pytest.mark.parametrize("seed", range(3))
def test_weights_equal_rivers_logistic_regression_bit_for_bit(seed: int) -> None:
    rng = random.Random(seed)
    river = linear_model.LogisticRegression(optimizer=optim.SGD(0.05), intercept_lr=0.0)
    model = LogisticSGD(0.05)
    for step in range(20_000):
        x = {name: rng.uniform(-3.0, 3.0) * (30.0 if rng.random() < 0.01 else 1.0)  # some past the 18.0 cut-offs
             for name in rng.sample(FEATURES, rng.randint(1, len(FEATURES)))}
        label = rng.random() < 0.9
        river.learn_one(x, label)
        model.learn_one(x, label)
        if step % 997 == 0:
            assert model.weights == {name: float(w) for name, w in river.weights.items()}
            assert list(model.weights) == list(river.weights)  # the order the ranker publishes them in
            assert model.predict_proba_one(x) == pytest.approx(river.predict_proba_one(x)[True], abs=1e-12)
    assert model.weights == {name: float(w) for name, w in river.weights.items()}


def test_a_pickled_model_resumes_where_it_was() -> None:
    model = LogisticSGD(0.1)
    model.learn_one({"trending": 1.0, "personal": -0.5})
    again = pickle.loads(pickle.dumps(model))
    assert (again.learning_rate, again.weights) == (model.learning_rate, model.weights)
    again.learn_one({"both": 1.0})
    assert "both" not in model.weights


@pytest.mark.parametrize("seed", range(5))
def test_sample_draws_what_random_sample_draws(seed: int) -> None:
    mine, library = random.Random(seed), random.Random(seed)
    for _ in range(500):
        size = library.randint(0, 120)
        mine.randint(0, 120)
        k = library.randint(0, min(size, 30))
        mine.randint(0, min(size, 30))
        population = list(range(7, 7 + size))
        assert _sample(mine, population, k) == library.sample(population, k)
    assert mine.random() == library.random()  # the generators are in the same state


def test_a_learned_ranker_equals_one_learning_through_river() -> None:
    """The whole learning path: a BlendRanker whose model is River's learns the same weights, pair for pair."""
    rng = random.Random(11)
    ours, rivers = BlendRanker(seed=3), BlendRanker(seed=3)
    rivers.model = _River()  # type: ignore[assignment]
    for _ in range(300):
        personal = [(f"p{k}", rng.random() * 10) for k in range(rng.randint(0, 60))]
        personal.sort(key=lambda pair: -pair[1])
        trending = [(f"t{k}", 1.0 / (k + 1)) for k in range(rng.randint(0, 60))]
        pool = Pool(personal, trending, repeats={item for item, _ in personal[:3]})
        positive = rng.choice([*[item for item, _ in personal + trending], "unknown"])
        assert ours.learn_one(pool, positive, 20) == rivers.learn_one(pool, positive, 20)
    assert ours.learned > 0 and ours.weights == rivers.weights


class _River:
    """River's model behind the ranker's model protocol."""

    def __init__(self) -> None:
        self.model = linear_model.LogisticRegression(optimizer=optim.SGD(0.05), intercept_lr=0.0)

    @property
    def weights(self) -> dict[str, float]:
        return {name: float(w) for name, w in self.model.weights.items()}

    def learn_one(self, x: dict[str, float], y: bool = True) -> None:
        self.model.learn_one(x, y)


@pytest.mark.parametrize("seed", range(5))
def test_top_rows_equal_a_stable_sort_of_every_row(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(2000):
        count = rng.randint(1, 120)
        negative = [rng.choice((0.0, -0.0, -1.0, 1.0, rng.random(), -rng.random())) for _ in range(count)]  # ties
        candidates = Candidates(Pool(personal=[("p", 1.0)]), [f"i{k}" for k in range(count)], negative, 1, [0], {})
        n = rng.randint(0, 130)
        assert candidates.top(n) == sorted(range(count), key=negative.__getitem__)[:n]


def test_a_snapshot_holding_rivers_model_resumes_into_the_compiled_one() -> None:
    """Snapshots written before the change hold River's model: the stage takes its weights over, learning goes on."""
    from flows.stages import RankerLogic, RankerState
    from online.contract import Settings
    from online.trending import TrendingTop

    ranker = BlendRanker()
    river = linear_model.LogisticRegression(optimizer=optim.SGD(ranker.learning_rate), intercept_lr=0.0)
    river.learn_one({"trending": 1.0, "personal": -0.5}, True)
    ranker.model = river  # type: ignore[assignment]
    logic = RankerLogic(Settings(), pickle.dumps(RankerState(TrendingTop(), ranker)), recoverable=False)
    resumed = logic.state.ranker
    assert isinstance(resumed.model, LogisticSGD)
    assert resumed.weights == {name: float(w) for name, w in river.weights.items()}
    resumed.model.learn_one({"trending": 0.5})
    river.learn_one({"trending": 0.5}, True)
    assert resumed.weights == {name: float(w) for name, w in river.weights.items()}
