"""Exploration: a new item reaches lists only with the slot on; the flow and the server fill it alike; bounded state."""

from __future__ import annotations

import pickle
from dataclasses import replace

import orjson
import redis

from flows.model import LiverecoModel
from flows.redis_sink import RankerWrite
from flows.stages import RankerLogic
from online.contract import CandidateList, Event, RedisKeys, Settings, encode_candidates, stable_hash
from online.exploration import ExplorationPool
from tests.conftest import LiveServer

SETTINGS = Settings.from_env({}, flow_metrics_port=0)
T0 = 1.7e9


def shop_with_a_new_item(settings: Settings) -> LiverecoModel:
    """Sixty established items (eight one-off visitors each); then someone views ``new``, and twenty shoppers browse.

    With more items than a trending pool holds (``LIVERECO_CANDIDATES``), one
    view leaves ``new`` outside every pool: only exploration can show it.
    """
    model = LiverecoModel(settings)
    step = 0
    for visitor in range(480):
        model.learn_one(Event(f"v{visitor}", f"i{visitor % 60}", "view", T0 + step))
        step += 1
    model.learn_one(Event("launcher", "new", "view", T0 + step))
    for user in range(20):  # outcomes: rounds of the bandit's draw
        for item in range(2):
            step += 1
            model.learn_one(Event(f"u{user}", f"i{user + item}", "view", T0 + step))
    return model


def test_a_new_item_reaches_lists_with_exploration_on_and_not_with_it_off() -> None:
    off = shop_with_a_new_item(replace(SETTINGS, explore_position=0))
    on = shop_with_a_new_item(replace(SETTINGS, explore_position=3))
    assert not any("new" in off.recommend(f"u{user}", 10) for user in range(20))
    listed = [on.recommend(f"u{user}", 10) for user in range(20)]
    assert all(items[2] == "new" for items in listed)  # the third place, the top two untouched
    assert [items[:2] for items in listed] == [off.recommend(f"u{user}", 10)[:2] for user in range(20)]
    assert on.recommend("u0", 2) == off.recommend("u0", 2)  # a list shorter than the slot has none


def test_an_item_leaves_exploration_once_it_has_its_own_signal_or_proves_poor() -> None:
    pool = ExplorationPool(capacity=10, new_events=2, redraw_every=1)
    pool.observe("a", events=1)
    pool.observe("b", events=1)
    pool.observe("a", events=3)
    assert list(pool.arms) == ["b"]
    for _ in range(200):  # b is shown and passed over; the slot's incumbent is taken one time in ten
        pool.learn_one("b" if pool.order else None, incumbent="x", positive="x" if _ % 10 == 0 else "y")
    assert "b" not in pool.arms and pool.order == []


def test_exploration_state_is_bounded() -> None:
    pool = ExplorationPool(capacity=50, new_events=5, redraw_every=4)
    for n in range(10_000):
        pool.observe(f"item{n}", events=1)
        pool.learn_one(pool.order[0] if pool.order else None, incumbent=None, positive=f"item{n - 3}")
    assert len(pool.arms) == 50 and len(pool.order) <= 50 and len(pool.retired) <= 200


def test_the_pool_pickles_and_goes_on_exactly_as_the_original() -> None:
    pool = ExplorationPool(capacity=20, redraw_every=2, seed=3)
    for n in range(30):
        pool.observe(f"item{n}", events=1)
        pool.learn_one(pool.order[0] if pool.order else None, incumbent="x", positive="x")
    copy = pickle.loads(pickle.dumps(pool))
    for one in (pool, copy):
        for n in range(30, 60):
            one.observe(f"item{n}", events=1)
            one.learn_one(one.order[0] if one.order else None, incumbent="x", positive=f"item{n - 1}")
    assert copy.order == pool.order and copy.arms == pool.arms and copy.version == pool.version


def test_the_ranker_stage_publishes_the_order_and_recovers_it() -> None:
    model = shop_with_a_new_item(replace(SETTINGS, explore_position=3))
    replica = model.rankers[0]
    logic = RankerLogic(model.settings, replica.snapshot() or pickle.dumps(replica.state))
    assert logic.state.exploration.order == replica.state.exploration.order == ["new"]
    write = RankerWrite(0, {}, 0, replica.state.exploration.published())
    assert orjson.loads(write.blob())["explore"] == [["new", None]]


def test_the_server_fills_the_slot_with_the_item_the_flow_does(
        live_server: LiveServer, redis_client: redis.Redis, keys: RedisKeys, settings: Settings) -> None:
    # The flow's state: a shopper's personal pool, trending, the ranker's weights and exploration order.
    model = shop_with_a_new_item(replace(SETTINGS, explore_position=settings.explore_position))
    user = "u3"
    personal = model.user_lists[user].state.previous
    assert personal is not None
    replica = model.rankers[stable_hash(user) % model.settings.ranker_shards].state
    redis_client.set(keys.user_recs(user), encode_candidates(CandidateList(
        [item for item, _ in personal.ranked], [score for _, score in personal.ranked],
        repeats=[p for p, (item, _) in enumerate(personal.ranked) if item in personal.repeats],
        exclude=sorted(personal.exclude))))
    trending = replica.trending.top(200)
    redis_client.zadd(keys.trending(), {item: float(200 - rank) for rank, (item, _) in enumerate(trending)})
    published = [*replica.exploration.published(), ("other-new", "shoes")]
    shard = stable_hash(user) % settings.ranker_shards
    redis_client.hset(keys.ranker(), f"shard{shard}", RankerWrite(shard, replica.ranker.weights, 1, published).blob())
    live_server.app.ranker_weights.max_age_s = 0.0
    n = settings.explore_position + 2

    status, body = live_server.json("GET", f"/v1/users/{user}/recommendations?n={n}")
    assert status == 200
    served = [(i["item_id"], i["source"]) for i in body["items"]]
    assert served[settings.explore_position - 1] == ("new", "explore")
    assert [item for item, _ in served] == model.recommend(user, n)  # the flow's list, slot and all
    # The exclusions hold, and the page's category picks that category's new items.
    status, body = live_server.json("GET", f"/v1/users/{user}/recommendations?n={n}&exclude=new")
    assert [(i["item_id"], i["source"]) for i in body["items"]][settings.explore_position - 1] == \
        ("other-new", "explore")
    redis_client.zadd(keys.trending("shoes"), {"s1": 1.0})
    status, body = live_server.json("GET", f"/v1/users/{user}/recommendations?n={n}&category=shoes")
    assert [i["item_id"] for i in body["items"] if i["source"] == "explore"] == ["other-new"]
