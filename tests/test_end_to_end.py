"""One event through all three parts: HTTP ingestion → Redis streams → the real flow process → Redis → HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator

import orjson
import pytest
import redis

from online.contract import RedisKeys
from tests.processes import flow_and_server, get, metric_value, post

pytestmark = pytest.mark.slow


@pytest.fixture
def system(redis_url: str, namespace: str) -> Iterator[tuple[str, str]]:
    with flow_and_server(redis_url, namespace) as urls:
        yield urls


def wait_for(predicate: object, timeout_s: float) -> float:
    started = time.monotonic()
    while not predicate():  # type: ignore[operator]
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"not true within {timeout_s} s")
        time.sleep(0.005)
    return time.monotonic() - started


def test_three_views_make_a_personal_list_within_a_second(system: tuple[str, str], redis_client: redis.Redis,
                                                          namespace: str) -> None:
    base, flow_metrics = system
    # Other shoppers first, so the items have neighbours.
    history = [{"user_id": f"old{u}", "item_id": f"sku-{(u + k) % 9}", "type": "view", "ts": time.time() - 60 + k}
               for u in range(30) for k in range(3)]
    assert post(f"{base}/v1/events", orjson.dumps(history))[0] == 202
    wait_for(lambda: get(f"{base}/v1/users/old29/recommendations")[1].find(b'"personal"') > 0, 10)

    user = f"new-{time.time_ns()}"
    status, body = get(f"{base}/v1/users/{user}/recommendations")
    assert status == 200 and orjson.loads(body)["source"] == "trending"
    views = [{"user_id": user, "item_id": f"sku-{k}", "type": "view"} for k in (1, 2, 3)]
    posted = time.monotonic()
    assert post(f"{base}/v1/events", orjson.dumps(views))[0] == 202

    def personal() -> bool:
        answer = orjson.loads(get(f"{base}/v1/users/{user}/recommendations?n=5")[1])
        return bool(answer["source"] == "personal")

    wait_for(personal, 5)
    assert time.monotonic() - posted < 1.0
    answer = orjson.loads(get(f"{base}/v1/users/{user}/recommendations?n=5")[1])
    assert answer["items"][0]["item_id"] == "sku-3"  # people go back to what they just viewed
    answer = orjson.loads(get(f"{base}/v1/users/{user}/recommendations?n=5&exclude=sku-1,sku-2,sku-3")[1])
    assert answer["source"] == "personal"
    assert not {"sku-1", "sku-2", "sku-3"} & {i["item_id"] for i in answer["items"]}
    profile = orjson.loads(get(f"{base}/v1/users/{user}/profile")[1])
    assert [r["item_id"] for r in profile["recent"]] == ["sku-3", "sku-2", "sku-1"]

    # Both /metrics endpoints have samples now.
    flow_text = get(flow_metrics)[1].decode()
    assert metric_value(flow_text, "livereco_flow_freshness_seconds_count") >= 4
    assert metric_value(flow_text, "livereco_flow_events_total", 'type="view"') >= 93
    server_text = get(f"{base}/metrics")[1].decode()
    assert metric_value(server_text, "livereco_serving_request_duration_seconds_count",
                        'method="GET",route="/v1/users/{user_id}/recommendations"') >= 3


def test_malformed_stream_entry_is_dead_lettered_and_the_flow_goes_on(
        system: tuple[str, str], redis_client: redis.Redis, namespace: str) -> None:
    base, flow_metrics = system
    keys = RedisKeys(namespace, 2)
    redis_client.xadd(keys.stream(1), {"e": b'{"user_id": "x", "item_id": 5'})
    wait_for(lambda: redis_client.xlen(keys.dead_letter()) == 1, 5)
    (_, letter), = redis_client.xrange(keys.dead_letter())
    assert letter[b"field"] == b"e" and b"not valid UTF-8 JSON" in letter[b"reason"]
    assert letter[b"stream"] == keys.stream(1).encode()
    views = [{"user_id": "after", "item_id": f"i{k}", "type": "view"} for k in range(3)]
    assert post(f"{base}/v1/events", orjson.dumps(views))[0] == 202
    wait_for(lambda: orjson.loads(get(f"{base}/v1/users/after/recommendations")[1])["source"] == "personal", 5)
    assert metric_value(get(flow_metrics)[1].decode(), "livereco_flow_dead_letters_total", 'reason="e",stage="parse"') == 1
