"""The HTTP server against a real Redis: every endpoint, bad input, and a Redis outage."""

from __future__ import annotations

import math
import time

import orjson
import pytest
import redis

from flows.embedded_redis import EmbeddedRedis
from online.contract import CandidateList, RedisKeys, Settings, encode_candidates
from serving.metrics import ROUTES
from tests.conftest import LiveServer

VIEW = {"user_id": "u1", "item_id": "i1", "type": "view"}


def stream_length(client: redis.Redis, keys: RedisKeys) -> int:
    return sum(client.xlen(k) for k in keys.streams())


def seed_trending(client: redis.Redis, keys: RedisKeys, items: list[str], category: str | None = None) -> None:
    client.zadd(keys.trending(category), {item: 100.0 - rank for rank, item in enumerate(items)})


def test_health_ready_and_openapi(live_server: LiveServer) -> None:
    assert live_server.json("GET", "/healthz") == (200, {"status": "ok"})
    assert live_server.json("GET", "/readyz") == (200, {"status": "ready"})
    status, doc = live_server.json("GET", "/openapi.json")
    assert status == 200
    assert isinstance(doc, dict)
    documented = {(method.upper(), path) for path, ops in doc["paths"].items() for method in ops}
    assert documented == set(ROUTES)


def test_post_one_event_and_a_batch(live_server: LiveServer, redis_client: redis.Redis, keys: RedisKeys) -> None:
    status, body = live_server.json("POST", "/v1/events", VIEW)
    assert status == 202 and body["accepted"] == 1
    batch = [{**VIEW, "user_id": f"u{i}", "ts": time.time() - i} for i in range(50)]
    status, body = live_server.json("POST", "/v1/events", batch)
    assert status == 202 and body["accepted"] == 50
    assert stream_length(redis_client, keys) == 51
    # each user lands in its own partition
    entries = redis_client.xrange(keys.stream_for_user("u7"))
    assert any(b'"user_id":"u7"' in fields[b"e"] for _, fields in entries)


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (b"{not json", 400, "body"),
        (b"", 400, "body"),
        (b"\xff\xfe{}", 400, "body"),
        (b"[]", 400, "body"),
        (b'"view"', 400, "body"),
        (orjson.dumps({"user_id": "u", "type": "view"}), 422, "item_id"),
        (orjson.dumps({**VIEW, "type": "teleport"}), 422, "type"),
        (orjson.dumps({**VIEW, "item_id": "x" * 1_000_000}), 422, "item_id"),
        (orjson.dumps({**VIEW, "ts": 1.7e12}), 422, "ts"),
        (orjson.dumps([VIEW] * 1001), 413, "body"),
        (b"[" + b" " * 1_100_000 + b"]", 413, "body"),
    ],
)
def test_bad_events_get_a_clear_4xx_and_write_nothing(live_server: LiveServer, redis_client: redis.Redis,
                                                       keys: RedisKeys, body: bytes, status: int, field: str) -> None:
    got, _, payload = live_server.request("POST", "/v1/events", body, {"content-type": "application/json"})
    error = orjson.loads(payload)["error"]
    assert got == status, error
    assert error["field"] == field
    assert field in error["message"]
    assert stream_length(redis_client, keys) == 0


def test_one_bad_event_rejects_the_batch_naming_its_index(live_server: LiveServer, redis_client: redis.Redis,
                                                           keys: RedisKeys) -> None:
    batch = [VIEW, VIEW, {**VIEW, "item_id": None}, {**VIEW, "type": "nope"}]
    status, body = live_server.json("POST", "/v1/events", batch)
    assert status == 422
    error = body["error"]
    assert (error["index"], error["field"]) == (2, "item_id")
    assert [(e["index"], e["field"]) for e in error["errors"]] == [(2, "item_id"), (3, "type")]
    assert error["message"].startswith("events[2].item_id")
    assert stream_length(redis_client, keys) == 0
    metrics = live_server.app.metrics.registry
    assert metrics.get_sample_value("livereco_serving_events_rejected_total", {"field": "type"}) == 1.0


def test_unknown_user_gets_trending(live_server: LiveServer, redis_client: redis.Redis, keys: RedisKeys) -> None:
    seed_trending(redis_client, keys, ["t1", "t2", "t3"])
    status, body = live_server.json("GET", "/v1/users/nobody/recommendations?n=2")
    assert status == 200
    assert body["source"] == "trending" and body["fallback"] == "unknown"
    assert [i["item_id"] for i in body["items"]] == ["t1", "t2"]
    assert body["items"][0]["score"] == 1.0


def test_the_served_list_blends_the_stored_list_with_live_trending_by_the_flows_weights(
        live_server: LiveServer, redis_client: redis.Redis, keys: RedisKeys, settings: Settings) -> None:
    from online.contract import stable_hash

    seed_trending(redis_client, keys, ["bought", "t1", "t2"])
    stored = CandidateList(["p1", "p2"], [2.0, 1.0], exclude=["bought"])
    redis_client.set(keys.user_recs("u"), encode_candidates(stored))
    status, body = live_server.json("GET", "/v1/users/u/recommendations?n=3")
    assert [(i["item_id"], i["source"]) for i in body["items"]] == [("p1", "personal"), ("p2", "personal"),
                                                                    ("t1", "trending")]  # untrained: padded
    shard = stable_hash("u") % settings.ranker_shards
    redis_client.hset(keys.ranker(), f"shard{shard}", orjson.dumps({"weights": {"trending": 1.0}, "pairs": 1}))
    live_server.app.ranker_weights.max_age_s = 0.0  # read the new weights now, not within the second
    status, body = live_server.json("GET", "/v1/users/u/recommendations?n=3")
    assert status == 200 and body["source"] == "personal"
    assert [i["item_id"] for i in body["items"]] == ["t1", "t2", "p1"]  # "bought" is the user's own exclusion
    assert body["items"][0]["score"] == pytest.approx(math.exp(-1.0), abs=1e-6)  # relative to "bought", still the top


def test_malformed_ranker_weights_in_redis_leave_the_list_unblended_not_broken(
        live_server: LiveServer, redis_client: redis.Redis, keys: RedisKeys) -> None:
    seed_trending(redis_client, keys, ["t1"])
    redis_client.set(keys.user_recs("u"), encode_candidates(CandidateList(["p1"], [1.0])))
    redis_client.hset(keys.ranker(), mapping={"shard0": b"not json", "shard1": b'{"weights": 3}', "junk": b"{}"})
    live_server.app.ranker_weights.max_age_s = 0.0
    status, body = live_server.json("GET", "/v1/users/u/recommendations?n=2")
    assert status == 200
    assert [(i["item_id"], i["source"]) for i in body["items"]] == [("p1", "personal"), ("t1", "trending")]
    assert redis_client.hget(keys.ranker(), "shard0") == b"not json"  # read, never rewritten or dropped


def test_personal_list_with_exclusions_and_padding(live_server: LiveServer, redis_client: redis.Redis,
                                                   keys: RedisKeys) -> None:
    seed_trending(redis_client, keys, ["p2", "t1", "t2"])
    blob = encode_candidates(CandidateList(["p1", "p2", "p3"], [3.0, 2.0, 1.0], event_ts=1.7e9,
                                           accepted_ms=int(time.time() * 1000)))
    redis_client.set(keys.user_recs("we/ird user"), blob)
    status, body = live_server.json("GET", "/v1/users/we%2Fird%20user/recommendations?n=4&exclude=p3")
    assert status == 200
    assert body["source"] == "personal" and body["fallback"] == "short"
    assert [(i["item_id"], i["source"]) for i in body["items"]] == [
        ("p1", "personal"), ("p2", "personal"), ("t1", "trending"), ("t2", "trending")]
    assert body["updated_ms_ago"] < 60_000


def test_similar_items_and_trending_by_category(live_server: LiveServer, redis_client: redis.Redis,
                                                keys: RedisKeys) -> None:
    redis_client.set(keys.item_similar("a"), encode_candidates(CandidateList(["a", "b", "c"], [3.0, 2.0, 1.0])))
    status, body = live_server.json("GET", "/v1/items/a/similar?n=5")
    assert status == 200 and body["source"] == "similar"
    assert [i["item_id"] for i in body["items"]] == ["b", "c"]  # never the item itself
    seed_trending(redis_client, keys, ["s1", "s2"], category="shoes")
    status, body = live_server.json("GET", "/v1/trending?category=shoes&n=5")
    assert status == 200 and body["category"] == "shoes"
    assert [i["item_id"] for i in body["items"]] == ["s1", "s2"]
    status, body = live_server.json("GET", "/v1/items/unknown/similar")
    assert status == 200 and body["source"] == "trending"


@pytest.mark.parametrize(
    ("path", "status", "field"),
    [
        ("/v1/users/u/recommendations?n=0", 400, "n"),
        ("/v1/users/u/recommendations?n=ten", 400, "n"),
        ("/v1/trending?n=100000", 400, "n"),
        ("/v1/users/" + "x" * 300 + "/recommendations", 400, "user_id"),
        ("/v1/nothing", 404, "path"),
        ("/v1/users/nobody/profile", 404, "user_id"),
    ],
)
def test_bad_requests_name_the_parameter(live_server: LiveServer, path: str, status: int, field: str) -> None:
    got, body = live_server.json("GET", path)
    assert got == status
    assert body["error"]["field"] == field


def test_wrong_method(live_server: LiveServer) -> None:
    status, body = live_server.json("GET", "/v1/events")
    assert status == 405 and body["error"]["field"] == "method"


def test_metrics_have_request_durations(live_server: LiveServer) -> None:
    live_server.json("GET", "/v1/trending")
    status, headers, text = live_server.request("GET", "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    line = next(raw for raw in text.decode().splitlines()
                if raw.startswith('livereco_serving_request_duration_seconds_count{method="GET",route="/v1/trending"}'))
    assert float(line.split()[-1]) >= 1.0


def test_redis_outage_answers_503_and_recovers(namespace: str) -> None:
    own = EmbeddedRedis().start()
    settings = Settings.from_env({}, redis_url=own.url, namespace=namespace, partitions=2)
    server = LiveServer(settings).start()
    try:
        assert server.json("GET", "/v1/trending")[0] == 200
        own.process.terminate()  # type: ignore[union-attr]
        own.process.wait()  # type: ignore[union-attr]
        status, body = server.json("POST", "/v1/events", VIEW)
        assert status == 503
        assert body["error"]["code"] == "redis_unavailable"
        assert server.json("GET", "/readyz")[0] == 503
        own.start()  # same port: the server reconnects by itself
        deadline = time.monotonic() + 10
        while server.json("GET", "/readyz")[0] != 200:
            assert time.monotonic() < deadline, "server did not recover after Redis came back"
            time.sleep(0.1)
        assert server.json("POST", "/v1/events", VIEW)[0] == 202
    finally:
        server.stop()
        own.stop()
