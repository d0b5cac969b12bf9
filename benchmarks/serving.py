"""Serving benchmark: GET /v1/users/{id}/recommendations at fixed offered rates and at saturation.

Starts an embedded Redis, stores 50-candidate lists for 10,000 users, starts
the server as ``livereco serve --workers N`` (N = 1 and 2 server processes)
and drives it from separate processes, random users per request:

* fixed offered rates (default 1000, 2000, 5000 req/s): the bundled open-loop
  generator :mod:`benchmarks.loadgen` sends on a fixed schedule and measures
  each latency from the request's *scheduled* time, so a stalled server
  cannot hide its stalls (wrk2's method; Debian has no ``wrk2``);
* saturation: ``wrk`` (Debian package ``wrk``), closed-loop, 1 thread,
  ``--connections`` keep-alive connections.

Every cell is the median over ``--repeat`` runs of ``--duration`` seconds
(runs are interleaved: each rate on each server, saturation on each, again).
``--http livereco,uvicorn:0`` runs livereco's own HTTP protocol (with the
served-list cache) and the uvicorn fallback without the cache (the server as
it was before both; ``LIVERECO_HTTP_SERVER[:LIVERECO_SERVED_CACHE_LISTS]``)
side by side, for a before/after in one run.
"server CPU µs/req" is the CPU time (user + system, all server processes)
per answered request: on a shared machine it moves less than req/s does,
and 1e6 / it is what one fully used core could serve. "Redis CPU µs/req" is
Redis's own (``INFO cpu``, its timers included) per answered request, for
sizing Redis beside the servers. "gen lag p99" is how
late the generator itself sent (its pacing thread wakes ~0.1 ms late, plus waiting for a
CPU on a busy machine); it is inside the latency figures, which are
therefore an upper bound on the server's; "gen CPU µs/req" is the
generator's own CPU per answer (on two cores it competes with the server and
Redis). "sent→answer p99" leaves it out:
from the moment the request was written to its answer (still including the
generator's own wait to read the answer).
``--compare-stacks`` adds the saturation figure of uvicorn's pure-Python
stack (h11 + asyncio) on the same app against the one livereco ships
(httptools + uvloop), the number behind the README's choice.

    .venv/bin/python -m benchmarks.serving [--duration 5] [--repeat 3] [--rates 1000,2000,5000]
        [--workers 1,2] [--http livereco,uvicorn] [--connections 32] [--compare-stacks] [--json results.json]
    .venv/bin/python -m benchmarks.serving --filters [--items 100000] [--duration 5] [--http livereco:0,livereco]  # filters and rules
    .venv/bin/python -m benchmarks.serving --impressions [--duration 5] [--repeat 5]   # the impression record's cost
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from benchmarks.machine import machine_line
from benchmarks.serving_harness import (
    LUA,
    P99_TARGET_MS,
    P99_TARGET_RATE,
    PATH,
    ROOT,
    SATURATION_TARGET_PER_PROCESS,
    USERS,
    run_loadgen,
    run_wrk,
    seed,
    server_process,
    session_cpu_s,
)
from flows.embedded_redis import EmbeddedRedis, free_port


def bench_servers(redis_url: str, namespace: str, servers: list[tuple[str, int]], args: argparse.Namespace,
                  script: str) -> dict[str, dict[str, list[dict[str, float]]]]:
    """All runs against ``livereco serve --workers N`` per ``(LIVERECO_HTTP_SERVER, N)``, the servers running side by
    side and their runs interleaved (a shared machine's slow minutes hit each alike): server -> rate -> runs."""
    runs: dict[str, dict[str, list[dict[str, float]]]] = {}
    with contextlib.ExitStack() as stack:
        started = []
        for http, workers in servers:
            port = free_port()
            name, _, cache = http.partition(":")
            env = {**os.environ, "REDIS_URL": redis_url, "LIVERECO_NAMESPACE": namespace, "LIVERECO_PORT": str(port),
                   "LIVERECO_HTTP_SERVER": name, "PYTHONPATH": str(ROOT)}
            if cache:
                env["LIVERECO_SERVED_CACHE_LISTS"] = cache
            command = [sys.executable, "-m", "flows.cli", "serve", "--workers", str(workers)]
            base, session = stack.enter_context(server_process(command, env, port))
            run_wrk(base, 2, args.connections, script)  # warm-up: connections, caches, every worker
            started.append((server_label(http, workers), base, session))

        client = stack.enter_context(redis.Redis.from_url(redis_url))

        def measured(label: str, rate: str, session: int, run: Callable[[], dict[str, float]]) -> None:
            cpu, redis_cpu = session_cpu_s(session), redis_cpu_s(client)
            result = run()
            answered = result.get("answered", result["achieved"] * args.duration)
            result["cpu_us"] = (session_cpu_s(session) - cpu) / answered * 1e6 if answered else 0.0
            result["redis_cpu_us"] = (redis_cpu_s(client) - redis_cpu) / answered * 1e6 if answered else 0.0
            runs.setdefault(label, {}).setdefault(rate, []).append(result)

        for _ in range(args.repeat):
            for rate in args.rates:
                for label, base, session in started:
                    measured(label, f"{rate:g}", session, lambda base=base, rate=rate: run_loadgen(base, rate, args.duration))
            for label, base, session in started:
                measured(label, "saturation", session, lambda base=base: run_wrk(base, args.duration, args.connections,
                                                                                script))
    return runs


def redis_cpu_s(client: redis.Redis) -> float:
    """Redis's own CPU seconds so far (``INFO cpu``: user + system, its timers included)."""
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def server_label(http: str, workers: int) -> str:
    return f"{http} x{workers}"


def bench_stack(redis_url: str, namespace: str, http: str, loop: str, args: argparse.Namespace,
                script: str) -> list[dict[str, float]]:
    """Saturation of one uvicorn HTTP stack on the same app, 1 process."""
    port = free_port()
    env = {**os.environ, "REDIS_URL": redis_url, "LIVERECO_NAMESPACE": namespace, "LIVERECO_PORT": str(port),
           "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "uvicorn", "serving.app:app_from_env", "--factory", "--port", str(port),
               "--http", http, "--loop", loop, "--no-access-log", "--log-level", "warning"]
    with server_process(command, env, port) as (base, _):
        run_wrk(base, 2, args.connections, script)
        return [run_wrk(base, args.duration, args.connections, script) for _ in range(args.repeat)]


def median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(r[key] for r in runs) for key in runs[0]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per cell (the table shows medians)")
    parser.add_argument("--rates", type=lambda s: [float(r) for r in s.split(",") if r], default=[1000.0, 2000.0, 5000.0],
                        help="offered rates in req/s, comma-separated")
    parser.add_argument("--workers", type=lambda s: [int(w) for w in s.split(",") if w], default=[1, 2],
                        help="server process counts, comma-separated")
    parser.add_argument("--http", type=lambda s: [h for h in s.split(",") if h], default=["livereco"],
                        help="servers to run side by side, comma-separated: LIVERECO_HTTP_SERVER[:LIVERECO_SERVED_CACHE_LISTS]"
                             " (livereco,uvicorn:0: livereco's protocol and cache against the previous server, "
                             "runs interleaved)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections at saturation")
    parser.add_argument("--compare-stacks", action="store_true",
                        help="also saturate uvicorn's h11+asyncio stack vs httptools+uvloop (1 process)")
    parser.add_argument("--json", type=Path, help="also write every run's figures here")
    parser.add_argument("--filters", action="store_true",
                        help="instead: what filters and rules cost per request with a catalog (benchmarks.serving_filters)")
    parser.add_argument("--items", type=int, default=100_000, help="catalog items for --filters")
    parser.add_argument("--impressions", action="store_true",
                        help="instead: the impression record's cost, two servers (LIVERECO_IMPRESSIONS=1 and 0) "
                             "saturated in interleaved runs (benchmarks.impression_cost.bench_http)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("benchmarks.serving needs wrk: apt-get install wrk", file=sys.stderr)
        return 2
    namespace = "bench"
    if args.filters:
        from benchmarks.serving_filters import bench_filters, table

        with EmbeddedRedis() as server:
            seed(server.url, namespace)
            print(machine_line())
            print("load average at start: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
            rows = bench_filters(server.url, namespace, args)
            print(f"GET /v1/users/{{id}}/recommendations?n=10..., {USERS} users, {args.items:,}-item catalog, "
                  f"wrk 1 thread {args.connections} connections, one run of {args.duration:g} s per case, 1 process:")
            print(table(rows))
            print("load average at end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
        if args.json:
            args.json.write_text(json.dumps(rows, indent=1))
        return 0
    if args.impressions:
        from benchmarks.impression_cost import bench_http, http_table

        with EmbeddedRedis() as server, tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
            script.write(LUA % (USERS - 1))
            script.flush()
            seed(server.url, namespace)
            print(machine_line())
            print("load average at start: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
            figures = bench_http(server.url, namespace, args, script.name)
            print(f"GET {PATH.replace('u{user}', '{id}')}, {USERS} users; two livereco serve processes (1 worker each),"
                  f" impressions on and off; wrk 1 thread {args.connections} connections, medians of {args.repeat}"
                  f" interleaved runs of {args.duration:g} s each:")
            print(http_table(figures))
            print("load average at end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
        if args.json:
            args.json.write_text(json.dumps(figures, indent=1))
        return 0
    results: dict[str, Any] = {"machine": machine_line(), "duration_s": args.duration, "repeat": args.repeat,
                               "loadavg_start": os.getloadavg()}
    with EmbeddedRedis() as server, tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(LUA % (USERS - 1))
        script.flush()
        seed(server.url, namespace)
        print(machine_line())
        print("load average (1/5/15 min) at start: {:.2f} {:.2f} {:.2f} (other work on a shared machine shows here)".format(
            *os.getloadavg()))
        print(f"GET {PATH.replace('u{user}', '{id}')}, {USERS} users with 50 candidates; medians of {args.repeat} runs "
              f"of {args.duration:g} s. Fixed rates: open-loop benchmarks.loadgen, latency from the scheduled send; "
              f"saturation: wrk 1 thread, {args.connections} connections. Server: livereco serve --workers N.",
              flush=True)
        header = (f"{'server':>14} {'offered req/s':>18} {'achieved req/s':>15} {'p50 ms':>8} {'p99 ms':>8} "
                  f"{'max ms':>8} {'server CPU µs/req':>17} {'Redis CPU µs/req':>16} {'gen CPU µs/req':>14} "
                  f"{'gen lag p99 ms':>14} "
                  f"{'sent→answer p99 ms':>18}")
        servers = [(http, workers) for workers in args.workers for http in args.http]
        runs_by_server = bench_servers(server.url, namespace, servers, args, script.name)
        print(header)
        print("-" * len(header), flush=True)
        for http, workers in servers:
            label = server_label(http, workers)
            runs = runs_by_server[label]
            results[label] = runs
            for rate, cell in runs.items():
                m = median_of(cell)
                offered = f"{float(rate):,.0f}" if rate != "saturation" else f"saturation ({args.connections}c)"
                behind = [r["unanswered"] for r in cell if r.get("unanswered")]
                note = (f"  overloaded in {len(behind)}/{len(cell)} runs: up to {max(behind):,} requests unanswered "
                        f"5 s after the schedule ended (counted at their wait so far)" if behind else "")
                lag = f"{m['send_lag_p99']:>14.2f}" if "send_lag_p99" in m else f"{'(wrk)':>14}"
                gen_cpu = f"{m['gen_cpu_us']:>14.0f}" if "gen_cpu_us" in m else f"{'(wrk)':>14}"
                service = f"{m['service_p99']:>18.2f}" if "service_p99" in m else f"{'':>18}"
                print(f"{label:>14} {offered:>18} {m['achieved']:>15,.0f} {m['p50']:>8.2f} {m['p99']:>8.2f} "
                      f"{m['max']:>8.2f} {m['cpu_us']:>17.0f} {m['redis_cpu_us']:>16.1f} {gen_cpu} {lag} {service}{note}",
                      flush=True)
        print("load average (1/5/15 min) at end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
        print(f"targets: p99 < {P99_TARGET_MS:g} ms at {P99_TARGET_RATE:,.0f} req/s offered; >= "
              f"{SATURATION_TARGET_PER_PROCESS:,.0f} req/s per process at saturation")
        for http, workers in servers:
            label = server_label(http, workers)
            runs = runs_by_server[label]
            verdicts = []
            if f"{P99_TARGET_RATE:g}" in runs:
                p99 = median_of(runs[f"{P99_TARGET_RATE:g}"])["p99"]
                verdicts.append(f"p99 at {P99_TARGET_RATE:,.0f} req/s {p99:.2f} ms "
                                f"({'met' if p99 < P99_TARGET_MS else 'MISSED'})")
            per_process = median_of(runs["saturation"])["achieved"] / workers
            verdicts.append(f"saturation {per_process:,.0f} req/s per process "
                            f"({'met' if per_process >= SATURATION_TARGET_PER_PROCESS else 'MISSED'})")
            print(f"  {label}: " + "; ".join(verdicts))
        if len(args.http) > 1:
            first = args.http[0]
            for http, workers in servers:
                if http == first:
                    continue
                ours = median_of(runs_by_server[server_label(first, workers)]["saturation"])
                other = median_of(runs_by_server[server_label(http, workers)]["saturation"])
                print(f"  {first} / {http}, {workers} process(es), saturation: {ours['achieved'] / other['achieved']:.2f}x"
                      f" the req/s, {ours['cpu_us'] / other['cpu_us']:.2f}x the server CPU per request")
        if args.compare_stacks:
            print(f"HTTP stacks, 1 process (uvicorn directly), saturation, wrk {args.connections} connections:")
            stacks = {}
            for name, http, loop in (("uvicorn+httptools+uvloop (ours)", "httptools", "uvloop"),
                                     ("uvicorn+h11+asyncio", "h11", "asyncio")):
                m = median_of(bench_stack(server.url, namespace, http, loop, args, script.name))
                stacks[name] = m
                print(f"  {name:<32} {m['achieved']:>9,.0f} req/s  p50 {m['p50']:.2f} ms  p99 {m['p99']:.2f} ms",
                      flush=True)
            ours, other = (m["achieved"] for m in stacks.values())
            print(f"  ratio: {ours / other:.2f}x the requests/s of the pure-Python stack")
            results["stacks"] = stacks
    results["loadavg_end"] = os.getloadavg()
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
