"""Context features (device, hour of day): the bounded segment popularity, the ranker learning from it, and the
server serving, for a request's device and hour, exactly the list the flow's ranker stage scored."""

from __future__ import annotations

import dataclasses
import pickle
import random
from pathlib import Path

import pytest
import redis

from flows.event_writer import EventWriter
from flows.model import LiverecoModel
from flows.recovery import prepare_store
from online.blend import FEATURES, Candidates, Pool
from online.context_popularity import ContextPopularity, context_segments
from online.contract import Event, Settings
from online.ranker import BlendRanker
from tests.conftest import LiveServer
from tests.test_affinity_candidates import _run_with_recovery

T0 = 1_700_000_000.0  # 22:13 UTC
HOUR = 22


def test_segments_come_from_the_context_or_the_event_time() -> None:
    assert context_segments({"device": "phone", "hour": 7}, T0) == ("device=phone", "hour=7")
    assert context_segments({"hour": 7.0}, T0) == ("", "hour=7")
    for bad_hour in (24, -1, 7.5, "7", True):  # not an hour of the day: the event's own UTC hour
        assert context_segments({"hour": bad_hour}, T0) == ("", f"hour={HOUR}")
    assert context_segments({"device": ""}, T0)[0] == ""


def test_each_segment_keeps_its_bound_and_the_coldest_segment_makes_way() -> None:
    popularity = ContextPopularity(per_segment=5, max_segments=3, half_life_s=3600.0)
    for k in range(15):
        popularity.learn_one(f"device=d{k % 3}", f"item{k}", ts=float(k))  # five each; d0's best is the oldest
    assert [len(popularity.relative(f"device=d{k}")) for k in range(3)] == [5, 5, 5]
    popularity.learn_one("device=new", "x", ts=100.0)
    assert len(popularity) == 3
    assert popularity.relative("device=d0") == {} and popularity.relative("device=new") == {"x": 1.0}
    popularity.learn_one("device=old", "x", ts=-86400.0)  # colder than every kept segment: not kept
    assert popularity.relative("device=old") == {} and len(popularity) == 3


def test_an_item_that_keeps_coming_is_never_undercounted() -> None:
    popularity = ContextPopularity(per_segment=3, half_life_s=1e9)
    for k in range(30):
        popularity.learn_one("hour=9", f"once{k}", ts=float(k))
        popularity.learn_one("hour=9", "regular", ts=float(k))
    assert popularity.top("hour=9", 1) == [("regular", 1.0)]
    assert all(share < 1.0 for item, share in popularity.relative("hour=9").items() if item != "regular")


def test_newer_events_count_more() -> None:
    popularity = ContextPopularity(half_life_s=3600.0)
    popularity.learn_one("hour=9", "old", ts=0.0)
    popularity.learn_one("hour=9", "old", ts=0.0)
    popularity.learn_one("hour=9", "new", ts=7200.0)  # one event, two half-lives later: worth 4 of the old
    assert popularity.relative("hour=9") == pytest.approx({"new": 1.0, "old": 0.5})


def test_changed_tops_report_each_changed_segment_once() -> None:
    popularity = ContextPopularity()
    popularity.learn_one("device=phone", "a", ts=0.0)
    popularity.learn_one("hour=1", "b", ts=0.0)
    assert popularity.changed_tops() == {"device=phone": [("a", 1.0)], "hour=1": [("b", 1.0)]}
    assert popularity.changed_tops() == {}
    popularity.learn_one("hour=1", "c", ts=1.0)
    assert list(popularity.changed_tops()) == ["hour=1"]


def test_the_live_relative_popularity_equals_one_computed_afresh() -> None:
    rng = random.Random(5)
    popularity = ContextPopularity(per_segment=8, max_segments=3, half_life_s=600.0)
    for step in range(3000):
        popularity.learn_one(f"hour={rng.randrange(4)}", f"i{int(rng.paretovariate(1.2)) % 40}", ts=step * 1.5)
    afresh = pickle.loads(pickle.dumps(popularity))  # unpickling recomputes every share from the log scores
    assert len(popularity) == 3
    for segment in (f"hour={h}" for h in range(4)):
        assert popularity.relative(segment) == pytest.approx(afresh.relative(segment), rel=1e-12)
        assert not popularity.relative(segment) or max(popularity.relative(segment).values()) == 1.0


def test_it_pickles_to_the_same_popularity() -> None:
    popularity = ContextPopularity(per_segment=4, max_segments=2)
    for k in range(10):
        popularity.learn_one(f"hour={k % 2}", f"i{k % 5}", ts=float(k))
    copy = pickle.loads(pickle.dumps(popularity))
    assert all(copy.relative(s) == popularity.relative(s) for s in ("hour=0", "hour=1"))
    assert (copy.per_segment, copy.max_segments) == (4, 2)


def test_a_negative_context_setting_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="LIVERECO_CONTEXT_ITEMS=-1: must not be negative"):
        Settings.from_env({"LIVERECO_CONTEXT_ITEMS": "-1"})


@pytest.mark.parametrize("arguments", [{"per_segment": 0}, {"max_segments": 0}, {"half_life_s": 0.0}])
def test_bad_bounds_are_refused(arguments: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="per_segment and max_segments must be at least 1"):
        ContextPopularity(**arguments)  # type: ignore[arg-type]


def test_the_context_features_are_the_request_segments_popularity() -> None:
    pool = Pool(personal=[("a", 2.0), ("b", 1.0)], trending=[("t", 1.0)], device={"b": 1.0, "t": 0.25},
                hour={"a": 0.5})
    scored = Candidates.score(pool, [0.0] * len(FEATURES))
    features = {item: dict(zip(FEATURES, scored.features(row), strict=True)) for row, item in enumerate(scored.items)}
    assert (features["a"]["device"], features["a"]["hour"]) == (0.0, 0.5)
    assert (features["b"]["device"], features["t"]["device"]) == (1.0, 0.25)
    weights = [0.0] * len(FEATURES)
    weights[FEATURES.index("device")] = 1.0
    assert [scored.items[row] for row in Candidates.score(pool, weights).top(3)] == ["b", "t", "a"]


def test_the_ranker_learns_to_follow_the_device() -> None:
    personal = [(f"p{k}", 10.0 - k) for k in range(8)]
    phone, desktop = {"p6": 1.0, "p7": 0.8}, {"p0": 1.0, "p1": 0.9}
    ranker = BlendRanker(seed=2, list_length=2, negative_depth=8)
    for k in range(200):  # phone users go to what is popular on phones; desktop users to the personal top
        on_phone = k % 2 == 0
        pool = Pool(personal=personal, device=phone if on_phone else desktop)
        ranker.learn_one(pool, positive=("p6" if k % 4 == 0 else "p7") if on_phone else "p0", n=2)
    assert ranker.weights["device"] > 0.0
    assert {item for item, _, _ in ranker.rank(Pool(personal=personal, device=phone), n=2)} == {"p6", "p7"}


def _fans(users: int) -> list[Event]:
    """Every user views the hub; phone users then go to phone items, desktop users to desktop items."""
    events = []
    for u in range(users):
        device = "phone" if u % 2 == 0 else "desktop"
        target = f"{device}{u % 3}"
        events += [Event(f"u{u}", "hub", "view", T0 + 10.0 * u, context={"device": device}),
                   Event(f"u{u}", target, "view", T0 + 10.0 * u + 1, context={"device": device})]
    return events


def test_the_model_recommends_by_device_once_it_has_learned() -> None:
    settings = dataclasses.replace(Settings(), context_items=20, ranker_list_length=3, ranker_negative_depth=10,
                                   recent_weight=0.0)
    model = LiverecoModel(settings)
    for event in _fans(120):
        model.learn_one(event)
    model.learn_one(Event("new", "hub", "view", T0 + 5000.0, context={"device": "phone"}))
    on_phone = model.recommend("new", 3, device="phone", hour=HOUR)
    on_desktop = model.recommend("new", 3, device="desktop", hour=HOUR)
    assert set(on_phone) == {"phone0", "phone1", "phone2"}, on_phone
    assert set(on_desktop) == {"desktop0", "desktop1", "desktop2"}, on_desktop
    off = LiverecoModel(dataclasses.replace(settings, context_items=0))
    for event in _fans(120):
        off.learn_one(event)
    off.learn_one(Event("new", "hub", "view", T0 + 5000.0, context={"device": "phone"}))
    assert off.recommend("new", 3, device="phone") == off.recommend("new", 3, device="desktop")  # off: no context


@pytest.mark.slow
def test_the_server_serves_for_a_device_and_hour_the_list_the_ranker_stage_scored(
        redis_client: redis.Redis, settings: Settings, tmp_path: Path) -> None:
    settings = dataclasses.replace(settings, context_items=20, ranker_list_length=3, ranker_negative_depth=10,
                                   recent_weight=0.0, partitions=1, read_count=1)
    store = tmp_path / "recovery"
    prepare_store(store, partitions=1)
    EventWriter(redis_client, settings.keys).append(
        [*_fans(120), Event("probe", "hub", "view", T0 + 5000.0, context={"device": "phone"})])
    _run_with_recovery(settings, store)
    assert redis_client.hget(settings.keys.context(0), f"hour={HOUR}") is not None  # published for the server

    server = LiveServer(settings).start()
    try:
        server.app.ranker_weights.max_age_s = 0.0
        status, served = server.json("GET", f"/v1/users/probe/recommendations?n=20&device=phone&hour={HOUR}")
        desktop_status, on_desktop = server.json("GET", f"/v1/users/probe/recommendations?n=3&device=desktop&hour={HOUR}")
        bad_status, bad = server.json("GET", "/v1/users/probe/recommendations?hour=24")
        long_status, long_device = server.json("GET", f"/v1/users/probe/recommendations?device={'x' * 257}")
    finally:
        server.stop()
    assert status == 200 and desktop_status == 200
    served_items = [item["item_id"] for item in served["items"]]
    assert set(served_items[:3]) == {"phone0", "phone1", "phone2"}, served_items
    assert {item["item_id"] for item in on_desktop["items"]} == {"desktop0", "desktop1", "desktop2"}
    assert bad_status == 400 and "hour" in bad["error"]["message"]
    assert long_status == 400 and "device: expected `str` of length <= 256" in long_device["error"]["message"]

    # The probe's next event, on a phone in the same hour: the flow scores it against the list served above.
    EventWriter(redis_client, settings.keys).append(
        [Event("probe", "phone1", "view", T0 + 5001.0, context={"device": "phone"})])
    second = _run_with_recovery(settings, store)
    assert [score.user_id for score in second] == ["probe"]
    assert list(second[0].listed) == served_items


def test_the_memory_benchmark_measures_full_segments(capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks.context_memory import main, replica

    assert 0 < replica(24, 5)[1] < replica(48, 5)[1]  # grows with the segments held, all at their bound
    assert main(["--segments", "30", "--per-segment", "5"]) == 0
    out = capsys.readouterr().out
    assert "30 segments x 5 items" in out and "MEMORY USAGE" in out


def test_the_speed_benchmark_times_a_log_of_clicks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks.context_speed import main

    log = tmp_path / "train.tsv"
    log.write_text("SessionId\tItemId\tTime\n" + "".join(f"{k % 7}\ti{k % 13}\t{T0 + 600 * k}\n" for k in range(200)))
    assert main([str(log), "--per-segment", "5", "--repeat", "1"]) == 0
    assert "200 clicks, 5 items per segment:" in capsys.readouterr().out
