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
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

import redis

from flows.embedded_redis import EmbeddedRedis
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
