"""The flow side of the catalog (issue 16): the catalog source, the catalog stage, whole-history exclusions.

The source runs against a real Redis; the exclusion checks replay real logs through the dataflow's stages
(:class:`flows.model.LiverecoModel`) and look at every personal list the flow would store.
"""

from __future__ import annotations

import pickle
import random
from pathlib import Path

import pytest
import redis

from flows.catalog_source import CatalogSource
from flows.catalog_store import CatalogStore
from flows.eval_data import load
from flows.model import LiverecoModel
from flows.stages import CatalogLogic, NewItem, ParsedEvent, UserListLogic
from online.catalog.item import parse_item
from online.catalog.protocol import CatalogChange
from online.contract import Event, RedisKeys, Settings
from online.excluded_items import ExcludedItems
from online.item_facts import facts_of


def drain(part: object) -> list[CatalogChange]:
    out: list[CatalogChange] = []
    for _ in range(100):
        batch = part.next_batch()  # type: ignore[attr-defined]
        if not batch and part._scan is None:  # type: ignore[attr-defined]
            return out
        out.extend(batch)
    raise AssertionError("the catalog source never caught up")


def test_the_source_follows_the_change_stream_resumes_after_its_version_and_bootstraps_when_trimmed(
        redis_url: str, redis_client: redis.Redis, namespace: str) -> None:
    keys = RedisKeys(namespace)
    store = CatalogStore(redis_client, keys)
    store.put_many([parse_item({"item_id": f"i{k}", "categories": ["a/b"]}) for k in range(5)])
    source = CatalogSource(redis_url, keys, poll_interval_s=0.01)
    part = source.build_part("catalog_changes", "catalog", None)
    assert not source.loaded.is_set()  # events wait until the catalog is read
    changes = drain(part)
    assert source.loaded.is_set()
    assert [c.version for c in changes] == [1, 2, 3, 4, 5] and part.snapshot() == 5 and part.bootstraps == 0
    assert all(c.at_ms > 0 for c in changes)  # from the stream: news
    store.delete("i0")
    store.put(parse_item({"item_id": "i9", "brand": "acme"}))
    resumed = source.build_part("catalog_changes", "catalog", part.snapshot())
    later = drain(resumed)
    assert [(c.version, c.item_id, c.item is None) for c in later] == [(6, "i0", True), (7, "i9", False)]

    redis_client.xtrim(keys.catalog_changes(), maxlen=0)  # trimmed past a flow at version 5
    store.put(parse_item({"item_id": "i10"}))
    behind_source = CatalogSource(redis_url, keys, poll_interval_s=0.01)
    behind = behind_source.build_part("catalog_changes", "catalog", 5)
    first = behind.next_batch()
    assert first and not behind_source.loaded.is_set()  # the scan's items come before any event
    scanned = first + drain(behind)
    assert behind_source.loaded.is_set()
    assert behind.bootstraps == 1 and behind.snapshot() == 8
    assert sorted(c.item_id for c in scanned) == ["i1", "i10", "i2", "i3", "i4", "i9"]
    assert all(c.at_ms == 0 and c.version == 8 for c in scanned)  # a bootstrap is no news
    store.put(parse_item({"item_id": "i11"}))
    assert [c.item_id for c in drain(behind)] == ["i11"]
    for p in (part, resumed, behind):
        p.close()


def test_the_catalog_stage_stamps_events_announces_launches_and_forgets_deleted_items() -> None:
    tread = parse_item({"item_id": "t1", "categories": ["sports/fitness/treadmills"], "brand": "acme", "price": 500})
    logic = CatalogLogic(None)
    launch = CatalogChange(1, "t1", tread, int(__import__("time").time() * 1000))
    out, keep = logic.on_batch([launch, ParsedEvent(Event("ann", "t1", "view", 1.7e9), "1-0", 1)])
    assert isinstance(out[0], NewItem) and out[0].category == "sports/fitness/treadmills" and keep is logic.RETAIN
    assert out[1][0] == "ann" and out[1][1].facts is facts_of(tread)
    assert facts_of(tread).trending == ("sports/fitness/treadmills", "sports/fitness", "sports")  # type: ignore[union-attr]
    again = CatalogLogic(logic.snapshot())  # recovered: known, so a later change of it is no launch
    out, _ = again.on_batch([CatalogChange(2, "t1", tread, launch.at_ms)])
    assert out == []
    out, keep = again.on_batch([CatalogChange(3, "t1", None, launch.at_ms)])
    assert keep is again.DISCARD
    unknown = CatalogLogic(None)  # an item the catalog does not know: passes through, keeps no state
    out, keep = unknown.on_batch([ParsedEvent(Event("bob", "x", "view", 1.7e9), "2-0", 2)])
    assert out[0][1].facts is None and keep is unknown.DISCARD


def test_the_kind_comes_from_the_catalog_and_the_events_category_is_the_fallback() -> None:
    model = LiverecoModel(Settings())
    history = model._history_of("ann")
    tread = facts_of(parse_item({"item_id": "t1", "categories": ["fit/treadmills"]}))
    touched, _ = history.on_batch([
        ParsedEvent(Event("ann", "t1", "view", 1.7e9, context={"category": "misc"}), "1-0", 1, tread),
        ParsedEvent(Event("ann", "m1", "view", 1.7e9 + 1, context={"category": "mats"}), "2-0", 2)])
    assert [messages[0].category for messages in touched] == ["fit/treadmills", "mats"]  # type: ignore[index]


def test_excluded_items_are_bounded_and_small() -> None:
    excluded = ExcludedItems(capacity=1000)
    for k in range(5000):
        excluded.add(f"movie-{k}")
    assert len(excluded) == 1000 and excluded.nbytes() == 8000
    assert "movie-4999" in excluded and "movie-0" not in excluded
    assert len(pickle.dumps(excluded)) < 4100  # a snapshot: 4 bytes an item
    with pytest.raises(ValueError):
        ExcludedItems(capacity=0)


def rated_violations(events: list[Event], settings: Settings) -> tuple[int, int, int]:
    """Lists stored, of them those of users who rated more than their recent items, and rated items listed."""
    model = LiverecoModel(settings)
    rated: dict[str, set[str]] = {}
    lists = violations = long_histories = 0
    for event in events:
        model.learn_one(event)
        rated.setdefault(event.user_id, set()).add(event.item_id)
        previous = model.user_lists[event.user_id].state.previous
        if previous is None:
            continue
        lists += 1
        long_histories += len(rated[event.user_id]) > settings.recent_items
        violations += sum(1 for item, _ in previous.ranked if item in rated[event.user_id])
    return lists, long_histories, violations


def test_no_personal_list_ever_holds_an_item_the_user_rated(shared_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """MovieTweetings as the quality table runs it (the user's own items never come back): every list the flow
    would store, after every rating, leaves out everything the user rated, however long ago."""
    settings = Settings.from_env({"LIVERECO_RATING_RANGE": "0,10", "LIVERECO_RECENT_WEIGHT": "0"})
    events = load(shared_data / "movietweetings-100k", settings, mode="user").events[:30_000]
    lists, long_histories, violations = rated_violations(events, settings)
    assert lists > 20_000 and long_histories > 3_000  # many lists of users who rated more than 20 movies
    assert violations == 0
    monkeypatch.setattr(UserListLogic, "excluded_max", 1)  # the check can fail: with the last 20 items alone
    assert rated_violations(events, settings)[2] > 1000


@pytest.mark.parametrize("remembered", [1000, 1])
def test_no_personal_list_ever_holds_an_item_the_user_bought(remembered: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """A shop where people buy again and again (recent items are recommended back): bought items never are.
    (With one exclusion remembered, only the history's last 20 purchases are left out: the check fails.)"""
    monkeypatch.setattr(UserListLogic, "excluded_max", remembered)
    model = LiverecoModel(Settings())
    bought: dict[str, set[str]] = {}
    violations = 0
    rng = random.Random(3)
    for step in range(6000):
        user, item = f"u{rng.randrange(30)}", f"i{min(rng.randrange(300), rng.randrange(300))}"
        kind = "purchase" if rng.random() < 0.3 else "view"
        model.learn_one(Event(user, item, kind, 1.7e9 + step))
        if kind == "purchase":
            bought.setdefault(user, set()).add(item)
        previous = model.user_lists[user].state.previous
        if previous is not None:
            violations += sum(1 for listed, _ in previous.ranked if listed in bought.get(user, ()))
    assert max(len(items) for items in bought.values()) > 30  # more purchases than a history's 20
    assert (violations == 0) == (remembered == 1000), violations
