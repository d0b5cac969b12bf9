"""LiverecoModel: the dataflow's stages run in one process score a log as the real dataflow does.

The model answers ``recommend`` before each event (the evaluation driver's
protocol for baselines); the dataflow's ranker stage scores each event
against the list the server would have served just before it. Same stages,
same routing, so the same metrics: the model is a faithful, Bytewax-free
stand-in for livereco in notebooks and in the shared model checks.
"""

from __future__ import annotations

from pathlib import Path

import orjson

from flows.evaluation import evaluate_baseline, evaluate_livereco, load
from flows.model import LiverecoModel
from online.contract import Event, Settings
from online.metrics import PrequentialMetrics
from tests.test_evaluation import session_log, write_split
from tests.test_model_checks import toy_stream

SETTINGS = Settings.from_env({}, flow_metrics_port=0)


def assert_same(model: PrequentialMetrics, flow: PrequentialMetrics) -> None:
    """Equal, not close: the model differs from the flow only for events sharing a timestamp (these logs have none).

    A tolerance would let miswiring through: outcomes sent to the wrong ranker
    shard, or trending kept as of each shard's last outcome instead of now,
    move these metrics by less than 0.005.
    """
    assert model.predictions == flow.predictions
    assert model.report() == flow.report()


def test_a_session_log_scores_as_in_the_dataflow(tmp_path: Path) -> None:
    write_split(tmp_path, session_log(400), test_from=300)
    data = load(tmp_path, SETTINGS)
    flow, _, _ = evaluate_livereco(data, SETTINGS, batch_size=1)
    assert_same(evaluate_baseline(LiverecoModel(SETTINGS), data), flow)


def test_a_user_log_with_purchases_and_dislikes_scores_as_in_the_dataflow(tmp_path: Path) -> None:
    # Retries left out: the dataflow drops a duplicate (no score: a miss), a baseline is asked anyway.
    events = list({e.event_id: e for e in toy_stream(3000, seed=5)}.values())
    log = tmp_path / "log.jsonl"
    log.write_bytes(b"".join(orjson.dumps(e.to_dict()) + b"\n" for e in events))
    data = load(log, SETTINGS, positive=4.0, mode="session", warmup_fraction=0.0)  # user mode: 5 users, few new items
    assert sum(data.scored) > 1000
    flow, _, _ = evaluate_livereco(data, SETTINGS, batch_size=1)
    assert_same(evaluate_baseline(LiverecoModel(SETTINGS), data), flow)


def test_a_user_log_with_affinity_candidates_scores_as_in_the_dataflow(tmp_path: Path) -> None:
    settings = Settings.from_env({}, flow_metrics_port=0, affinity_categories=3)
    events = list({e.event_id: e for e in toy_stream(3000, seed=6)}.values())  # every event has a category
    log = tmp_path / "log.jsonl"
    log.write_bytes(b"".join(orjson.dumps(e.to_dict()) + b"\n" for e in events))
    data = load(log, settings, positive=4.0, mode="session", warmup_fraction=0.0)
    flow, _, weights = evaluate_livereco(data, settings, batch_size=1)
    assert weights[0]["affinity"] != 0.0 or weights[0]["affinity_rank"] != 0.0  # the generator took part
    assert_same(evaluate_baseline(LiverecoModel(settings), data), flow)
    assert flow.report() != evaluate_livereco(data, SETTINGS, batch_size=1)[0].report()  # and changed the lists


def test_a_user_never_seen_gets_trending_and_an_item_its_neighbours() -> None:
    model = LiverecoModel(SETTINGS)
    for step, (user, item) in enumerate([("a", "x"), ("a", "y"), ("b", "y"), ("b", "z"), ("c", "y")]):
        model.learn_one(Event(user, item, "view", 1.7e9 + step))
    assert model.recommend("stranger", 2) == ["y", "z"]
    assert model.similar("y", 5) == ["z", "x"]  # after y (forward) outweighs before y (backward, half)
    assert model.similar("unknown", 5) == []
    assert model.recommend("c", 3)[:2] == ["y", "z"]
