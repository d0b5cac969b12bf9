"""Each stage's settings are one object per flow, shared by its keys' logics (docs/performance.md, branch flow9).

A logic is made for every new user and item; it no longer copies a dozen settings into itself. Sharing the
object changes neither outputs nor snapshots: a logic with the shared config and one with its own give the same
messages and pickle the same state, and recovery snapshots do not carry the config.
"""

from __future__ import annotations

import pickle
from typing import Any

from flows.model import LiverecoModel
from flows.stages.items import ItemConfig, ItemLogic
from flows.stages.messages import NeighbourReply, Outcome, Touch
from flows.stages.parse import ParsedEvent
from flows.stages.user_history import UserHistoryConfig, UserHistoryLogic
from flows.stages.user_lists import UserListConfig, UserListLogic
from online.contract import Event, Settings
from online.item_embedding import DIM

SETTINGS = Settings.from_env({}, candidates=7, recent_weight=0.5, position_decay=1.5, neighbours=9,
                             purchase_window_s=3600.0, recent_items=6)


def test_logics_take_the_config_they_are_given() -> None:
    history, items, lists = UserHistoryConfig(SETTINGS, True), ItemConfig(SETTINGS, 5.0), UserListConfig(SETTINGS)
    assert UserHistoryLogic(SETTINGS, None, recoverable=False, config=history).config is history
    assert ItemLogic(SETTINGS, None, recoverable=False, config=items).config is items
    assert UserListLogic(SETTINGS, None, recoverable=False, config=lists).config is lists
    assert (history.reorder, history.recent_items, history.window_s) == (True, 6, 3600.0)
    assert (items.k, items.reply_k, items.capacity, items.learn_until_ts) == (9, 9, 18, 5.0)
    assert (lists.n, lists.recent_weight, lists.position_decay) == (7, 0.5, 1.5)


def test_a_shared_config_gives_the_same_outputs_and_state_as_an_own_one() -> None:
    events = [ParsedEvent(Event("ann", item, kind, 1.7e9 + n), f"{n + 1}-0", n + 1)
              for n, (item, kind) in enumerate([("a", "view"), ("b", "view"), ("b", "purchase"), ("c", "view")])]
    shared = UserHistoryConfig(SETTINGS)
    own, with_shared = UserHistoryLogic(SETTINGS, None), UserHistoryLogic(SETTINGS, None, config=shared)
    with_shared.state.life = own.state.life  # the life is the creation time
    assert repr(own.on_batch(events)) == repr(with_shared.on_batch(events))
    assert own.snapshot() == with_shared.snapshot() and own.snapshot() is not None
    assert b"UserHistoryConfig" not in (own.snapshot() or b"")

    touch = Touch("a", "ann", "1-0", 1, 1.0, 1.7e9, 1, None, [], "s", [("a", 1.0, 1.7e9)], [], life=9)
    second = Touch("b", "ann", "2-0", 2, 1.0, 1.7e9, 2, None, ["a"], "s", [("b", 1.0, 1.7e9), ("a", 1.0, 1.7e9)], [],
                   life=9)
    replies = [NeighbourReply("a", [("c", 1.0)], touch, (0.5,) * DIM, 1.0),
               NeighbourReply("b", [("a", 1.0), ("d", 0.5)], second, (0.25,) * DIM, 1.0)]
    own_list, shared_list = UserListLogic(SETTINGS, None), UserListLogic(SETTINGS, None, config=UserListConfig(SETTINGS))
    assert repr(own_list.on_batch(replies)) == repr(shared_list.on_batch(replies))
    assert own_list.snapshot() == shared_list.snapshot()
    assert b"UserListConfig" not in (own_list.snapshot() or b"")

    own_item, shared_item = ItemLogic(SETTINGS, None), ItemLogic(SETTINGS, None, config=ItemConfig(SETTINGS))
    own_out, shared_out = own_item.on_batch([second])[0], shared_item.on_batch([second])[0]
    assert [type(m) for m in own_out] == [type(m) for m in shared_out]
    assert list(own_out[0].neighbours) == list(shared_out[0].neighbours) == [("a", 1.0)]
    assert own_out[1].log_score == shared_out[1].log_score and list(own_out[2].neighbours) == list(shared_out[2].neighbours)
    assert own_item.snapshot() == shared_item.snapshot()


def test_the_model_shares_one_config_per_stage_and_still_pickles() -> None:
    model = LiverecoModel(SETTINGS)
    for n, (user, item) in enumerate([("ann", "a"), ("ann", "b"), ("bob", "a"), ("bob", "c")]):
        model.learn_one(Event(user, item, "view", 1.7e9 + n))
    assert model.histories["ann"].config is model.histories["bob"].config
    assert model.items["a"].config is model.items["c"].config
    assert model.user_lists["ann"].config is model.user_lists["bob"].config
    copy = pickle.loads(pickle.dumps(model))
    assert copy.histories["ann"].config is copy.histories["bob"].config
    assert copy.histories["ann"].config.recent_items == 6
    for n, (user, item) in enumerate([("ann", "c"), ("bob", "b")]):
        model.learn_one(Event(user, item, "view", 1.7e9 + 10 + n))
        copy.learn_one(Event(user, item, "view", 1.7e9 + 10 + n))
    assert model.recommend("ann", 5) == copy.recommend("ann", 5)
    assert model.recommend("bob", 5) == copy.recommend("bob", 5)


def test_the_listed_logics_emit_a_key_batch_as_one_list_of_the_same_outputs() -> None:
    """The dataflow's item and user-list stages emit each key batch's outputs as one list (one emit, split by
    the next steps): the same outputs, in the same order, as the logics the evaluation model runs."""
    from flows.stages.items import ItemListedLogic
    from flows.stages.user_lists import UserListListedLogic

    first = Touch("a", "ann", "1-0", 1, 1.0, 1.7e9, 1, None, [], "s", [("a", 1.0, 1.7e9)], [], life=9)
    second = Touch("b", "ann", "2-0", 2, 1.0, 1.7e9, 2, None, ["a"], "s", [("b", 1.0, 1.7e9), ("a", 1.0, 1.7e9)], [],
                   life=9)
    item, listed_item = ItemLogic(SETTINGS, None, recoverable=False), ItemListedLogic(SETTINGS, None, recoverable=False)
    out, retain = item.on_batch([second])
    listed, listed_retain = listed_item.on_batch([second])
    assert len(listed) == 1 and [type(m) for m in listed[0]] == [type(m) for m in out] and retain == listed_retain
    replies = [NeighbourReply("a", [("c", 1.0)], first, (0.5,) * DIM, 1.0),
               NeighbourReply("b", [("a", 1.0), ("d", 0.5)], second, (0.25,) * DIM, 1.0)]
    lists, listed_lists = UserListLogic(SETTINGS, None), UserListListedLogic(SETTINGS, None)
    out, retain = lists.on_batch(replies)
    listed, listed_retain = listed_lists.on_batch(replies)
    assert len(listed) == 1 and repr(listed[0]) == repr(list(out)) and retain == listed_retain
    assert lists.snapshot() == listed_lists.snapshot()


def test_the_listed_ranker_emits_a_shard_batch_as_one_list_of_the_same_outputs() -> None:
    """The dataflow's ranker stage emits each shard's batch as one list: the same scores and weights, in order."""
    from flows.stages.messages import PersonalPool
    from flows.stages.ranker import RankerListedLogic, RankerLogic
    from flows.writes import TrendingWrite

    pool = PersonalPool([("a", 2.0), ("c", 0.7)], frozenset({"a"}), frozenset())
    batch: list[Any] = [TrendingWrite("c", None, 1.0, 1.7e9 - 1, 1)]
    batch += [Outcome(f"user{n}", f"{n}-0", "c", 1.7e9 + n, pool, seq=4 * n + 1) for n in range(40)]
    ranker, listed_ranker = RankerLogic(SETTINGS, None, recoverable=False), RankerListedLogic(SETTINGS, None, recoverable=False)
    out, retain = ranker.on_batch(batch)
    listed, listed_retain = listed_ranker.on_batch(batch)
    assert len(listed) == 1 and len(listed[0]) > 40 and retain == listed_retain
    assert repr(listed[0]) == repr(list(out))
    assert ranker.snapshot() == listed_ranker.snapshot()
