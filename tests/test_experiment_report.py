"""``livereco experiment report``: the figures the sink counted, with their intervals and the lift over control."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import redis

from flows.experiment_report import wilson
from flows.redis_sink import RedisSink, SinkOptions
from flows.writes import AttributionWrite
from online.contract import RedisKeys
from online.experiments import Experiment
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
        # the lists' labels by the users' next events: control 30 hits of 200, livereco 60 of 200
        writes += [AttributionWrite("prequential", "hit" if u < 30 * (1 + (variant == "livereco")) else "miss",
                                    f"{variant}-u{u}", (), (), "home", variant) for u in range(200)]
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
    assert livereco["scored_lists"] == 200 and livereco["hr_at_10"]["value"] == 60 / 200
    assert (control["hr_at_10"]["low"], control["hr_at_10"]["high"]) == wilson(30, 200)
    assert abs(livereco["lift"]["hr_at_10"]["value"] - 1.0) < 1e-9
    text = subprocess.run([sys.executable, "-m", "flows.cli", "experiment", "report", "home"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60).stdout
    assert "CTR" in text and "lift +100.0%" in text and "live HR@10       30.00%" in text
    missing = subprocess.run([sys.executable, "-m", "flows.cli", "experiment", "report", "nope"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "no experiment 'nope'" in missing.stderr


def test_load_experiments_from_a_file(redis_url: str, namespace: str, redis_client: redis.Redis,
                                      tmp_path: Path) -> None:
    keys = RedisKeys(namespace, 2)
    env = {"REDIS_URL": redis_url, "LIVERECO_NAMESPACE": namespace, "LIVERECO_PARTITIONS": "2", "PATH": "/usr/bin"}

    def load(name: str, text: str, *flags: str) -> subprocess.CompletedProcess[str]:
        path = tmp_path / name
        path.write_text(text)
        return subprocess.run([sys.executable, "-m", "flows.cli", "experiment", "load", str(path), *flags], cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=60)

    good = load("experiments.toml", """
[home]
[[home.variants]]
name = "control"
share = 0.1
control = true
[[home.variants]]
name = "livereco"
share = 0.9

[checkout]
active = false
variants = [{name = "a", share = 1.0, exploration = false}]
""")
    assert good.returncode == 0, good.stderr
    assert "loaded home (control 0.1 / livereco 0.9), checkout (a 1, stopped)" in good.stdout
    stored = {k.decode(): orjson.loads(v) for k, v in redis_client.hgetall(keys.experiments()).items()}
    assert Experiment.from_json("home", stored["home"]).variants[1].share == 0.9
    assert stored["checkout"]["active"] is False and stored["checkout"]["variants"][0]["exploration"] is False

    # One bad field anywhere: a clear error naming file, experiment and field, and nothing written.
    bad = load("more.json", orjson.dumps({"home": {"variants": [{"name": "control", "share": 1.0}]},
                                          "search": {"variants": [{"name": "a", "share": 1.0, "colour": "red"}]}}
                                         ).decode())
    assert bad.returncode == 2 and "more.json: experiment 'search': variant field 'colour' is not known" in bad.stderr
    assert "nothing loaded" in bad.stderr
    assert orjson.loads(redis_client.hget(keys.experiments(), "home"))["variants"][0]["share"] == 0.1  # unchanged
    broken = load("broken.json", '{"home": ')
    assert broken.returncode == 2 and "broken.json: not valid JSON" in broken.stderr
    checked = load("check.json", '{"home": {"variants": [{"name": "control", "share": 1.0}]}}', "--check")
    assert checked.returncode == 0 and "is valid" in checked.stdout
    assert orjson.loads(redis_client.hget(keys.experiments(), "home"))["variants"][0]["share"] == 0.1  # not written
    missing = load("gone.json", "{}")
    assert missing.returncode == 2 and "expected an object mapping experiment names" in missing.stderr
