"""Run livereco's real processes (flow, server) for end-to-end and monitoring tests."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from benchmarks.cluster_check import flow_env
from flows.embedded_redis import free_port
from flows.readiness import wait_until_answering

ROOT = Path(__file__).resolve().parents[1]


def process_env(redis_url: str, namespace: str, port: int, flow_metrics_port: int, partitions: int = 2,
                **extra: str) -> dict[str, str]:
    """The flow's environment (:func:`benchmarks.cluster_check.flow_env`) plus the server's port and ``extra``."""
    return {**flow_env(redis_url, namespace, flow_metrics_port, partitions), "LIVERECO_PORT": str(port), **extra}


@contextmanager
def flow_and_server(redis_url: str, namespace: str) -> Iterator[tuple[str, str]]:
    """Real ``livereco flow`` and ``livereco serve`` processes; yields the server's base URL and the flow's metrics URL."""
    port, metrics_port = free_port(), free_port()
    env = process_env(redis_url, namespace, port, metrics_port)
    base, flow_metrics = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{metrics_port}/metrics"
    with livereco_process(env, "flow", ready_url=flow_metrics), \
         livereco_process(env, "serve", ready_url=f"{base}/readyz"):
        yield base, flow_metrics


@contextmanager
def livereco_process(env: dict[str, str], *argv: str, ready_url: str) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m flows.cli ARGV`` until the block ends; its output goes to the test's output on failure."""
    process = subprocess.Popen([sys.executable, "-m", "flows.cli", *argv], env=env, cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_until_answering(ready_url, [process])
        yield process
    finally:
        process.terminate()
        try:
            out, _ = process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            out, _ = process.communicate()
        sys.stdout.write(out.decode(errors="replace")[-4000:])


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def post(url: str, body: bytes) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, headers={"content-type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def metric_value(text: str, name: str, labels: str = "") -> float:
    """The value of one sample in Prometheus text format (0 when absent)."""
    prefix = f"{name}{{{labels}}}" if labels else name
    for line in text.splitlines():
        if line.startswith(prefix + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0
