"""What the serving benchmarks share: the seeded users, wrk and the load generator, a server process and its CPU."""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis

from flows.readiness import wait_until_answering
from online.contract import CandidateList, RedisKeys, encode_candidates

ROOT = Path(__file__).resolve().parents[1]
USERS = 10_000
PATH = "/v1/users/u{user}/recommendations?n=10"
LUA = """
math.randomseed(7)
request = function()
  return wrk.format("GET", "/v1/users/u" .. math.random(0, %d) .. "/recommendations?n=10")
end
"""
P99_TARGET_MS = 2.0
P99_TARGET_RATE = 5000.0
SATURATION_TARGET_PER_PROCESS = 10_000.0


def seed(url: str, namespace: str) -> None:
    client = redis.Redis.from_url(url)
    keys = RedisKeys(namespace, 4)
    pipe = client.pipeline(transaction=False)
    for u in range(USERS):
        items = [f"sku-{(u * 31 + k) % 5000:05d}" for k in range(50)]
        pipe.set(keys.user_recs(f"u{u}"), encode_candidates(
            CandidateList(items, [1.0 / (k + 1) for k in range(50)], event_ts=time.time(),
                          accepted_ms=int(time.time() * 1000))))
    pipe.zadd(keys.trending(), {f"sku-{k:05d}": float(k) for k in range(1000)})
    pipe.execute()


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_wrk(url: str, duration: float, connections: int, script: str) -> dict[str, float]:
    """One closed-loop ``wrk`` run: achieved req/s, p50/p99/max latency in ms."""
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{duration:g}s", "--latency", "-s", script, url],
                         capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk saw errors:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    latency_max = _ms(*re.search(r"Latency\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)", out).groups())  # type: ignore[union-attr]

    def pct(p: str) -> float:
        return _ms(*re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out).groups())  # type: ignore[union-attr]

    return {"offered": 0.0, "achieved": rps, "p50": pct("50"), "p99": pct("99"), "max": latency_max}


def run_loadgen(url: str, rate: float, duration: float, pacing: str = "thread") -> dict[str, float]:
    """One open-loop run of :mod:`benchmarks.loadgen` in its own process (``gen_cpu_us``: its CPU per answer)."""
    cpu = children_cpu_s()
    out = subprocess.run([sys.executable, "-m", "benchmarks.loadgen", "--url", url, "--path", PATH,
                          "--users", str(USERS), "--rate", f"{rate:g}", "--duration", f"{duration:g}",
                          "--pacing", pacing],
                         stdout=subprocess.PIPE, text=True, check=True, cwd=ROOT).stdout
    result: dict[str, Any] = json.loads(out)
    if result["errors"] or set(result["statuses"]) - {"200"}:
        raise RuntimeError(f"loadgen saw errors: {out}")
    gen_cpu = children_cpu_s() - cpu
    latency = result["latency_ms"]
    return {"offered": rate, "achieved": result["achieved_rps"], "p50": latency["p50"], "p99": latency["p99"],
            "max": latency["max"], "answered": result["answered"], "unanswered": result["unanswered"], "send_lag_p99": result["send_lag_ms"]["p99"],
            "service_p99": result["service_ms"]["p99"], "send_lag_p50": result["send_lag_ms"]["p50"],
            "gen_cpu_us": gen_cpu / result["answered"] * 1e6 if result["answered"] else 0.0}


def children_cpu_s() -> float:
    """CPU seconds (user + system) of this process's waited-for children so far: the load generator's, run by run."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def session_cpu_s(session: int) -> float:
    """CPU seconds (user + system) used so far by every live process of a session: the server and its workers."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rfind(")") + 2:].split()
        if int(fields[3]) == session:
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


@contextmanager
def server_process(command: Sequence[str], env: dict[str, str], port: int) -> Iterator[tuple[str, int]]:
    """Start the server in its own session (so its worker processes stop with it); yield its base URL and session."""
    server = subprocess.Popen(list(command), env=env, cwd=ROOT, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_answering(f"{base}/readyz", [server])
        yield base, server.pid
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


