"""The cost of the impression record per list request, A/B in one server process (noise of a shared machine cancels).

Drives ``GET /v1/users/{id}/recommendations?n=10`` through the ASGI app (no
HTTP, so the figure is the app's own work) against an embedded Redis, 32
requests in flight, alternating rounds with the impression record on (the
``served`` control message sent fire-and-forget on the multiplexed read
connection, :mod:`serving.impressions`) and off (the rec_id made, nothing
written). Reports the median over rounds of the server process's CPU µs per
request and of the wall time per request, and Redis's own CPU per request
(``INFO cpu``), for each.

    .venv/bin/python -m benchmarks.impression_cost [--rounds 10] [--requests 4000]

:func:`bench_http` is the same A/B through real ``livereco serve`` processes over HTTP
(``benchmarks.serving --impressions``): two servers, ``LIVERECO_IMPRESSIONS=1`` and ``=0``,
saturated by ``wrk`` in interleaved runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import time
from typing import Any

import redis

from benchmarks.serving_harness import ROOT, run_wrk, server_process, session_cpu_s
from flows.embedded_redis import EmbeddedRedis, free_port
from online.contract import CandidateList, Settings, encode_candidates
from serving.app import LiverecoApp
from serving.impressions import new_rec_id

USERS = 10_000


def _seed(client: redis.Redis, settings: Settings) -> None:
    keys = settings.keys
    pipe = client.pipeline(transaction=False)
    for u in range(USERS):
        items = [f"sku-{(u * 31 + k) % 5000:05d}" for k in range(50)]
        pipe.set(keys.user_recs(f"u{u}"), encode_candidates(CandidateList(
            items, [1.0 / (k + 1) for k in range(50)], event_ts=time.time(), accepted_ms=int(time.time() * 1000))))
    pipe.zadd(keys.trending(), {f"sku-{k:05d}": float(k) for k in range(1000)})
    pipe.execute()


async def _get(app: LiverecoApp, user: int) -> None:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        return None

    path = f"/v1/users/u{user}/recommendations"
    await app({"type": "http", "method": "GET", "path": path, "raw_path": path.encode(), "query_string": b"n=10",
               "headers": []}, receive, send)


def _redis_cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def _round(app: LiverecoApp, requests: int, in_flight: int, start: int) -> None:
    users = iter(range(start, start + requests))

    async def worker() -> None:
        for user in users:
            await _get(app, user % USERS)

    await asyncio.gather(*(worker() for _ in range(in_flight)))


def bench_http(redis_url: str, namespace: str, args: argparse.Namespace, script: str) -> dict[str, dict[str, float]]:
    """Impressions on and off in two ``livereco serve`` processes (1 worker each), ``args.repeat`` interleaved wrk
    saturation runs of each: medians of req/s, p50/p99 ms, server CPU µs/req, Redis CPU µs/req, keyed by on/off."""
    client = redis.Redis.from_url(redis_url)
    runs: dict[str, list[dict[str, float]]] = {"on": [], "off": []}
    with contextlib.ExitStack() as stack:
        servers = {}
        for mode in ("on", "off"):
            port = free_port()
            env = {**os.environ, "REDIS_URL": redis_url, "LIVERECO_NAMESPACE": namespace, "LIVERECO_PORT": str(port),
                   "PYTHONPATH": str(ROOT), "LIVERECO_IMPRESSIONS": "1" if mode == "on" else "0"}
            servers[mode] = stack.enter_context(server_process(
                [sys.executable, "-m", "flows.cli", "serve", "--workers", "1"], env, port))
        for base, _ in servers.values():
            run_wrk(base, 2, args.connections, script)  # warm-up
        for r in range(args.repeat):
            for mode in (("on", "off") if r % 2 == 0 else ("off", "on")):
                base, session = servers[mode]
                cpu, redis_cpu = session_cpu_s(session), _redis_cpu(client)
                result = run_wrk(base, args.duration, args.connections, script)
                answered = result["achieved"] * args.duration
                result["cpu_us"] = (session_cpu_s(session) - cpu) / answered * 1e6
                result["redis_cpu_us"] = (_redis_cpu(client) - redis_cpu) / answered * 1e6
                runs[mode].append(result)
    client.close()
    return {mode: {key: statistics.median(r[key] for r in rows) for key in rows[0]} for mode, rows in runs.items()}


def http_table(figures: dict[str, dict[str, float]]) -> str:
    """The on/off rows and their ratio.

    >>> row = {"achieved": 100.0, "p50": 1.0, "p99": 2.0, "cpu_us": 50.0, "redis_cpu_us": 10.0}
    >>> print(http_table({"on": row, "off": row}).splitlines()[-1])
    on / off                       1.00     1.00     1.00               1.00              1.00
    """
    lines = [f"{'impressions':<24} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'server CPU µs/req':>18}"
             f" {'Redis CPU µs/req':>17}"]
    for mode, m in figures.items():
        lines.append(f"{mode + (' (LIVERECO_IMPRESSIONS=1)' if mode == 'on' else ''):<24} {m['achieved']:>10,.0f}"
                     f" {m['p50']:>8.2f} {m['p99']:>8.2f} {m['cpu_us']:>18.1f} {m['redis_cpu_us']:>17.1f}")
    on, off = figures["on"], figures["off"]
    lines.append(f"{'on / off':<24} {on['achieved'] / off['achieved']:>10.2f} {on['p50'] / off['p50']:>8.2f}"
                 f" {on['p99'] / off['p99']:>8.2f} {on['cpu_us'] / off['cpu_us']:>18.2f}"
                 f" {on['redis_cpu_us'] / max(off['redis_cpu_us'], 1e-9):>17.2f}")
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> None:
    with EmbeddedRedis() as server:
        settings = Settings.from_env({"REDIS_URL": server.url, "LIVERECO_NAMESPACE": "bench"})
        client = redis.Redis.from_url(server.url)
        _seed(client, settings)
        app = LiverecoApp(settings)
        record = app.impressions.record
        off = lambda *a: new_rec_id()  # noqa: E731  the rec_id made, nothing written
        await _round(app, 2000, args.in_flight, 0)  # warm up
        figures: dict[str, list[tuple[float, float, float]]] = {"on": [], "off": []}
        for r in range(args.rounds):
            for mode in (("on", "off") if r % 2 == 0 else ("off", "on")):
                app.impressions.record = record if mode == "on" else off  # type: ignore[method-assign]
                cpu, wall, redis_cpu = time.process_time(), time.perf_counter(), _redis_cpu(client)
                await _round(app, args.requests, args.in_flight, r * args.requests)
                await asyncio.sleep(0.05)  # the last replies of fire-and-forget writes
                n = args.requests
                figures[mode].append(((time.process_time() - cpu) / n * 1e6, (time.perf_counter() - wall) / n * 1e6,
                                      (_redis_cpu(client) - redis_cpu) / n * 1e6))
        entries = sum(client.xlen(stream) for stream in settings.keys.streams())
        await app._fast.aclose() if app._fast is not None else None
        print(f"GET /v1/users/{{id}}/recommendations?n=10 through the ASGI app, {args.in_flight} in flight,"
              f" medians of {args.rounds} rounds of {args.requests} requests each (A/B interleaved)")
        print(f"{'impressions':<12} {'server CPU µs/req':>18} {'wall µs/req':>12} {'Redis CPU µs/req':>17}")
        for mode, rows in figures.items():
            print(f"{mode:<12} {statistics.median(r[0] for r in rows):>18.1f} {statistics.median(r[1] for r in rows):>12.1f}"
                  f" {statistics.median(r[2] for r in rows):>17.1f}")
        print(f"impression records written: {entries:,} (expected {args.rounds * args.requests:,} + warm-up 2,000)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--in-flight", type=int, default=32)
    asyncio.run(main(parser.parse_args()))
