"""Serving benchmark: requests/s and latency of GET /v1/users/{id}/recommendations at saturation.

Starts an embedded Redis, stores 50-candidate lists for 10,000 users, starts
the server in its own process and drives it with ``wrk`` (Debian package
``wrk``) from another process, random users per request. Compares the HTTP
stack livereco ships (uvicorn + httptools + uvloop) with uvicorn's
pure-Python stack (h11 + asyncio) on the same app, which is the number behind
the README's choice.

    .venv/bin/python -m benchmarks.serving [--duration 10] [--connections 32] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

from benchmarks.machine import machine_line
from flows.embedded_redis import EmbeddedRedis, free_port
from flows.readiness import wait_until_answering
from online.contract import CandidateList, RedisKeys, encode_candidates

ROOT = Path(__file__).resolve().parents[1]
USERS = 10_000
LUA = """
math.randomseed(7)
request = function()
  return wrk.format("GET", "/v1/users/u" .. math.random(0, %d) .. "/recommendations?n=10")
end
"""


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


def run_wrk(url: str, duration: int, connections: int, script: str) -> tuple[float, float, float]:
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", script, url],
                         capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def pct(p: str) -> float:
        value, unit = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    if "Non-2xx" in out:
        raise RuntimeError(f"wrk saw errors:\n{out}")
    return rps, pct("50"), pct("99")


def bench_stack(redis_url: str, namespace: str, http: str, loop: str, args: argparse.Namespace,
                script: str) -> list[tuple[float, float, float]]:
    port = free_port()
    env = {**os.environ, "REDIS_URL": redis_url, "LIVERECO_NAMESPACE": namespace, "LIVERECO_PORT": str(port),
           "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "serving.app:app_from_env", "--factory", "--port", str(port),
         "--http", http, "--loop", loop, "--no-access-log", "--log-level", "warning", "--workers", str(args.workers)],
        env=env, cwd=ROOT)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_answering(f"{base}/readyz", [server])
        run_wrk(base, 2, args.connections, script)  # warm-up
        return [run_wrk(base, args.duration, args.connections, script) for _ in range(args.repeat)]
    finally:
        server.terminate()
        server.wait(timeout=10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1, help="server processes")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("benchmarks.serving needs wrk: apt-get install wrk", file=sys.stderr)
        return 2
    namespace = "bench"
    with EmbeddedRedis() as server, tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(LUA % (USERS - 1))
        script.flush()
        seed(server.url, namespace)
        print(machine_line())
        print(f"GET /v1/users/{{id}}/recommendations?n=10, {USERS} users with 50 candidates, wrk 1 thread, "
              f"{args.connections} connections, {args.duration} s x {args.repeat}, {args.workers} server process(es)")
        print(f"{'stack':<32} {'req/s (median)':>15} {'p50 ms':>8} {'p99 ms':>8}")
        results = {}
        for name, http, loop in (("uvicorn+httptools+uvloop (ours)", "httptools", "uvloop"),
                                 ("uvicorn+h11+asyncio", "h11", "asyncio")):
            runs = bench_stack(server.url, namespace, http, loop, args, script.name)
            rps = statistics.median(r[0] for r in runs)
            results[name] = rps
            print(f"{name:<32} {rps:>15,.0f} {statistics.median(r[1] for r in runs):>8.2f} "
                  f"{statistics.median(r[2] for r in runs):>8.2f}")
        ours, other = results.values()
        print(f"ratio: {ours / other:.2f}x the requests/s of the pure-Python stack")
    return 0


if __name__ == "__main__":
    sys.exit(main())
