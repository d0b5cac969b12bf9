"""Backpressure instead of trimming unread events, and /readyz when events are accepted but not processed.

No flow runs here: the tests write the flow's progress hash themselves, as the
flow's source publishes it (online.contract.progress).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import orjson
import pytest
import redis

from flows.event_writer import BacklogWaitExpired, EventWriter
from online.contract import Event, RedisKeys, Settings, StreamProgress
from online.contract.progress import entry_order
from tests.conftest import LiveServer

VIEW = {"user_id": "u1", "item_id": "i1", "type": "view"}


@pytest.fixture
def small(redis_url: str, namespace: str) -> Settings:
    return Settings.from_env({}, redis_url=redis_url, namespace=namespace, partitions=2, flow_metrics_port=0,
                             stream_maxlen=20, flow_stale_s=0.5)


@pytest.fixture
def small_server(small: Settings) -> Iterator[LiveServer]:
    server = LiveServer(small).start()
    yield server
    server.stop()


def publish(client: redis.Redis, keys: RedisKeys, stream: str, read_id: str, safe_id: str,
            seen_ms: int | None = None) -> None:
    seen = int(time.time() * 1000) if seen_ms is None else seen_ms
    client.hset(keys.flow_progress(), stream, StreamProgress(read_id, safe_id, seen).encode())


def ids_of(client: redis.Redis, stream: str) -> list[str]:
    return [entry_id.decode() for entry_id, _ in client.xrange(stream)]


def test_a_full_partition_answers_503_with_retry_after_and_loses_nothing(
        small_server: LiveServer, redis_client: redis.Redis, small: Settings) -> None:
    keys = small.keys
    stream = keys.stream_for_user("u1")
    statuses, accepted = [], []
    for k in range(30):
        status, headers, body = small_server.request("POST", "/v1/events", orjson.dumps({**VIEW, "item_id": f"i{k}"}),
                                                     {"content-type": "application/json"})
        statuses.append(status)
        if status == 202:
            accepted += orjson.loads(body)["ids"]
        else:
            assert status == 503 and headers["retry-after"] == "1"
            error = orjson.loads(body)["error"]
            assert (error["code"], error["stream"], error["entries"], error["bound"]) == ("backlog_full", stream, 20, 20)
            assert "LIVERECO_STREAM_MAXLEN" in error["message"]
    assert statuses == [202] * 20 + [503] * 10
    assert ids_of(redis_client, stream) == accepted  # nothing trimmed, nothing refused was written
    # a batch with one event for the full partition is refused whole, though the other partition has room
    other = next(u for u in (f"x{k}" for k in range(100)) if keys.stream_for_user(u) != stream)
    status, body = small_server.json("POST", "/v1/events", [{**VIEW, "user_id": other}, VIEW])
    assert status == 503 and body["error"]["stream"] == stream
    assert redis_client.xlen(keys.stream_for_user(other)) == 0
    metrics = small_server.app.metrics.registry
    partition = str(keys.partition_of("u1"))
    assert metrics.get_sample_value("livereco_serving_backlog_refusals_total", {"partition": partition}) == 11.0


def test_the_partition_drains_once_the_flow_has_read_it(small_server: LiveServer, redis_client: redis.Redis,
                                                        small: Settings) -> None:
    keys = small.keys
    stream = keys.stream_for_user("u1")
    assert small_server.json("POST", "/v1/events", [VIEW] * 20)[0] == 202
    assert small_server.json("POST", "/v1/events", VIEW)[0] == 503
    entries = ids_of(redis_client, stream)
    publish(redis_client, keys, stream, read_id=entries[-1], safe_id=entries[14])  # read all, 15 released
    time.sleep(0.3)  # the server re-reads lengths and progress within 0.2 s
    status, body = small_server.json("POST", "/v1/events", VIEW)
    assert status == 202, body
    assert ids_of(redis_client, stream) == entries[14:] + body["ids"]  # exactly what was released is gone


def test_appends_trim_only_before_the_safe_point(live_server: LiveServer, redis_client: redis.Redis,
                                                 settings: Settings) -> None:
    keys = settings.keys
    stream = keys.stream_for_user("u1")
    for _ in range(4):  # 1,000 entries: approximate trimming removes whole nodes of 100
        assert live_server.json("POST", "/v1/events", [VIEW] * 250)[0] == 202
    entries = ids_of(redis_client, stream)
    assert len(entries) == 1000  # no progress, no trimming
    safe = entries[700]
    publish(redis_client, keys, stream, read_id=entries[900], safe_id=safe)
    time.sleep(0.3)
    assert live_server.json("POST", "/v1/events", [VIEW] * 10)[0] == 202
    kept = ids_of(redis_client, stream)
    assert kept[kept.index(safe):kept.index(safe) + 300] == entries[700:]  # everything from the safe point on
    assert len(kept) == 310  # the refresh trims exactly to it; appends then trim approximately
    older = [e for e in kept if entry_order(e) < entry_order(safe)]  # ids compare as numbers: "-20" < "-100"
    assert older == []


def test_the_producer_waits_for_room_instead_of_dropping(redis_client: redis.Redis, small: Settings) -> None:
    keys = small.keys
    stream = keys.stream_for_user("u1")
    writer = EventWriter(redis_client, keys, maxlen=10, ttl_s=0.05)
    first = writer.append([Event("u1", f"i{k}", "view", 1.7e9) for k in range(10)])
    done: list[list[str]] = []
    thread = threading.Thread(target=lambda: done.append(writer.append([Event("u1", "late", "view", 1.7e9)])))
    thread.start()
    time.sleep(0.5)
    assert thread.is_alive() and writer.waits == 1 and redis_client.xlen(stream) == 10  # waiting, nothing dropped
    publish(redis_client, keys, stream, read_id=first[-1], safe_id=first[5])
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert ids_of(redis_client, stream) == first[5:] + done[0]
    impatient = EventWriter(redis_client, keys, maxlen=5, max_wait_s=0.2)
    with pytest.raises(BacklogWaitExpired, match="is the flow running"):
        impatient.append([Event("u1", "x", "view", 1.7e9)])
    assert ids_of(redis_client, stream) == first[5:] + done[0]


def test_readyz_turns_503_when_events_wait_and_the_flow_is_silent(small_server: LiveServer,
                                                                   redis_client: redis.Redis,
                                                                   small: Settings) -> None:
    keys = small.keys
    stream = keys.stream_for_user("u1")
    assert small_server.json("GET", "/readyz") == (200, {"status": "ready"})  # empty streams, no flow: fine
    status, body = small_server.json("POST", "/v1/events", VIEW)
    assert status == 202
    assert small_server.json("GET", "/readyz")[0] == 200  # younger than LIVERECO_FLOW_STALE_S
    time.sleep(0.7)
    status, headers, raw = small_server.request("GET", "/readyz")
    error = orjson.loads(raw)["error"]
    assert status == 503 and headers["retry-after"] == "5" and error["code"] == "flow_stalled"
    (waiting,) = error["streams"]
    assert waiting["stream"] == stream and waiting["entries"] == 1 and waiting["heartbeat_age_s"] is None
    assert waiting["oldest_unread_age_s"] >= 0.5 and "no progress from the flow" in error["message"]
    publish(redis_client, keys, stream, read_id=body["ids"][0], safe_id="0-0")  # the flow read it
    assert small_server.json("GET", "/readyz") == (200, {"status": "ready"})
    publish(redis_client, keys, stream, read_id=body["ids"][0], safe_id="0-0", seen_ms=int(time.time() * 1000) - 9000)
    assert small_server.json("GET", "/readyz")[0] == 200  # a silent flow with nothing waiting is not an alarm
    assert small_server.json("POST", "/v1/events", VIEW)[0] == 202
    status, body = small_server.json("GET", "/readyz")
    assert status == 503 and 8.5 < body["error"]["streams"][0]["heartbeat_age_s"] < 30
    _, _, text = small_server.request("GET", "/metrics")
    partition = keys.partition_of("u1")
    lines = text.decode().splitlines()
    assert f'livereco_serving_flow_stalled{{partition="{partition}"}} 1.0' in lines
    assert f'livereco_serving_flow_stalled{{partition="{1 - partition}"}} 0.0' in lines
    assert f'livereco_serving_flow_heartbeat_age_seconds{{partition="{1 - partition}"}} +Inf' in lines
    assert f'livereco_serving_stream_entries{{partition="{partition}"}} 2.0' in lines
