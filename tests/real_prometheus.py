"""Debian's ``prometheus`` run for a test: scraping a server and a flow every second, and queried over its API.

Shared by the alert rules' and the dashboards' tests, which both check their PromQL against a real Prometheus.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from flows.embedded_redis import free_port
from flows.readiness import wait_until_answering
from tests.processes import get

__all__ = ["PROMETHEUS", "has_number", "prometheus_scraping", "query"]

PROMETHEUS = shutil.which("prometheus")
MISSING = "no 'prometheus' binary: install Debian's prometheus package (CI does as root)"


@contextmanager
def prometheus_scraping(server: str, flow_metrics: str, directory: Path, rules_text: str | None = None
                        ) -> Iterator[str]:
    """Prometheus scraping ``server`` and ``flow_metrics`` every second under the shipped job names; with
    ``rules_text``, evaluating those rules every second too. Yields its base URL."""
    assert PROMETHEUS is not None, MISSING
    rule_files = ""
    if rules_text is not None:
        (directory / "alerts.yml").write_text(rules_text)
        rule_files = "rule_files: [alerts.yml]\n"
    config = directory / "prometheus.yml"
    config.write_text(f"""
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
{rule_files}scrape_configs:
  - job_name: livereco-server
    static_configs: [{{targets: ["{urllib.parse.urlsplit(server).netloc}"]}}]
  - job_name: livereco-flow
    static_configs: [{{targets: ["{urllib.parse.urlsplit(flow_metrics).netloc}"]}}]
""")
    port = free_port()
    prom = subprocess.Popen([PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={directory / 'data'}",
                             f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_answering(f"{url}/-/ready", [prom])
        yield url
    finally:
        prom.terminate()
        prom.wait(timeout=10)


def query(prom: str, expr: str) -> list[dict[str, Any]]:
    """The result of an instant query; a PromQL error fails the test, naming the expression."""
    status, body = get(f"{prom}/api/v1/query?query={urllib.parse.quote(expr)}")
    answer = orjson.loads(body)
    assert status == 200 and answer["status"] == "success", (expr, body[:300])
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


def has_number(result: list[dict[str, Any]]) -> bool:
    """At least one series with a value that is a number (0 counts; NaN, e.g. 0/0, does not)."""
    return any(not math.isnan(float(r["value"][1])) for r in result)
