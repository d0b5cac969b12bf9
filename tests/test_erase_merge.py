"""Erase a user and merge an anonymous visitor, through the real server and flow (recovery on), proven with inspect.

The erase test posts a user's events, waits until the flow's recovery store
holds the user, calls ``DELETE /v1/users/{id}``, and then requires that
**nothing** is left: no Redis key holding the id (a SCAN over the namespace),
no stream entry, no dead letter, nothing in the flow's resume state and no
snapshot row of any epoch holding the id (``livereco inspect``'s search);
recommendations answer as for an unknown user, and a user who comes back
starts from nothing.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
import redis

from flows.embedded_redis import free_port
from flows.inspect import find_user
from online.contract import RedisKeys, decode_candidates
from tests.processes import get, livereco_process, process_env


@pytest.fixture()
def system(redis_url: str, namespace: str, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    port, metrics_port = free_port(), free_port()
    env = process_env(redis_url, namespace, port, metrics_port)
    store = tmp_path / "recovery"
    base = f"http://127.0.0.1:{port}"
    with livereco_process(env, "flow", "-r", str(store), "-s", "0.2",
                          ready_url=f"http://127.0.0.1:{metrics_port}/metrics"), \
         livereco_process(env, "serve", ready_url=f"{base}/readyz"):
        yield base, store


def _request(method: str, url: str, body: object = None) -> tuple[int, dict]:
    import urllib.request
    data = None if body is None else orjson.dumps(body)
    request = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, orjson.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read())


def _wait(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s} s: {what}")
        time.sleep(0.1)


def _events(user: str, items: list[str]) -> list[dict]:
    return [{"user_id": user, "item_id": item, "type": "view", "ts": time.time() - len(items) + n}
            for n, item in enumerate(items)]


@pytest.mark.slow
def test_erase_leaves_nothing_of_the_user_anywhere(system: tuple[str, Path], redis_client: redis.Redis,
                                                   namespace: str) -> None:
    base, store = system
    keys = RedisKeys(namespace, 2)
    for user in ("neighbour", "victim"):  # the neighbour's session gives the victim a personal list
        assert _request("POST", f"{base}/v1/events", _events(user, ["a", "b", "c"]))[0] == 202
    redis_client.xadd(keys.stream_for_user("victim"), {"e": b'{"user_id":"victim","item_id":"x","type":"nope"}'})
    _wait(lambda: orjson.loads(get(f"{base}/v1/users/victim/recommendations")[1])["source"] == "personal", 10,
          "the victim's personal list")
    _wait(lambda: bool(find_user(redis_client, keys, "victim", store).recovery_state), 20, "the victim in a snapshot")

    status, answer = _request("DELETE", f"{base}/v1/users/victim")
    assert status == 202, answer
    # 3 views and the bad entry, and the impression records of the lists read above that the flow's source has not
    # deleted yet (served control messages name the user too)
    assert answer["erased"]["keys"] == 2 and answer["erased"]["stream_entries"] >= 4
    assert answer["erased"]["dead_letters"] == 1
    _wait(lambda: find_user(redis_client, keys, "victim", store).empty, 75,
          "nothing left of the victim: " + find_user(redis_client, keys, "victim", store).report())
    found = [key for key in redis_client.scan_iter(match=f"{namespace}:*") if b"victim" in key]
    assert found == []
    answer = orjson.loads(get(f"{base}/v1/users/victim/recommendations")[1])
    assert answer["source"] == "trending" and answer["fallback"] == "unknown"
    neighbour = find_user(redis_client, keys, "neighbour", store)
    assert neighbour.redis_keys and neighbour.recovery_state  # erasing one user touched no other

    assert _request("DELETE", f"{base}/v1/users/victim")[0] == 202  # idempotent
    assert _request("POST", f"{base}/v1/events", _events("victim", ["q"]))[0] == 202  # back, from nothing
    _wait(lambda: redis_client.get(keys.user_profile("victim")) is not None, 10, "the returning victim's profile")
    profile = orjson.loads(get(f"{base}/v1/users/victim/profile")[1])
    assert [r["item_id"] for r in profile["recent"]] == ["q"]


@pytest.mark.slow
def test_merge_folds_an_anonymous_session_into_the_account(system: tuple[str, Path], redis_client: redis.Redis,
                                                           namespace: str) -> None:
    base, store = system
    keys = RedisKeys(namespace, 2)
    assert _request("POST", f"{base}/v1/events", _events("shopper", ["boots", "socks", "laces"]))[0] == 202
    assert _request("POST", f"{base}/v1/events", _events("anon-42", ["boots", "socks"]))[0] == 202
    _wait(lambda: redis_client.get(keys.user_profile("anon-42")) is not None, 10, "the visitor's profile")
    assert redis_client.get(keys.user_recs("account-7")) is None

    status, answer = _request("POST", f"{base}/v1/users/account-7/merge", {"from": "anon-42"})
    assert status == 202 and answer["items"] == 2 and answer["merged_from"] == "anon-42", answer
    _wait(lambda: redis_client.get(keys.user_recs("account-7")) is not None, 10, "the account's list")
    listed = decode_candidates(redis_client.get(keys.user_recs("account-7"))).items  # type: ignore[arg-type]
    assert "laces" in listed  # what the visitor's views lead to (the shopper went on to laces)
    answer = orjson.loads(get(f"{base}/v1/users/account-7/recommendations?n=5")[1])
    assert answer["source"] == "personal"
    profile = orjson.loads(get(f"{base}/v1/users/account-7/profile")[1])
    assert {r["item_id"] for r in profile["recent"]} == {"boots", "socks"}
    _wait(lambda: find_user(redis_client, keys, "anon-42", store).empty, 75,
          "nothing left of the visitor: " + find_user(redis_client, keys, "anon-42", store).report())
    assert _request("POST", f"{base}/v1/users/account-7/merge", {"from": "anon-42"})[0] == 202  # again: harmless
    assert _request("POST", f"{base}/v1/users/account-7/merge", {"from": "account-7"})[0] == 409
    assert _request("POST", f"{base}/v1/users/account-7/merge", {"to": "x"})[0] == 422


def test_inspect_cli_exit_status_tells_whether_anything_is_left(redis_url: str, namespace: str) -> None:
    from benchmarks.cluster_check import flow_env
    from tests.processes import ROOT
    env = flow_env(redis_url, namespace, 0)
    done = subprocess.run([sys.executable, "-m", "flows.cli", "inspect", "user", "never-seen"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "nothing found" in done.stdout
