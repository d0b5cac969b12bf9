"""``livereco experiment report``: the figures the sink counted, with their intervals and the lift over control."""

from __future__ import annotations

import subprocess
import sys

import orjson
import redis

from flows.experiment_report import wilson
from flows.redis_sink import RedisSink, SinkOptions
from flows.writes import AttributionWrite
from online.contract import RedisKeys
from tests.processes import ROOT


def test_report_counts_what_the_sink_wrote(redis_url: str, namespace: str, redis_client: redis.Redis) -> None:
    keys = RedisKeys(namespace, 2)
    redis_client.hset(keys.experiments(), "home", orjson.dumps({"variants": [
        {"name": "control", "share": 0.5, "control": True}, {"name": "livereco", "share": 0.5}]}))
    sink = RedisSink(redis_url, SinkOptions(keys, 3600, 3600, 100, 100)).build("sink", 0, 1)
    writes: list[AttributionWrite] = []
    # control: 200 users shown 10 items each, 40 clicks, 4 purchases of 10.0;
    # livereco: 200 users shown 10 items each, 80 clicks, 10 purchases of 10.0
    for variant, clicks, purchases in (("control", 40, 4), ("livereco", 80, 10)):
        for u in range(200):
            writes.append(AttributionWrite("impression", "attributed", f"{variant}-u{u}", tuple(f"i{k}" for k in range(10)),
                                           ("trending",) * 10, "home", variant))
        writes += [AttributionWrite("click", "attributed", f"{variant}-u{u}", ("i1",), ("trending",), "home", variant,
                                    0.0, 2) for u in range(clicks)]
        writes += [AttributionWrite("purchase", "attributed", f"{variant}-u{u}", ("i1",), ("trending",), "home",
                                    variant, 10.0, 2) for u in range(purchases)]
    sink.write_batch(writes)
    sink.close()

    env = {"REDIS_URL": redis_url, "LIVERECO_NAMESPACE": namespace, "LIVERECO_PARTITIONS": "2", "PATH": "/usr/bin"}
    done = subprocess.run([sys.executable, "-m", "flows.cli", "experiment", "report", "home", "--json"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    data = orjson.loads(done.stdout)
    control, livereco = data["variants"]["control"], data["variants"]["livereco"]
    assert data["control"] == "control"
    assert abs(control["users"] - 200) <= 4 and abs(livereco["users"] - 200) <= 4  # a HyperLogLog's count: ±0.8%
    assert (control["impressions"], control["clicks"], control["conversions"]) == (2000, 40, 4)
    assert livereco["ctr"]["value"] == 80 / 2000
    assert (livereco["ctr"]["low"], livereco["ctr"]["high"]) == wilson(80, 2000)
    assert livereco["revenue_per_user"]["value"] == 100.0 / livereco["users"]
    lift = livereco["lift"]["ctr"]
    assert abs(lift["value"] - 1.0) < 1e-9 and 0 < lift["low"] < 1.0 < lift["high"]  # CTR doubled; interval above 0
    text = subprocess.run([sys.executable, "-m", "flows.cli", "experiment", "report", "home"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60).stdout
    assert "CTR" in text and "lift +100.0%" in text
    missing = subprocess.run([sys.executable, "-m", "flows.cli", "experiment", "report", "nope"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "no experiment 'nope'" in missing.stderr
