"""No event stops the flow: poison written straight into the streams is dead-lettered, the rest is processed once.

A real ``livereco flow`` process (recovery on) reads real Redis streams into
which the test writes, bypassing the server, every kind of poison we could
think of between good events: the newline in a context value that used to
stop the flow for good, control characters, lone surrogates, invalid UTF-8,
JSON that is not an object, absurd sizes and nesting, bad numbers, and a
write Redis itself refuses (a trending key of the wrong type). After each
one, the next good event of another user must have its list within a second.
Then the flow is killed with SIGKILL, more poison and good events arrive
while it is down, and the restarted flow must go on: every good event
counted once and in order (each user's profile holds its items newest first,
each with weight 1.0: a replayed event would make it 2.0), every poison
entry in the dead-letter stream with its stage and reason, none of the good.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from benchmarks.cluster_check import flow_env
from benchmarks.poison import NOW, POISON, event_fields
from flows.embedded_redis import free_port
from flows.readiness import wait_until_answering
from online.contract import RedisKeys, decode_candidates, decode_profile
from tests.processes import ROOT


def _event(user: str, item: str, **extra: object) -> dict[bytes, bytes]:
    return event_fields(user, item, **extra)


WRONG_TYPE_CATEGORY = "wrong-type"
"""A category whose trending key the test makes a string: Redis refuses the sink's ZADD (WRONGTYPE)."""


@pytest.fixture()
def store(tmp_path: Path) -> Path:
    return tmp_path / "recovery"


def _start_flow(env: dict[str, str], store: Path, metrics_port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen([sys.executable, "-m", "flows.cli", "flow", "-r", str(store), "-s", "0.2"],
                               env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    wait_until_answering(f"http://127.0.0.1:{metrics_port}/metrics", [process], timeout_s=60)
    return process


@pytest.fixture()
def flow_process(redis_url: str, namespace: str, store: Path) -> Iterator[tuple[dict[str, str], int, list[subprocess.Popen[bytes]]]]:
    port = free_port()
    env = flow_env(redis_url, namespace, port)
    processes: list[subprocess.Popen[bytes]] = []
    yield env, port, processes
    for process in processes:
        if process.poll() is None:
            process.terminate()
        out, _ = process.communicate(timeout=20)
        sys.stdout.write(out.decode(errors="replace")[-3000:])


def _wait_for(predicate: object, timeout_s: float, what: str) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if predicate():  # type: ignore[operator]
            return time.monotonic() - started
        time.sleep(0.01)
    raise AssertionError(f"{what}: not within {timeout_s} s")


def _personal(client: redis.Redis, keys: RedisKeys, user: str) -> bool:
    """The user has a personal list: the seed's co-visitation put b and c beside a."""
    raw = client.get(keys.user_recs(user))
    return raw is not None and {"b", "c"} <= set(decode_candidates(raw).items)  # type: ignore[arg-type]


def _profile_items(client: redis.Redis, keys: RedisKeys, user: str) -> list[tuple[str, float]]:
    raw = client.get(keys.user_profile(user))
    if raw is None:
        return []
    return [(item, weight) for item, weight, _ in decode_profile(raw).recent]  # type: ignore[arg-type]


@pytest.mark.slow
def test_poison_in_the_streams_never_stops_the_flow(redis_url: str, namespace: str, store: Path,
                                                    flow_process: tuple[dict[str, str], int, list[subprocess.Popen[bytes]]]) -> None:
    env, metrics_port, processes = flow_process
    keys = RedisKeys(namespace, partitions=2)
    client = redis.Redis.from_url(redis_url)
    client.set(keys.trending(WRONG_TYPE_CATEGORY), "not a sorted set")
    for n, item in enumerate(("a", "b", "c")):  # co-visitation for the good users' personal lists
        client.xadd(keys.stream_for_user("seed"), _event("seed", item, ts=NOW - 10 + n))
    processes.append(_start_flow(env, store, metrics_port))
    _wait_for(lambda: client.exists(keys.item_similar("a")), 30, "the seed's co-visitation")

    poison_ids: dict[str, str] = {}
    good: dict[str, list[str]] = {}
    latencies: list[float] = []

    def poison_then_good(phase: str, wait: bool) -> None:
        for n, (name, fields) in enumerate(POISON.items()):
            stream = keys.stream(n % 2)
            poison_ids[client.xadd(stream, fields).decode()] = f"{phase}: {name}"
            user = f"{phase}-good-{n}"
            good[user] = ["a"]
            client.xadd(keys.stream_for_user(user), _event(user, "a"))
            if wait:  # the next event of another user gets its list within a second
                latencies.append(_wait_for(lambda user=user: _personal(client, keys, user), 1.0,
                                           f"the personal list of {user} after the poison {name!r}"))
        # A write Redis refuses, and an event of the same user after it.
        user = f"{phase}-wrongtype"
        good[user] = ["a", "b"]
        client.xadd(keys.stream_for_user(user), _event(user, "a", context={"category": WRONG_TYPE_CATEGORY}))
        client.xadd(keys.stream_for_user(user), _event(user, "b"))

    poison_then_good("live", wait=True)
    processes[0].send_signal(signal.SIGKILL)
    processes[0].wait()
    poison_then_good("while down", wait=False)
    processes.append(_start_flow(env, store, metrics_port))

    for user, items in good.items():
        expected = [(item, 1.0) for item in reversed(items)]  # newest first, each counted once
        _wait_for(lambda user=user, expected=expected: _profile_items(client, keys, user) == expected, 30,
                  f"{user}'s profile {expected} (it is {_profile_items(client, keys, user)})")
        assert client.exists(keys.user_recs(user))
    assert all(process.poll() is None for process in processes[1:]), "the restarted flow stopped"

    letters = client.xrange(keys.dead_letter())
    by_id: dict[str, dict[bytes, bytes]] = {fields[b"id"].decode(): fields for _, fields in letters}
    missing = [name for entry_id, name in poison_ids.items() if entry_id not in by_id]
    assert not missing, f"poison not in the dead-letter stream: {missing}"
    for entry_id in poison_ids:
        fields = by_id[entry_id]
        assert fields[b"stage"] == b"parse" and fields[b"reason"], fields
    rejected = [fields for _, fields in letters if fields[b"stage"] == b"sink"]
    assert rejected and all(b"WRONGTYPE" in fields[b"reason"] for fields in rejected), rejected
    assert all(b"good" not in fields[b"raw"] for _, fields in letters if fields[b"stage"] == b"parse")
    assert max(latencies) < 1.0
