"""``livereco inspect user``: finds a user's keys, stream entries, dead letters and recovery state, and nothing else."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import redis

from benchmarks.cluster_check import flow_env
from flows.inspect import find_user
from online.contract import RedisKeys
from tests.processes import ROOT


def _xadd(client: redis.Redis, keys: RedisKeys, user: str, item: str) -> None:
    client.xadd(keys.stream_for_user(user), {"e": orjson.dumps({"user_id": user, "item_id": item, "type": "view"})})


def test_inspect_finds_what_the_flow_keeps_of_a_user_and_nothing_of_another(redis_url: str, namespace: str,
                                                                             redis_client: redis.Redis,
                                                                             tmp_path: Path) -> None:
    keys = RedisKeys(namespace, 2)
    for item in ("a", "b", "c"):
        _xadd(redis_client, keys, "ann", item)
    _xadd(redis_client, keys, "bob", "a")
    redis_client.xadd(keys.stream_for_user("ann"), {"e": b'{"user_id":"ann","item_id":"x","type":"teleport"}'})
    store = tmp_path / "recovery"
    env = flow_env(redis_url, namespace, 0)
    done = subprocess.run([sys.executable, "-m", "flows.cli", "flow", "-r", str(store), "--stop-at-end", "-s", "0.1"],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]

    ann = find_user(redis_client, keys, "ann", store)
    assert {key for key, _, _ in ann.redis_keys} == {keys.user_recs("ann"), keys.user_profile("ann")}
    assert all(ttl > 0 for _, _, ttl in ann.redis_keys)  # every per-user key expires
    assert len(ann.stream_entries) == 4 and len(ann.dead_letters) == 1
    assert {step for step, _ in ann.recovery_state} == {"livereco.user_history", "livereco.user_lists"}
    assert ann.recovery_rows > 0 and not ann.empty

    nobody = find_user(redis_client, keys, "nobody-at-all", store)
    assert nobody.empty, nobody.report()
    shown = subprocess.run([sys.executable, "-m", "flows.cli", "inspect", "user", "nobody-at-all", "--recovery", str(store)],
                           env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and "nothing found" in shown.stdout, shown.stdout + shown.stderr
    shown = subprocess.run([sys.executable, "-m", "flows.cli", "inspect", "user", "ann"], env=env, cwd=ROOT,
                           capture_output=True, text=True, timeout=60)
    assert shown.returncode == 1 and keys.user_recs("ann") in shown.stdout
