"""The shop endpoints through the real server and a real Redis: catalog, filters with refill, every rule kind,
diversity, re-rank, user attributes and segment trending, the catalog copy's refresh, and API-key scopes."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import orjson
import pytest
import redis

from flows.catalog_store import CatalogStore
from online.catalog.item import parse_item
from online.catalog.rules import parse_rules
from online.contract import CandidateList, RedisKeys, Settings, encode_candidates, encode_profile
from tests.conftest import LiveServer

JSON = {"content-type": "application/json"}


def _items() -> list[dict[str, Any]]:
    """40 items: 4 kinds of 10, prices 10..400; t3 out of stock, r5 of a blocked brand, t8 not available yet."""
    items = []
    for kind, category in (("t", "sports/fitness/treadmills"), ("m", "sports/fitness/mats"),
                           ("r", "sports/running/shoes"), ("b", "sports/fitness/bands")):
        for k in range(10):
            item: dict[str, Any] = {"item_id": f"{kind}{k}", "categories": [category], "brand": "acme",
                                    "price": 10.0 * (k + 1) * (4 if kind == "t" else 1), "tags": [],
                                    "attributes": {"color": "red" if k % 2 else "blue"}}
            items.append(item)
    by_id = {item["item_id"]: item for item in items}
    by_id["t3"]["in_stock"] = False
    by_id["r5"]["brand"] = "shady"
    by_id["t8"]["available_from"] = time.time() + 86400
    by_id["m1"]["tags"] = ["summer"]
    by_id["b9"]["created_at"] = time.time() - 3600
    return items


@pytest.fixture
def shop(live_server: LiveServer, redis_client: redis.Redis, keys: RedisKeys) -> dict[str, dict[str, Any]]:
    items = _items()
    status, written = live_server.json("POST", "/v1/items", items)
    assert status == 200 and written["written"] == len(items) and written["rejected"] == 0, written
    # u1's personal list: treadmills first (the treadmill story's list), then the rest in order
    order = [item["item_id"] for item in items]
    redis_client.set(keys.user_recs("u1"), encode_candidates(CandidateList(order, [100.0 - k for k in range(40)])))
    redis_client.zadd(keys.trending(), {item: 50.0 - k * 0.1 for k, item in enumerate(reversed(order))})
    redis_client.zadd(keys.trending("sports/fitness/mats"), {f"m{k}": 10.0 - k for k in range(10)})
    return {item["item_id"]: item for item in items}


def _list(server: LiveServer, path: str, status: int = 200) -> Any:
    got, body = server.json("GET", path)
    assert got == status, body
    return body


def _ids(body: Any) -> list[str]:
    return [entry["item_id"] for entry in body["items"]]


def test_item_crud_bulk_and_errors_naming_the_field(live_server: LiveServer, keys: RedisKeys,
                                                     redis_client: redis.Redis) -> None:
    status, item = live_server.json("PUT", "/v1/items/sku%2F1", {"title": "Mat", "categories": ["sports/mats"],
                                                                  "price": 20})
    assert status == 200 and item["item_id"] == "sku/1" and item["price"] == 20.0
    assert redis_client.hget(keys.catalog_items(), "sku/1") is not None  # readable with redis-cli
    status, item = live_server.request("PATCH", "/v1/items/sku%2F1", b'{"in_stock": false, "price": null}',
                                       {"content-type": "application/merge-patch+json"})[0], None
    assert status == 200
    assert live_server.json("GET", "/v1/items/sku%2F1") == (200, {"item_id": "sku/1", "title": "Mat",
                                                                  "categories": ["sports/mats"], "in_stock": False})
    status, error = live_server.json("PUT", "/v1/items/x", {"categories": ["a//b"]})
    assert status == 422 and error["error"]["field"] == "categories[0]"
    status, error = live_server.json("PUT", "/v1/items/x", {"price": -1})
    assert status == 422 and error["error"]["field"] == "price"
    status, error = live_server.json("PATCH", "/v1/items/sku%2F1", {"colour": "red"})
    assert status == 422 and error["error"]["field"] == "colour"
    assert live_server.json("PATCH", "/v1/items/nope", {"price": 1})[0] == 404
    assert live_server.request("PUT", "/v1/items/x", b"{nope", JSON)[0] == 400
    assert live_server.request("PUT", "/v1/items/x", b"{}", {"content-type": "text/plain"})[0] == 415
    ndjson = b'{"item_id": "a"}\n\n{"item_id": "b", "price": "x"}\n{"item_id": "c", "categories": ["/"]}\n{"item_id": "d"}\n'
    status, _, body = live_server.request("POST", "/v1/items", ndjson, {"content-type": "application/x-ndjson"})
    report = orjson.loads(body)
    assert status == 200 and (report["written"], report["rejected"]) == (2, 2)
    assert [(e["index"], e["field"]) for e in report["errors"]] == [(3, "price"), (4, "categories[0]")]
    assert live_server.json("GET", "/v1/items/b")[0] == 404  # nothing half-applied: the bad line wrote nothing
    assert live_server.json("DELETE", "/v1/items/a") == (200, {"item_id": "a", "deleted": True})
    assert live_server.json("DELETE", "/v1/items/a")[0] == 404
    assert live_server.json("GET", "/v1/items/a")[0] == 404


def test_filters_refill_and_every_returned_item_satisfies_every_filter(
        live_server: LiveServer, shop: dict[str, dict[str, Any]]) -> None:
    plain = _list(live_server, "/v1/users/u1/recommendations?n=10&diversity_cap=0")
    assert _ids(plain)[:4] == ["t0", "t1", "t2", "t4"]  # t3: out of stock, never shown by default
    status, _ = live_server.json("PUT", "/v1/rules", {"rules": [{"kind": "block", "brands": ["shady"]}]})
    assert status == 200
    top3 = _ids(plain)[:3]
    query = f"n=8&exclude={','.join(top3)}&category=sports&min_price=20&max_price=70&diversity_cap=0"
    body = _list(live_server, f"/v1/users/u1/recommendations?{query}")
    served = _ids(body)
    assert len(served) == 8, served  # n items still come back: deeper candidates refilled the places
    now = time.time()
    for item_id in served:
        item = shop[item_id]
        assert item_id not in top3
        assert item["categories"][0].startswith("sports/")
        assert 20 <= item["price"] <= 70
        assert item.get("in_stock", True) and item.get("available_from", 0) <= now
        assert item["brand"] != "shady"
    # category: only items in it or below; its own trending refills when the personal list runs out of them
    mats = _ids(_list(live_server, "/v1/users/u1/recommendations?n=10&category=sports/fitness/mats&diversity_cap=0"))
    assert len(mats) == 10 and all(item.startswith("m") for item in mats)
    # attr.<name>, brand, in_stock=any
    red = _ids(_list(live_server, "/v1/users/u1/recommendations?n=5&attr.color=red&brand=acme"))
    assert len(red) == 5 and all(shop[item]["attributes"]["color"] == "red" for item in red)
    everything = _ids(_list(live_server, "/v1/users/u1/recommendations?n=5&in_stock=any&diversity_cap=0"))
    assert "t3" in everything
    # the same filters on similar and trending
    trending = _list(live_server, "/v1/trending?n=5&category=sports/fitness/mats&max_price=50")
    assert len(trending["items"]) == 5 and all(shop[e["item_id"]]["price"] <= 50 and e["item_id"].startswith("m")
                                               for e in trending["items"])
    similar = _list(live_server, "/v1/items/t0/similar?n=4&category=sports/running")
    assert len(similar["items"]) == 4 and all(e["item_id"].startswith("r") for e in similar["items"])


def test_unknown_and_bad_parameters_are_400_naming_them(live_server: LiveServer, shop: dict[str, Any]) -> None:
    for path, field in (("/v1/users/u1/recommendations?foo=bar", "foo"), ("/v1/trending?in_stock=1x", "in_stock"),
                        ("/v1/items/t0/similar?min_price=cheap", "min_price"), ("/v1/trending?attr.=x", "attr."),
                        ("/v1/users/u1/recommendations?diversity_cap=-1", "diversity_cap")):
        status, body = live_server.json("GET", path)
        assert status == 400 and body["error"]["field"] == field, (path, body)
        assert body["error"]["message"].startswith(field)


def test_diversity_cap_default_and_per_request(live_server: LiveServer, shop: dict[str, Any]) -> None:
    def kinds(path: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        for item in _ids(_list(live_server, path)):
            counts[item[0]] = counts.get(item[0], 0) + 1
        return counts

    assert max(kinds("/v1/users/u1/recommendations?n=10").values()) == 3  # LIVERECO_DIVERSITY_CAP: 3 in 10
    assert max(kinds("/v1/users/u1/recommendations?n=8&diversity_cap=2").values()) == 2  # 4 kinds fill 8 places
    assert kinds("/v1/users/u1/recommendations?n=10&diversity_cap=0")["t"] == 8  # off: the list as ranked


def _rules(server: LiveServer, *rules: dict[str, Any]) -> None:
    status, stored = server.json("PUT", "/v1/rules", {"rules": list(rules)})
    assert status == 200, stored


@pytest.mark.parametrize(("rule", "check"), [
    ({"kind": "block", "items": ["t0"], "categories": ["sports/fitness/mats"]},
     lambda items: "t0" not in items and not any(i.startswith("m") for i in items)),
    ({"kind": "boost", "factor": 100, "categories": ["sports/running"]}, lambda items: items[0].startswith("r")),
    ({"kind": "bury", "factor": 0.01, "items": ["t0"]}, lambda items: items[0] != "t0"),
    ({"kind": "new_arrivals", "days": 1, "factor": 100}, lambda items: items[0] == "b9"),
    ({"kind": "pin", "item": "b5", "position": 2}, lambda items: items[1] == "b5"),
    ({"kind": "promotion", "slots": 2, "of": 10, "filter": {"tags": ["summer"], "categories": ["sports/running"]}},
     lambda items: sum(1 for i in items[:10] if i.startswith("r") or i == "m1") >= 2),
])
def test_every_rule_kind_end_to_end(live_server: LiveServer, shop: dict[str, Any], rule: dict[str, Any],
                                    check: Any) -> None:
    before = _list(live_server, "/v1/users/u1/recommendations?n=10&diversity_cap=0")
    _rules(live_server, rule)
    assert live_server.json("GET", "/v1/rules")[1]["rules"][0]["kind"] == rule["kind"]
    after = _list(live_server, "/v1/users/u1/recommendations?n=10&diversity_cap=0")
    assert len(after["items"]) == 10 and check(_ids(after)), (_ids(before), _ids(after))
    assert not check(_ids(before))  # the rule did it
    sources = {e["item_id"]: e["source"] for e in after["items"]}
    if rule["kind"] == "pin":
        assert sources["b5"] == "pinned"
    if rule["kind"] == "promotion":
        assert "promotion" in sources.values()


def test_rule_order_block_beats_pin_and_a_bad_rule_names_its_field(live_server: LiveServer, shop: dict[str, Any]) -> None:
    _rules(live_server, {"kind": "pin", "item": "b5", "position": 1}, {"kind": "block", "items": ["b5"]})
    assert "b5" not in _ids(_list(live_server, "/v1/users/u1/recommendations?n=10"))
    status, error = live_server.json("PUT", "/v1/rules", {"rules": [{"kind": "bury", "factor": 3}]})
    assert status == 422 and error["error"]["field"] == "rules[0].factor"


def test_a_change_written_elsewhere_is_served_within_a_second(live_server: LiveServer, shop: dict[str, Any],
                                                             redis_client: redis.Redis, keys: RedisKeys) -> None:
    store = CatalogStore(redis_client, keys)  # another server, or livereco catalog: not this server's write
    assert "t0" in _ids(_list(live_server, "/v1/users/u1/recommendations?n=3"))
    store.patch("t0", {"in_stock": False})
    store.put_rules(parse_rules({"rules": [{"kind": "block", "items": ["t1"]}]}))
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        served = _ids(_list(live_server, "/v1/users/u1/recommendations?n=3"))
        if "t0" not in served and "t1" not in served:
            break
        time.sleep(0.05)
    assert "t0" not in served and "t1" not in served
    store.put(parse_item({"item_id": "new-1", "categories": ["sports/fitness/mats"], "price": 5}))
    time.sleep(1.0)
    assert live_server.app.catalog.snapshot.row("new-1") >= 0


def test_exclude_seen_leaves_out_the_users_recent_items(live_server: LiveServer, shop: dict[str, Any],
                                                        redis_client: redis.Redis, keys: RedisKeys) -> None:
    redis_client.set(keys.user_profile("u1"), encode_profile("s", [("t0", 1.0, 1.0), ("t1", 1.0, 1.0)]))
    assert _ids(_list(live_server, "/v1/users/u1/recommendations?n=2&diversity_cap=0")) == ["t0", "t1"]
    assert _ids(_list(live_server, "/v1/users/u1/recommendations?n=2&diversity_cap=0&exclude_seen=true")) == ["t2", "t4"]


def test_rank_orders_the_callers_items_by_the_users_scores(live_server: LiveServer, shop: dict[str, Any]) -> None:
    status, body = live_server.json("POST", "/v1/users/u1/rank", {"items": ["zz-unknown", "m0", "t1", "t0", "yy"]})
    assert status == 200, body
    assert [(e["item_id"], e["source"]) for e in body["items"]] == [
        ("t0", "personal"), ("t1", "personal"), ("m0", "personal"), ("zz-unknown", "unknown"), ("yy", "unknown")]
    assert body["items"][0]["score"] > body["items"][2]["score"] and body["items"][3]["score"] is None
    status, body = live_server.json("POST", "/v1/users/nobody/rank", {"items": ["m0", "t0", "q"]})
    assert [e["source"] for e in body["items"]] == ["trending", "trending", "unknown"]
    status, error = live_server.json("POST", "/v1/users/u1/rank", {"items": ["x"] * 501})
    assert status == 422 and error["error"]["field"] == "items"


@pytest.fixture
def segment_server(settings: Settings) -> Iterator[LiveServer]:
    server = LiveServer(dataclasses.replace(settings, segment_attributes="segment,country")).start()
    yield server
    server.stop()


def test_user_attributes_choose_a_new_users_segment_trending(segment_server: LiveServer, redis_client: redis.Redis,
                                                             keys: RedisKeys, settings: Settings) -> None:
    redis_client.zadd(keys.trending(), {"g1": 3.0, "g2": 2.0})
    redis_client.zadd(keys.trending_segment("country", "de"), {"de1": 3.0, "de2": 2.0})
    status, body = segment_server.json("PUT", "/v1/users/new%2Fone", {"attributes": {"country": "de", "segment": "x"}})
    assert status == 200 and body["ttl_s"] == settings.user_ttl_s
    assert 0 < redis_client.ttl(keys.user_attributes("new/one")) <= settings.user_ttl_s
    body = _list(segment_server, "/v1/users/new%2Fone/recommendations?n=2")
    assert _ids(body) == ["de1", "de2"] and body["segment"] == "country=de" and body["fallback"] == "unknown"
    assert _ids(_list(segment_server, "/v1/users/stranger/recommendations?n=2")) == ["g1", "g2"]
    status, error = segment_server.json("PUT", "/v1/users/u", {"attributes": {"a=b": "x"}})
    assert status == 422 and error["error"]["field"] == "attributes"


ADMIN, READ, WRITE = "admin-" + "a" * 20, "read-" + "r" * 20, "write-" + "w" * 20


@pytest.fixture
def keyed_server(settings: Settings) -> Iterator[LiveServer]:
    server = LiveServer(dataclasses.replace(settings, api_keys=f"admin:{ADMIN},read:{READ},write:{WRITE}")).start()
    yield server
    server.stop()


@pytest.mark.parametrize(("method", "path", "body", "scope"), [
    ("PUT", "/v1/items/a", b'{"price": 1}', "admin"), ("PATCH", "/v1/items/a", b"{}", "admin"),
    ("GET", "/v1/items/a", None, "admin"), ("DELETE", "/v1/items/a", None, "admin"),
    ("POST", "/v1/items", b"[]", "admin"), ("GET", "/v1/rules", None, "admin"),
    ("PUT", "/v1/rules", b'{"rules": []}', "admin"), ("POST", "/v1/users/u/rank", b'{"items": ["a"]}', "read"),
    ("PUT", "/v1/users/u", b'{"attributes": {}}', "write")])
def test_new_endpoints_answer_401_and_403_by_scope(keyed_server: LiveServer, method: str, path: str,
                                                   body: bytes | None, scope: str) -> None:
    def status(key: str | None) -> int:
        headers = {**JSON, **({"authorization": f"Bearer {key}"} if key else {})}
        return keyed_server.request(method, path, body, headers)[0]

    assert status(None) == 401
    wrong = {"admin": READ, "read": WRITE, "write": READ}[scope]
    assert status(wrong) == 403
    right = {"admin": ADMIN, "read": READ, "write": WRITE}[scope]
    assert status(right) in (200, 404)
    assert status(ADMIN) in (200, 404)  # admin opens everything


def test_quoted_ids_round_trip(live_server: LiveServer) -> None:
    item_id = "a b/ü"
    assert live_server.json("PUT", f"/v1/items/{quote(item_id, safe='')}", {})[0] == 200
    assert live_server.json("GET", f"/v1/items/{quote(item_id, safe='')}")[1]["item_id"] == item_id
