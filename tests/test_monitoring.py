"""A real Prometheus scrapes the real flow and server; the shipped config (with its alert rules) is valid.

The alert rules themselves (generated, promtool unit tests, real metrics) are tested in tests/test_alerts.py.

Needs Debian's ``prometheus`` package (CI installs it as root). Without it
these tests skip and say so; nothing else in the suite depends on them.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
import urllib.parse
from pathlib import Path

import orjson
import pytest

from flows.embedded_redis import free_port
from flows.readiness import wait_until_answering
from tests.processes import ROOT, get, livereco_process, post, process_env

pytestmark = [pytest.mark.prometheus, pytest.mark.slow]

PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")
needs_prometheus = pytest.mark.skipif(
    PROMETHEUS is None, reason="no 'prometheus' binary: install Debian's prometheus package (CI does as root)")


@pytest.mark.skipif(PROMTOOL is None, reason="no 'promtool': install Debian's prometheus package")
def test_shipped_config_and_alert_rules_are_valid() -> None:
    config = ROOT / "deploy" / "prometheus" / "prometheus.yml"
    result = subprocess.run([str(PROMTOOL), "check", "config", str(config)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def query(prom: str, expr: str) -> list[dict[str, object]]:
    status, body = get(f"{prom}/api/v1/query?query={urllib.parse.quote(expr)}")
    assert status == 200, body
    result: list[dict[str, object]] = orjson.loads(body)["data"]["result"]
    return result


@needs_prometheus
def test_prometheus_scrapes_freshness_and_request_latency(redis_url: str, namespace: str) -> None:
    port, metrics_port, prom_port = free_port(), free_port(), free_port()
    env = process_env(redis_url, namespace, port, metrics_port)
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp, \
            livereco_process(env, "flow", ready_url=f"http://127.0.0.1:{metrics_port}/metrics"), \
            livereco_process(env, "serve", ready_url=f"{base}/readyz"):
        config = Path(tmp) / "prometheus.yml"
        config.write_text(f"""
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
scrape_configs:
  - job_name: livereco-server
    static_configs: [{{targets: ["127.0.0.1:{port}"]}}]
  - job_name: livereco-flow
    static_configs: [{{targets: ["127.0.0.1:{metrics_port}"]}}]
""")
        prom = subprocess.Popen(
            [str(PROMETHEUS), f"--config.file={config}", f"--storage.tsdb.path={tmp}/data",
             f"--web.listen-address=127.0.0.1:{prom_port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            events = [{"user_id": f"u{u}", "item_id": f"i{(u + k) % 7}", "type": "view"}
                      for u in range(20) for k in range(3)]
            assert post(f"{base}/v1/events", orjson.dumps(events))[0] == 202
            for _ in range(20):
                get(f"{base}/v1/users/u1/recommendations")
            prom_url = f"http://127.0.0.1:{prom_port}"
            wait_until_answering(f"{prom_url}/-/ready", [prom])  # it answers 503 while starting
            checks = {
                "freshness": "sum(livereco_flow_freshness_seconds_count)",
                "latency": 'sum(livereco_serving_request_duration_seconds_count{route="/v1/users/{user_id}/recommendations"})',
                "events": 'sum(livereco_flow_events_total{type="view"})',
            }
            deadline = time.monotonic() + 30
            values: dict[str, float] = {}
            while time.monotonic() < deadline:
                try:
                    values = {name: float(r[0]["value"][1]) if (r := query(prom_url, expr)) else 0.0  # type: ignore[index]
                              for name, expr in checks.items()}
                except OSError:
                    values = {}
                if values and values["freshness"] >= 1 and values["latency"] >= 20 and values["events"] >= 60:
                    break
                time.sleep(0.5)
            assert values.get("freshness", 0) >= 1, values
            assert values.get("latency", 0) >= 20, values
            assert values.get("events", 0) >= 60, values
            up = query(prom_url, "up")
            assert {r["metric"]["job"]: r["value"][1] for r in up} == {  # type: ignore[index]
                "livereco-server": "1", "livereco-flow": "1"}
        finally:
            prom.terminate()
            prom.wait(timeout=10)
