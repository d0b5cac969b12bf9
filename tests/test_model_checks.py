"""One check suite for every recommender behind :class:`online.protocol.Recommender`.

Each model (the baselines of :mod:`online.baselines` and livereco's own
:class:`flows.model.LiverecoModel`) must:

* pickle mid-stream into a copy that answers, and goes on learning, exactly as the original;
* be deterministic: two instances built alike and fed the same stream answer alike,
  whatever ``PYTHONHASHSEED`` is (set iteration order must not leak into answers);
* answer a user never seen, learn an item never seen (which can then be recommended),
  and give ``[]`` for ``n == 0``;
* keep bounded state: on a fixed catalog and a few users, ten times the events do
  not make the pickled model materially bigger.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import subprocess
import sys
from collections.abc import Callable, Iterable
from typing import Any

import pytest

from flows.model import LiverecoModel
from online.baselines import (
    BPRMatrixFactorisation,
    DecayedPopularity,
    ItemKNN,
    LastItemCoVisitation,
    MatrixFactorisation,
    MostPopular,
)
from online.contract import Event, Settings
from online.protocol import Recommender
from tests.processes import ROOT

T0 = 1_700_000_000.0
USERS = [f"u{k}" for k in range(5)]
CATALOG = [f"i{k}" for k in range(30)]
NEVER_SEEN = "never-seen"

MODELS: dict[str, Callable[[], Recommender]] = {
    "most-popular": MostPopular,
    "decayed-popularity": DecayedPopularity,
    "last-item-covisitation": LastItemCoVisitation,
    "river-mf": lambda: MatrixFactorisation(n_factors=8, seed=7),
    "item-knn": lambda: ItemKNN(half_life_s=86400.0),
    "bpr-mf": lambda: BPRMatrixFactorisation(n_factors=8, seed=7),
    "livereco": lambda: LiverecoModel(Settings()),
    "livereco-affinity": lambda: LiverecoModel(Settings(affinity_categories=3)),  # affinity candidates on
    "livereco-context": lambda: LiverecoModel(Settings(context_items=10)),  # context features on (hour segments)
}


def category_of(item: str) -> str:
    """The catalog's categories: every third item alike (events carry it as ``context.category``)."""
    return f"c{CATALOG.index(item) % 3}" if item in CATALOG else "c-new"


def toy_stream(count: int, seed: int = 0) -> list[Event]:
    """``count`` time-ordered events of :data:`USERS` over :data:`CATALOG`.

    Each user walks along the catalog half the time and jumps the other half
    (so every pair of items shows up early); gaps sometimes end a session;
    views mostly, with carts, purchases, ratings (some of them dislikes) and
    the odd producer retry of the previous event. Every event carries its
    item's category (:func:`category_of`).

    >>> [(e.user_id, e.item_id, e.type) for e in toy_stream(3)]
    [('u0', 'i4', 'purchase'), ('u3', 'i29', 'view'), ('u4', 'i29', 'view')]
    """
    rng = random.Random(seed)
    at = {user: rng.randrange(len(CATALOG)) for user in USERS}
    ts = T0
    events: list[Event] = []
    for number in range(count):
        if events and rng.random() < 0.02:
            events.append(events[-1])  # a retry: same event id
            continue
        user = rng.choice(USERS)
        walk = rng.random() < 0.5
        at[user] = (at[user] + rng.choice((1, 1, 2, 7))) % len(CATALOG) if walk else rng.randrange(len(CATALOG))
        ts += rng.choice((5.0, 30.0, 60.0, 3600.0))
        kind = rng.choices(("view", "add_to_cart", "purchase", "rating"), (0.75, 0.12, 0.05, 0.08))[0]
        value = float(rng.randint(1, 5)) if kind == "rating" else None
        item = CATALOG[at[user]]
        events.append(Event(user, item, kind, ts, value=value, event_id=f"e{number}",
                            context={"category": category_of(item)}))
    return events


def catalog_tour() -> list[Event]:
    """Every ordered pair of :data:`CATALOG` items, as two consecutive views of one user, then as two consecutive
    purchases, ending before ``T0``.

    Pairs go to the users in turn, so every user sees every item: after the
    tour, each model's per-item and per-user state has met its whole support
    (livereco's items also learn what their buyers bought next).

    >>> tour = catalog_tour()
    >>> len(tour), [(e.user_id, e.item_id, e.type) for e in tour[:4]]
    (3480, [('u0', 'i0', 'view'), ('u0', 'i1', 'view'), ('u1', 'i0', 'view'), ('u1', 'i2', 'view')])
    >>> [(e.user_id, e.item_id, e.type) for e in tour[1740:1742]]
    [('u0', 'i0', 'purchase'), ('u0', 'i1', 'purchase')]
    """
    pairs = [(a, b) for a in CATALOG for b in CATALOG if a != b] * 2
    start = T0 - 2 * len(pairs) - 1.0
    return [Event(USERS[number % len(USERS)], item, "view" if 2 * number < len(pairs) else "purchase",
                  start + 2 * number + step, context={"category": category_of(item)})
            for number, pair in enumerate(pairs) for step, item in enumerate(pair)]


def learn(model: Recommender, events: Iterable[Event]) -> None:
    for event in events:
        model.learn_one(event)


def answers(model: Recommender, n: int = 10) -> dict[str, list[str]]:
    """What the model recommends to every user, and to one never seen."""
    return {user: model.recommend(user, n) for user in [*USERS, NEVER_SEEN]}


@pytest.fixture(params=list(MODELS))
def make(request: pytest.FixtureRequest) -> Callable[[], Recommender]:
    return MODELS[request.param]


# (a) pickling


def test_a_copy_pickled_mid_stream_answers_and_learns_as_the_original(make: Callable[[], Recommender]) -> None:
    stream = toy_stream(800)
    model = make()
    learn(model, stream[:400])
    copy = pickle.loads(pickle.dumps(model))
    assert answers(copy) == answers(model)
    for event in stream[400:]:
        assert copy.recommend(event.user_id, 10) == model.recommend(event.user_id, 10)
        model.learn_one(event)
        copy.learn_one(event)
    assert answers(copy) == answers(model)


# (b) seeded determinism


def test_two_instances_built_alike_answer_alike(make: Callable[[], Recommender]) -> None:
    first, second = make(), make()
    for event in toy_stream(800, seed=1):
        assert first.recommend(event.user_id, 10) == second.recommend(event.user_id, 10)
        first.learn_one(event)
        second.learn_one(event)
    assert answers(first) == answers(second)


def answers_along_the_same_stream() -> dict[str, list[Any]]:
    """Every model's list before each event of one stream (predict, then learn), then its final answers."""
    out: dict[str, list[Any]] = {}
    for name, make in MODELS.items():
        model = make()
        trace: list[Any] = []
        for event in toy_stream(600, seed=2):
            trace.append(model.recommend(event.user_id, 10))
            model.learn_one(event)
        out[name] = [*trace, answers(model)]
    return out


_HASH_SEED_RUN = """
import json
from tests.test_model_checks import answers_along_the_same_stream
print(json.dumps({"hash": hash("livereco"), "answers": answers_along_the_same_stream()}))
"""


@pytest.fixture(scope="module")
def answers_by_hash_seed() -> list[dict[str, Any]]:
    """Every model's answers along the same stream: here, and in two processes with other ``PYTHONHASHSEED``\\ s."""
    runs = [subprocess.Popen([sys.executable, "-c", _HASH_SEED_RUN], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONHASHSEED": seed}) for seed in ("1", "2")]
    here = {"hash": hash("livereco"), "answers": answers_along_the_same_stream()}
    outputs = [run.communicate(timeout=120)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0]
    there = [json.loads(output.strip().splitlines()[-1]) for output in outputs]
    assert there[0]["hash"] != there[1]["hash"]  # the seeds took effect: string hashes (and set orders) differ
    return [here, *there]


@pytest.mark.parametrize("name", list(MODELS))
def test_answers_do_not_depend_on_the_hash_seed(name: str, answers_by_hash_seed: list[dict[str, Any]]) -> None:
    here, *there = (run["answers"][name] for run in answers_by_hash_seed)
    assert there == [here, here]


# (c) unseen users, unseen items, n = 0


def test_a_user_never_seen_gets_known_items(make: Callable[[], Recommender]) -> None:
    model = make()
    assert model.recommend(NEVER_SEEN, 5) == []  # nothing learned yet: nothing to recommend, no error
    stream = toy_stream(500)
    learn(model, stream)
    recommended = model.recommend(NEVER_SEEN, 10)
    assert isinstance(recommended, list)
    assert len(recommended) <= 10
    assert len(set(recommended)) == len(recommended)
    assert set(recommended) <= {e.item_id for e in stream}


def test_an_item_never_seen_is_learned_and_can_be_recommended(make: Callable[[], Recommender]) -> None:
    model = make()
    stream = toy_stream(500)
    learn(model, stream)
    ts = stream[-1].ts
    learn(model, [Event("newcomer", "i3", "view", ts + 1.0), Event("newcomer", "brand-new", "view", ts + 2.0),
                  Event("follower", "i3", "view", ts + 3.0)])
    assert "brand-new" in model.recommend("follower", len(CATALOG) + 1)


def test_zero_items_asked_zero_given(make: Callable[[], Recommender]) -> None:
    model = make()
    learn(model, toy_stream(300))
    assert model.recommend(USERS[0], 0) == []
    assert model.recommend(NEVER_SEEN, 0) == []


# (d) bounded state


def test_state_stays_bounded_on_a_fixed_catalog(make: Callable[[], Recommender]) -> None:
    """After 20,000 events the pickled model is within 10 % of its size 260 events after the tour.

    The stream opens with a :func:`catalog_tour`, so by then every
    pair of items and every user-item pair has been seen: what grows after
    that grows with the number of events. Besides the 10 %, each catalog item
    may take 4 bytes more: counts past 255 (65,535) pickle one (two) bytes
    wider, a logarithmic growth that is not more state.
    """
    tour = catalog_tour()
    stream = tour + toy_stream(20_000 - len(tour), seed=3)
    model = make()
    learn(model, stream[: len(tour) + 260])
    early = len(pickle.dumps(model))
    learn(model, stream[len(tour) + 260 :])
    late = len(pickle.dumps(model))
    assert late <= 1.10 * early + 4 * len(CATALOG), (early, late)
