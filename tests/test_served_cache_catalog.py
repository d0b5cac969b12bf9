"""The served-list cache on the catalog path, through the real server: an answer is served again only while the
catalog, the rules (and their time windows), the user's list and recent items and the request are unchanged."""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis

from online.contract import CandidateList, RedisKeys, encode_candidates, encode_profile
from tests.conftest import LiveServer

ORDER = [f"{kind}{k}" for kind in "tmrb" for k in range(10)]
CATEGORY = {"t": "sports/fitness/treadmills", "m": "sports/fitness/mats", "r": "sports/running/shoes",
            "b": "sports/fitness/bands"}


@pytest.fixture
def catalog(live_server: LiveServer, redis_client: redis.Redis, keys: RedisKeys) -> None:
    """40 items without availability windows, u1's list in catalog order, global and mats trending."""
    items = [{"item_id": item, "categories": [CATEGORY[item[0]]], "brand": "acme", "price": 10.0 + k}
             for k, item in enumerate(ORDER)]
    status, written = live_server.json("POST", "/v1/items", items)
    assert status == 200 and written["written"] == len(items), written
    redis_client.set(keys.user_recs("u1"), encode_candidates(CandidateList(ORDER, [100.0 - k for k in range(40)])))
    redis_client.zadd(keys.trending(), {item: 50.0 - k * 0.1 for k, item in enumerate(reversed(ORDER))})
    redis_client.zadd(keys.trending("sports/fitness/mats"), {f"m{k}": 10.0 - k for k in range(10)})


def _ids(server: LiveServer, query: str = "n=5&diversity_cap=0", user: str = "u1") -> list[str]:
    status, body = server.json("GET", f"/v1/users/{user}/recommendations?{query}")
    assert status == 200, body
    return [entry["item_id"] for entry in body["items"]]


def _rules(server: LiveServer, *rules: dict[str, Any]) -> None:
    status, stored = server.json("PUT", "/v1/rules", {"rules": list(rules)})
    assert status == 200, stored
    server.app.catalog.refreshed_at = 0.0


def _served_again(server: LiveServer, query: str = "n=5&diversity_cap=0") -> list[str]:
    """The answer, asked twice: the second time from the cache (the hit counter moves)."""
    first = _ids(server, query)
    hits = server.app.served_cache.hits
    assert _ids(server, query) == first and server.app.served_cache.hits == hits + 1
    return first


def test_each_changed_input_changes_the_cached_answer(live_server: LiveServer, catalog: None,
                                                      redis_client: redis.Redis, keys: RedisKeys) -> None:
    assert _served_again(live_server) == ["t0", "t1", "t2", "t3", "t4"]
    # an item goes out of stock (written through this server: its copy refreshes at once)
    assert live_server.json("PATCH", "/v1/items/t1", {"in_stock": False})[0] == 200
    assert _served_again(live_server) == ["t0", "t2", "t3", "t4", "t5"]
    # a rule is added, then changed
    _rules(live_server, {"kind": "block", "items": ["t0"]})
    assert _served_again(live_server) == ["t2", "t3", "t4", "t5", "t6"]
    _rules(live_server, {"kind": "block", "items": ["t2"]})
    assert _served_again(live_server) == ["t0", "t3", "t4", "t5", "t6"]
    # the user's list changes (the flow stored a new one)
    redis_client.set(keys.user_recs("u1"), encode_candidates(CandidateList(
        list(reversed(ORDER)), [100.0 - k for k in range(40)])))
    assert _served_again(live_server) == ["b9", "b8", "b7", "b6", "b5"]
    # a new event of the user (their recent items) with exclude_seen
    seen_query = "n=5&diversity_cap=0&exclude_seen=true"
    assert _served_again(live_server, seen_query) == ["b9", "b8", "b7", "b6", "b5"]
    redis_client.set(keys.user_profile("u1"), encode_profile("s", [("b9", 1.0, 1.0)]))
    assert _served_again(live_server, seen_query) == ["b8", "b7", "b6", "b5", "b4"]
    # request parameters: n, filters, exclusions, the diversity cap, a category page
    assert _served_again(live_server, "n=3&diversity_cap=0") == ["b9", "b8", "b7"]
    assert _served_again(live_server, "n=3&diversity_cap=0&max_price=45") == ["b5", "b4", "b3"]
    assert _served_again(live_server, "n=3&diversity_cap=0&exclude=b8") == ["b9", "b7", "b6"]
    assert _served_again(live_server, "n=4&diversity_cap=1") == ["b9", "r9", "m9", "t9"]
    page = "n=3&diversity_cap=0&category=sports/fitness/mats"
    assert _served_again(live_server, page) == ["m9", "m8", "m7"]
    # the page's trending refills what the filters emptied: a change in it is a new answer
    _rules(live_server, {"kind": "block", "items": [f"m{k}" for k in range(3, 10)]})
    assert _served_again(live_server, page) == ["m2", "m1", "m0"]
    assert live_server.json("PATCH", "/v1/items/m0", {"in_stock": False})[0] == 200
    assert live_server.json("PATCH", "/v1/items/m1", {"in_stock": False})[0] == 200
    assert live_server.json("PATCH", "/v1/items/m2", {"in_stock": False})[0] == 200
    assert _ids(live_server, page) == []


def test_a_rule_that_starts_or_ends_is_served_at_once(live_server: LiveServer, catalog: None) -> None:
    now = time.time()
    _rules(live_server, {"kind": "block", "items": ["t0"], "start": now + 1.0, "end": now + 2.0})
    assert _served_again(live_server)[0] == "t0"
    time.sleep(max(0.0, now + 1.05 - time.time()))
    assert _served_again(live_server)[0] == "t1"  # the window opened
    time.sleep(max(0.0, now + 2.05 - time.time()))
    assert _served_again(live_server)[0] == "t0"  # and closed


def test_an_item_whose_availability_window_opens_or_closes_is_served_at_once(live_server: LiveServer,
                                                                               catalog: None) -> None:
    now = time.time()
    assert live_server.json("PATCH", "/v1/items/t0", {"available_from": now + 1.0})[0] == 200
    assert live_server.json("PATCH", "/v1/items/t1", {"available_until": now + 2.0})[0] == 200
    assert _served_again(live_server)[:2] == ["t1", "t2"]
    time.sleep(max(0.0, now + 1.05 - time.time()))
    assert _served_again(live_server)[:2] == ["t0", "t1"]  # t0's window opened
    time.sleep(max(0.0, now + 2.05 - time.time()))
    assert _served_again(live_server)[:2] == ["t0", "t2"]  # t1's closed


def test_an_item_that_becomes_or_stops_being_a_new_arrival_is_served_at_once(live_server: LiveServer,
                                                                             catalog: None) -> None:
    """Under a new-arrivals rule answers are cached too, until the next item's age crosses 0 or the rule's days."""
    now = time.time()
    _rules(live_server, {"kind": "new_arrivals", "days": 2.0 / 86_400, "factor": 100})
    assert live_server.json("PATCH", "/v1/items/t5", {"created_at": now + 1.0})[0] == 200
    assert _served_again(live_server)[0] == "t0"
    time.sleep(max(0.0, now + 1.05 - time.time()))
    assert _served_again(live_server)[0] == "t5"  # created: new for 2 s, boosted ×100
    time.sleep(max(0.0, now + 3.05 - time.time()))
    assert _served_again(live_server)[0] == "t0"  # no longer new
