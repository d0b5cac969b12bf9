"""The app's CPU per request without HTTP, one request at a time against a few in flight: what a loop turn costs.

Seeds the serving benchmark's 10,000 users in an embedded Redis, starts
:class:`serving.app.LiverecoApp` in this process on uvloop, warms the
served-list cache with every user, then answers ``--requests`` list requests
through :meth:`~serving.app.LiverecoApp.respond`, ``--in-flight`` at a time
(``asyncio.gather``), and prints the process's user and system CPU per request
and its context switches per request (voluntary: the loop slept, waiting for
Redis). One at a time is the 5,000 req/s case on a server that keeps up: every
request has its own loop turns, its own Redis write and read, its own sleep
and wake-up; 32 in flight is what saturation looks like.

    .venv/bin/python -m benchmarks.respond_alone [--requests 5000] [--in-flight 1,4,32] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import sys
from typing import Any

import uvloop

from benchmarks.machine import machine_line
from benchmarks.serving_harness import USERS, seed
from flows.embedded_redis import EmbeddedRedis
from online.contract import Settings
from serving.app import LiverecoApp


def _scope(user: int) -> dict[str, Any]:
    return {"type": "http", "method": "GET", "raw_path": b"/v1/users/u%d/recommendations" % user,
            "query_string": b"n=10", "headers": [(b"host", b"bench")], "client": ("127.0.0.1", 1)}


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def measure(app: LiverecoApp, requests: int, in_flight: int) -> dict[str, float]:
    """CPU (user, system) and context switches per request, ``in_flight`` requests answered together."""
    before = resource.getrusage(resource.RUSAGE_SELF)
    for start in range(0, requests, in_flight):
        answers = await asyncio.gather(*(app.respond(_scope((i * 7919) % USERS), _receive)
                                         for i in range(start, min(requests, start + in_flight))))
        assert all(answer[0] == 200 for answer in answers)
    after = resource.getrusage(resource.RUSAGE_SELF)
    return {"user_us": (after.ru_utime - before.ru_utime) / requests * 1e6,
            "sys_us": (after.ru_stime - before.ru_stime) / requests * 1e6,
            "voluntary": (after.ru_nvcsw - before.ru_nvcsw) / requests,
            "involuntary": (after.ru_nivcsw - before.ru_nivcsw) / requests}


async def run(url: str, args: argparse.Namespace) -> dict[int, list[dict[str, float]]]:
    app = LiverecoApp(Settings.from_env({}, redis_url=url, namespace="bench"))
    await app.startup()
    try:
        for user in range(USERS):  # every user's answer in the served-list cache, as in the serving benchmark
            await app.respond(_scope(user), _receive)
        results: dict[int, list[dict[str, float]]] = {n: [] for n in args.in_flight}
        for _ in range(args.rounds):
            for n in args.in_flight:
                results[n].append(await measure(app, args.requests, n))
        return results
    finally:
        await app.shutdown()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--in-flight", type=lambda text: [int(n) for n in text.split(",")], default=[1, 4, 32])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (the table shows medians)")
    args = parser.parse_args()
    print(machine_line())
    with EmbeddedRedis() as server:
        seed(server.url, "bench")
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            results = runner.run(run(server.url, args))
    print(f"LiverecoApp.respond, GET /v1/users/{{id}}/recommendations?n=10, warm cache, {args.requests} requests, "
          f"medians of {args.rounds} rounds:")
    print("| in flight | user CPU µs/req | system CPU µs/req | voluntary switches/req | involuntary/req |")
    print("|---|---|---|---|---|")
    for n, rounds in results.items():
        m = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
        print(f"| {n} | {m['user_us']:.1f} | {m['sys_us']:.1f} | {m['voluntary']:.2f} | {m['involuntary']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
