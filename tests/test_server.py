"""The HTTP server against a real Redis: every endpoint, bad input, and a Redis outage."""

from __future__ import annotations

import math
import time

import orjson
import pytest
import redis

from flows.embedded_redis import EmbeddedRedis
from online.contract import CandidateList, RedisKeys, Settings, encode_candidates, encode_profile, stable_hash
from serving.metrics import ROUTES
from serving.ranker_weights import RankerWeights
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
    ingest = doc["paths"]["/v1/events"]["post"]["responses"]
    assert {"408", "415", "503"} <= set(ingest) and "Retry-After" in ingest["503"]["headers"]
    assert "Retry-After" in doc["paths"]["/readyz"]["get"]["responses"]["503"]["headers"]


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


def test_a_cold_user_on_a_category_page_gets_that_category_s_trending(live_server: LiveServer,
                                                                      redis_client: redis.Redis,
                                                                      keys: RedisKeys) -> None:
    seed_trending(redis_client, keys, ["t1", "t2"])
    seed_trending(redis_client, keys, ["s1", "s2"], category="shoes")
    status, body = live_server.json("GET", "/v1/users/newcomer/recommendations?n=2&category=shoes")
    assert status == 200 and body["source"] == "trending"
    assert [i["item_id"] for i in body["items"]] == ["s1", "s2"]
    status, body = live_server.json("GET", "/v1/users/newcomer/recommendations?n=2&category=garden")  # none yet
    assert status == 200 and [i["item_id"] for i in body["items"]] == ["t1", "t2"]  # all items' trending
    redis_client.set(keys.user_recs("known"), encode_candidates(CandidateList(["p1"], [1.0])))
    status, body = live_server.json("GET", "/v1/users/known/recommendations?n=3&category=shoes")
    assert [(i["item_id"], i["source"]) for i in body["items"]] == [("p1", "personal"), ("s1", "trending"),
                                                                    ("s2", "trending")]


def test_the_served_list_blends_the_stored_list_with_live_trending_by_the_flows_weights(
        live_server: LiveServer, redis_client: redis.Redis, keys: RedisKeys, settings: Settings) -> None:

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


def test_the_ranker_weights_are_re_read_in_the_background_not_by_a_request(
        live_server: LiveServer, redis_client: redis.Redis, keys: RedisKeys, settings: Settings) -> None:
    """No request waits for the once-a-second weights read: the server's background task makes it."""
    seed_trending(redis_client, keys, ["t1", "t2"])
    redis_client.set(keys.user_recs("u"), encode_candidates(CandidateList(["p1", "p2"], [2.0, 1.0])))
    weights = live_server.app.ranker_weights
    assert live_server.json("GET", "/v1/users/u/recommendations?n=3")[0] == 200
    shard = stable_hash("u") % settings.ranker_shards
    redis_client.hset(keys.ranker(), f"shard{shard}", orjson.dumps({"weights": {"trending": 1.0}, "pairs": 1}))
    deadline = time.monotonic() + 5.0
    while weights.for_user("u") != {"trending": 1.0} and time.monotonic() < deadline:
        time.sleep(0.05)  # no request meanwhile
    assert weights.for_user("u") == {"trending": 1.0}
    assert not weights.behind  # so a request does not read them itself
    status, body = live_server.json("GET", "/v1/users/u/recommendations?n=3")
    assert status == 200 and [i["item_id"] for i in body["items"]] == ["t1", "t2", "p1"]


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


def test_a_malformed_ranker_field_leaves_the_good_ones_beside_it() -> None:
    cache = RankerWeights(shards=2)
    good = orjson.dumps({"weights": {"trending": 0.5}, "pairs": 3, "explore": [["n1", None]]})
    for raw in ({b"shard1": good, b"junk": b"{}"}, {b"junk": b"{}", b"shard1": good},
                {b"shard1": good, b"shard0": b'{"weights": {"trending": 1.0}, "explore": 7}'}):
        cache.update(raw)  # a bad name, before or after, or a bad explore order: that field alone is skipped
        user = next(u for u in ("a", "b", "c", "d") if stable_hash(u) % 2 == 1)
        assert cache.for_user(user) == {"trending": 0.5} and cache.explore_for(user) == ["n1"]
        other = next(u for u in ("a", "b", "c", "d") if stable_hash(u) % 2 == 0)
        assert cache.for_user(other) == {} and cache.explore_for(other) == []


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


def test_lists_and_profiles_an_older_flow_wrote_are_served_as_the_new_ones(live_server: LiveServer,
                                                                          redis_client: redis.Redis,
                                                                          keys: RedisKeys) -> None:
    """Rolling upgrade: a server reads version-1 blobs (an old flow) and version-2 blobs (a new one) alike."""
    seed_trending(redis_client, keys, ["t1", "t2"])
    stored = CandidateList(["p1", "p2", "p3"], [2.5, 1.25, 0.1], event_ts=1.7e9, accepted_ms=int(time.time() * 1000),
                           repeats=[1], exclude=["t1"])
    recent = [("p2", 3.0, 1_700_000_060.0), ("p9", 1.0, 1_700_000_000.0)]
    answers = {}
    for version in (1, 2):
        user = f"v{version}"
        redis_client.set(keys.user_recs(user), encode_candidates(stored, version=version))
        redis_client.set(keys.user_profile(user), encode_profile("s1", recent, [0.5, -0.25], [("shoes", 1.0)], version))
        status, recs = live_server.json("GET", f"/v1/users/{user}/recommendations?n=4")
        assert status == 200
        status, shown = live_server.json("GET", f"/v1/users/{user}/profile")
        assert status == 200
        answers[version] = recs, shown
    (old_recs, old_profile), (new_recs, new_profile) = answers[1], answers[2]
    assert [(i["item_id"], i["source"]) for i in new_recs["items"]] == [
        ("p1", "personal"), ("p2", "personal"), ("p3", "personal"), ("t2", "trending")]  # t1: the list's exclusion
    assert [(i["item_id"], i["source"]) for i in old_recs["items"]] == [(i["item_id"], i["source"])
                                                                       for i in new_recs["items"]]
    assert [i["score"] for i in new_recs["items"]] == pytest.approx([i["score"] for i in old_recs["items"]], rel=1e-3)
    assert new_profile == {**old_profile, "user_id": "v2"} == {
        "user_id": "v2", "session_id": "s1",
        "recent": [{"item_id": "p2", "weight": 3.0, "ts": 1_700_000_060.0},
                   {"item_id": "p9", "weight": 1.0, "ts": 1_700_000_000.0}],
        "session_embedding": [0.5, -0.25], "affinities": [["shoes", 1.0]]}


@pytest.mark.parametrize(
    ("path", "status", "field"),
    [
        ("/v1/users/u/recommendations?n=0", 400, "n"),
        ("/v1/users/u/recommendations?n=ten", 400, "n"),
        ("/v1/trending?n=100000", 400, "n"),
        ("/v1/users/" + "x" * 300 + "/recommendations", 400, "user_id"),
        ("/v1/users/u/recommendations?category=" + "c" * 300, 400, "category"),
        ("/v1/nothing", 404, "path"),
        ("/v1/users/nobody/profile", 404, "user_id"),
    ],
)
def test_bad_requests_name_the_parameter(live_server: LiveServer, path: str, status: int, field: str) -> None:
    got, body = live_server.json("GET", path)
    assert got == status
    assert body["error"]["field"] == field


def test_wrong_method(live_server: LiveServer) -> None:
    status, headers, raw = live_server.request("GET", "/v1/events")
    assert status == 405 and orjson.loads(raw)["error"]["field"] == "method" and headers["allow"] == "POST"


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
        status, headers, raw = server.request("POST", "/v1/events", orjson.dumps(VIEW),
                                              {"content-type": "application/json"})
        assert status == 503 and headers["retry-after"] == "1"
        assert orjson.loads(raw)["error"]["code"] == "redis_unavailable"
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


# --- the hot path's multiplexed reads (serving.redis_reads) ---------------------------------------------------
async def _asgi_get(app: object, path: str, query: bytes = b"") -> tuple[int, dict]:
    """One GET through the ASGI app, without an HTTP server: status and JSON body."""
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": path, "raw_path": path.encode(), "query_string": query,
             "headers": []}
    await app(scope, receive, send)  # type: ignore[operator]
    return sent[0]["status"], orjson.loads(sent[1]["body"])


def test_fast_reads_answer_exactly_what_redis_py_answers(redis_client: redis.Redis, keys: RedisKeys,
                                                         settings: Settings) -> None:
    """Every read route gives the same body through the multiplexed reader as through redis-py."""
    import asyncio

    from serving.app import LiverecoApp
    from serving.redis_connect import connect_async

    seed_trending(redis_client, keys, [f"t{k}" for k in range(30)])
    redis_client.zadd(keys.trending(), {"t5": 96.123456789, "t6": 95.5})  # scores that are not whole numbers
    seed_trending(redis_client, keys, ["c1", "c2"], category="shoes")
    for u in range(20):
        redis_client.set(keys.user_recs(f"u{u}"), encode_candidates(
            CandidateList([f"p{u}-{k}" for k in range(u % 7)] + ["t3"], [1.0 / (k + 1) for k in range(u % 7 + 1)],
                          exclude=["t1"] if u % 2 else [])))
    redis_client.set(keys.item_similar("i1"), encode_candidates(CandidateList(["i2", "t2"], [0.5, 0.25])))
    redis_client.hset(keys.ranker(), mapping={"shard0": orjson.dumps({"weights": {"trending": 0.7, "personal": 0.3}}),
                                              "shard1": orjson.dumps({"weights": {"trending_rank": 1.0}})})
    requests = [(f"/v1/users/u{u}/recommendations", q) for u in range(21) for q in (b"n=5", b"n=12&exclude=t2")]
    requests += [("/v1/items/i1/similar", b"n=4"), ("/v1/trending", b"n=7"), ("/v1/trending", b"category=shoes"),
                 ("/v1/users/nobody/profile", b"")]

    async def scenario() -> None:
        fast, plain = LiverecoApp(settings), LiverecoApp(settings, client=connect_async(settings.redis_url))
        assert fast._fast is not None and plain._fast is None
        try:
            for path, query in requests:
                a, b = await _asgi_get(fast, path, query), await _asgi_get(plain, path, query)
                for body in (a[1], b[1]):
                    body.pop("updated_ms_ago", None)
                    assert isinstance(body.pop("rec_id", ""), str)  # a new random id for every answer
                assert a == b, (path, query)
        finally:
            await fast._fast.aclose()
            await fast.client.aclose()
            await plain.client.aclose()

    asyncio.run(scenario())


def test_fast_reads_keep_concurrent_answers_in_order_and_raise_redis_errors(redis_client: redis.Redis,
                                                                             keys: RedisKeys, redis_url: str) -> None:
    import asyncio

    from serving.redis_reads import fast_reads_for

    for k in range(300):
        redis_client.set(keys.user_recs(f"c{k}"), f"value-{k}")
    seed_trending(redis_client, keys, ["a", "b"])
    reads = fast_reads_for(redis_url)
    assert reads is not None

    async def one(k: int) -> tuple[object, object]:
        pipe = reads.pipeline(transaction=False)
        pipe.get(keys.user_recs(f"c{k}"))
        pipe.execute_command("ZREVRANGE", keys.trending(), 0, 0, "WITHSCORES")
        blob, top = await pipe.execute()
        return blob, top

    async def scenario() -> None:
        answers = await asyncio.gather(*(one(k) for k in range(300)))  # one write, many replies per read
        assert answers == [(f"value-{k}".encode(), [b"a", b"100"]) for k in range(300)]
        with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
            await reads.get(keys.trending())
        assert await reads.get(keys.user_recs("missing")) is None  # the connection survives an error reply
        await reads.aclose()
        assert await reads.get(keys.user_recs("c1")) == b"value-1"  # and reopens after a close
        await reads.aclose()

    asyncio.run(scenario())


def test_fast_reads_time_out_on_a_silent_server() -> None:
    import asyncio

    from serving.redis_reads import FastReads

    async def scenario() -> None:
        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read(1 << 16)
            await asyncio.sleep(5)

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reads = FastReads("127.0.0.1", port, timeout_s=0.2)
        started = time.monotonic()
        with pytest.raises(redis.TimeoutError):
            await reads.get("k")
        assert time.monotonic() - started < 2.0
        await reads.aclose()
        server.close()

    asyncio.run(scenario())


def test_redis_outage_on_the_recommendation_route_answers_503_and_recovers(namespace: str) -> None:
    own = EmbeddedRedis().start()
    settings = Settings.from_env({}, redis_url=own.url, namespace=namespace, partitions=2)
    server = LiveServer(settings).start()
    path = "/v1/users/u1/recommendations"
    try:
        assert server.app._fast is not None  # the multiplexed reader serves this route
        assert server.json("GET", path)[0] == 200
        own.process.terminate()  # type: ignore[union-attr]
        own.process.wait()  # type: ignore[union-attr]
        status, body = server.json("GET", path)
        assert status == 503
        assert body["error"]["code"] == "redis_unavailable"
        own.start()  # same port: the reader reconnects by itself
        deadline = time.monotonic() + 10
        while server.json("GET", path)[0] != 200:
            assert time.monotonic() < deadline, "the recommendation route did not recover after Redis came back"
            time.sleep(0.1)
    finally:
        server.stop()
        own.stop()
