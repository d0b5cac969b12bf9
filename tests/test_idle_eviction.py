"""Idle users leave the flow's state (and Redis), and come back as new users.

A real ``livereco flow`` process with ``LIVERECO_USER_TTL_S=2``: Bytewax's
timers are wall-clock, so this needs a live flow, not a replay that ends.
"""

from __future__ import annotations

import time
import urllib.request

import pytest
import redis

from flows.event_writer import EventWriter
from flows.redis_client import connect
from flows.stages import UserListLogic
from online.contract import Event, RedisKeys, decode_candidates
from tests.processes import livereco_process, metric_value, process_env

pytestmark = pytest.mark.slow


def _metrics(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return str(answer.read().decode())


def _wait(predicate: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s} s")
        time.sleep(0.05)


def test_an_idle_user_is_evicted_and_comes_back_with_a_fresh_history(redis_url: str, namespace: str,
                                                                     redis_client: redis.Redis) -> None:
    from flows.embedded_redis import free_port

    keys = RedisKeys(namespace, 2)
    metrics_port = free_port()
    env = process_env(redis_url, namespace, free_port(), metrics_port, LIVERECO_USER_TTL_S="2")
    metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    writer = EventWriter(connect(redis_url), keys)
    now = time.time()
    # Other shoppers give "a" the neighbour "x" and "c" the neighbour "y".
    crowd = [Event(f"crowd{u}{pair}", item, "view", now - 100 + k) for u in range(5)
             for pair in ("ax", "cy") for k, item in enumerate(pair)]
    with livereco_process(env, "flow", ready_url=metrics_url):
        writer.append(crowd)
        writer.append([Event("u", "a", "view", now - 50), Event("u", "b", "view", now - 49)])

        def recs() -> list[str]:
            blob = redis_client.get(keys.user_recs("u"))
            return decode_candidates(blob).items if blob else []

        _wait(lambda: "x" in recs(), 10, "u's list has a's neighbour")
        predictions = metric_value(_metrics(metrics_url), "livereco_flow_prequential_predictions_total")

        # Idle past the TTL: the history stage drops u (and Redis expires u's keys). Every user's history
        # goes, the crowd's too: waiting for the first eviction only could see a crowd user's, u's a second later.
        users = len({event.user_id for event in crowd}) + 1
        _wait(lambda: metric_value(_metrics(metrics_url), "livereco_flow_evicted_keys_total",
                                   'stage="user_history"') >= users, 15, "every idle user's history is evicted")
        _wait(lambda: redis_client.get(keys.user_recs("u")) is None, 10, "u's list expires in Redis")
        # The user-list stage keeps u a grace longer; u comes back within it, as a new user.
        assert UserListLogic.eviction_grace_s > 10
        writer.append([Event("u", "c", "view", time.time())])
        _wait(lambda: "y" in recs(), 10, "u's new list has c's neighbour")
        listed = set(recs())
        assert not {"a", "b", "x"} & listed, listed  # nothing from before the eviction
        # A new user's first event is not scored: there was no list before it.
        assert metric_value(_metrics(metrics_url), "livereco_flow_prequential_predictions_total") == predictions
        # And the user goes on as usual: the next event is scored against the new list.
        writer.append([Event("u", "y", "view", time.time())])
        _wait(lambda: metric_value(_metrics(metrics_url), "livereco_flow_prequential_predictions_total")
              == predictions + 1, 10, "u's next event is scored")
        items_evicted = metric_value(_metrics(metrics_url), "livereco_flow_evicted_keys_total", 'stage="items"')
        assert items_evicted == 0  # items live at least 4 co-visitation half-lives
