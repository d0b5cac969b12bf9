"""Attribution through the real server and flow processes: every list answer carries a rec_id and its variant, the
server records the impression in the user's stream, and the flow attributes the user's events to the list, the
position, the source and the variant (an unknown or malformed rec_id: the event counts, its attribution is unknown).
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable, Iterator

import orjson
import pytest
import redis

from online.contract import RedisKeys
from tests.processes import flow_and_server, get, metric_value, post

ATTRIBUTED = "livereco_flow_attributed_total"


@pytest.fixture()
def system(redis_url: str, namespace: str) -> Iterator[tuple[str, str]]:
    with flow_and_server(redis_url, namespace) as urls:
        yield urls


def _wait(condition: Callable[[], bool], timeout_s: float, what: str, flow_metrics: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            shown = [line for line in get(flow_metrics)[1].decode().splitlines() if line.startswith(ATTRIBUTED)]
            raise AssertionError(f"not within {timeout_s} s: {what}; the flow counted:\n" + "\n".join(shown))
        time.sleep(0.1)


def _json(url: str) -> dict:
    status, body = get(url)
    assert status == 200, body
    return orjson.loads(body)


def _events(base: str, *events: dict) -> None:
    status, body = post(f"{base}/v1/events", orjson.dumps(list(events)))
    assert status == 202, body


def _put(url: str, body: object) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=orjson.dumps(body), method="PUT",
                                     headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, orjson.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read())


def _recorded(base: str) -> float:
    return metric_value(get(f"{base}/metrics")[1].decode(), "livereco_serving_impressions_total", 'status="recorded"')


def _shown(base: str, user: str, n: int) -> dict:
    """A user's list, once its impression record is in Redis: a shopper's click comes seconds after the list,
    never before its record; a test's click can (the record leaves in the server's next loop turn)."""
    before = _recorded(base)
    listed = _json(f"{base}/v1/users/{user}/recommendations?n={n}")
    deadline = time.monotonic() + 5
    while _recorded(base) < before + 1:
        assert time.monotonic() < deadline, "the list's impression record was not written within 5 s"
        time.sleep(0.01)
    return listed


def _attributed(flow_metrics: str, kind: str, status: str, source: str, variant: str) -> float:
    return metric_value(get(flow_metrics)[1].decode(), ATTRIBUTED,
                        f'kind="{kind}",source="{source}",status="{status}",variant="{variant}"')


@pytest.mark.slow
def test_a_click_is_attributed_to_its_list_position_source_and_variant(
        system: tuple[str, str], redis_client: redis.Redis, namespace: str) -> None:
    base, flow_metrics = system
    now = time.time()
    _events(base, *({"user_id": "other", "item_id": item, "type": "view", "ts": now - 10 + n}
              for n, item in enumerate(["a", "b", "c", "d"])),
            {"user_id": "ann", "item_id": "a", "type": "view", "ts": now - 5})
    _wait(lambda: _json(f"{base}/v1/users/ann/recommendations?n=5")["source"] == "personal", 15, "ann's personal list", flow_metrics)

    listed = _shown(base, "ann", 5)
    assert listed["variant"] == "default" and len(listed["rec_id"]) == 12
    position = 2
    chosen = listed["items"][position - 1]
    _events(base, {"user_id": "ann", "item_id": chosen["item_id"], "type": "click", "rec_id": listed["rec_id"]},
            {"user_id": "ann", "item_id": chosen["item_id"], "type": "purchase", "value": 19.5},
            {"user_id": "ann", "item_id": "b", "type": "click", "rec_id": "no-such-list"},
            {"user_id": "ann", "item_id": "c", "type": "click", "rec_id": 42})  # malformed: still an event
    _wait(lambda: _attributed(flow_metrics, "click", "attributed", chosen["source"], "default") == 1, 15,
          f"the click attributed to source {chosen['source']}", flow_metrics)
    _wait(lambda: _attributed(flow_metrics, "click", "unknown", "other", "none") == 2, 15, "two unknown rec_ids", flow_metrics)
    assert _attributed(flow_metrics, "purchase", "attributed", chosen["source"], "default") == 1  # via the click
    assert metric_value(get(flow_metrics)[1].decode(), "livereco_flow_events_total", 'type="click"') == 3

    stats = _json(f"{base}/v1/items/{chosen['item_id']}/stats")
    assert stats["clicks"] == 1 and stats["conversions"] == 1 and stats["revenue"] == 19.5
    assert stats["impressions"] >= 1 and stats["ctr"] == pytest.approx(1 / stats["impressions"])
    keys = RedisKeys(namespace, 2)
    variant = {k.decode(): float(v) for k, v in redis_client.hgetall(keys.variant_stats("", "default")).items()}
    assert variant["clicks"] == 1 and variant["conversions"] == 1 and variant["impressions"] >= 4
    assert variant[f"click_at_{position}"] == 1 and variant[f"purchase_at_{position}"] == 1  # the right place
    assert redis_client.pfcount(keys.variant_users("", "default")) == 1

    # An experiment: ann's next list is made by its variant, and her click is attributed to it.
    status, doc = _put(f"{base}/v1/experiments/home", {"variants": [{"name": "livereco", "share": 1.0}]})
    assert status == 200, doc
    listed = _shown(base, "ann", 5)
    assert listed["variant"] == "livereco"
    first = listed["items"][0]
    _events(base, {"user_id": "ann", "item_id": first["item_id"], "type": "view", "rec_id": listed["rec_id"]})
    _wait(lambda: _attributed(flow_metrics, "click", "attributed", first["source"], "livereco") == 1, 15,
          "the click attributed to the experiment's variant", flow_metrics)
    assert redis_client.hget(keys.variant_stats("home", "livereco"), "clicks") == b"1"


def test_served_lists_are_labelled_once_and_old_snapshots_still_load() -> None:
    import pickle

    from online.attribution import AttributionMemory, ServedList

    memory = AttributionMemory(max_lists=4, window_s=100.0)
    assert memory.score_next("a", 1.0) is None  # nothing served yet
    memory.record(ServedList("r1", 10.0, "control", ("a", "b"), ("trending", "trending")))
    memory.record(ServedList("r2", 11.0, "livereco", tuple(f"i{k}" for k in range(12)), ("personal",) * 12))
    assert memory.score_next("i11", 12.0) == (memory._lists["r2"], False)  # the newest list; item 12 is beyond 10
    assert memory.score_next("i0", 13.0) is None  # labelled once
    memory.record(ServedList("r3", 14.0, "livereco", ("x",), ("personal",)))
    assert memory.score_next("x", 500.0) is None  # older than the window: not labelled
    restored = pickle.loads(pickle.dumps(memory))
    assert restored.attribute("click", "b", "r1", 20.0, None).status == "attributed"
    old = AttributionMemory.__new__(AttributionMemory)
    old.__setstate__((4, 100.0, [ServedList("r1", 10.0, "control", ("a",), ("trending",))], []))  # before labels
    assert old.score_next("a", 11.0) is None and old.attribute("click", "a", "r1", 11.0, None).status == "attributed"
