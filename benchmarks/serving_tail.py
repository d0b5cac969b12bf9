"""The serving tail, taken apart: p99 at a fixed offered rate beside what the server process saw meanwhile.

Seeds the serving benchmark's 10,000 users (:mod:`benchmarks.serving_harness`),
starts one or more servers with :mod:`benchmarks.tail_probe` inside (``livereco
serve --workers 1`` plus the probe) side by side, and runs the open-loop
generator (:mod:`benchmarks.loadgen`, its own process) against each in turn,
``--repeat`` rounds interleaved. Per server it prints medians over the rounds:
the generator's latency (from each request's scheduled time), the time inside
the app's ``respond`` and the hot path's Redis round trip, garbage collections
per generation (count and total pause per 10k requests: load does not move
these), event-loop stalls over 1 ms per 10k requests (and how many of them
were spent off the CPU, i.e. the process waited for a core, or overlapped a
collection), and the refreshes that run on the loop (per second, CPU each on a
quiet loop). With ``--saturation`` a ``wrk`` run per round and server follows
(req/s, to check a change costs no throughput).

Servers: ``--server LABEL[:K=V;K=V]`` (repeatable; ``LIVERECO_*`` settings for
that server), and ``--against REV``: commit ``REV``'s server, checked out and
compiled in a temporary worktree (:func:`benchmarks.build_ab.checkout`),
measured by this tree's probe. Default: this tree's server alone.

    .venv/bin/python -m benchmarks.serving_tail [--rate 5000] [--duration 5] [--repeat 3] [--against REV]
        [--server LABEL[:K=V;...]] [--pacing thread,timer] [--catalog 100000 --import-changes 10000]
        [--saturation] [--json out.json]

``--catalog ITEMS --import-changes N``: each server gets its own namespace
with the users and an ITEMS-item catalog, and halfway through each run N
items are rewritten at once (a bulk import the server's catalog refresh then
applies on its event loop).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import redis

from benchmarks.machine import machine_line
from benchmarks.serving import redis_cpu_s
from benchmarks.serving_filters import seed_catalog
from benchmarks.serving_harness import LUA, ROOT, USERS, run_loadgen, run_wrk, seed, session_cpu_s
from flows.catalog_store import CatalogStore
from flows.embedded_redis import EmbeddedRedis, free_port
from flows.readiness import wait_until_answering
from online.catalog.item import parse_item
from online.contract import RedisKeys

PROBE = ROOT / "benchmarks" / "tail_probe.py"


class ProbedServer:
    """One probed server process and its control pipe."""

    def __init__(self, label: str, tree: Path, env: dict[str, str]):
        self.label = label
        self.namespace = env["LIVERECO_NAMESPACE"]
        self.port = free_port()
        full = {**os.environ, **env, "LIVERECO_PORT": str(self.port), "PYTHONPATH": str(tree)}
        self.process = subprocess.Popen([sys.executable, str(PROBE)], env=full, cwd=tree, stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True, start_new_session=True)
        self.base = f"http://127.0.0.1:{self.port}"
        wait_until_answering(f"{self.base}/readyz", [self.process])  # type: ignore[list-item]  # any Popen

    def ask(self, command: str) -> Any:
        stdin, stdout = self.process.stdin, self.process.stdout
        assert stdin is not None and stdout is not None
        stdin.write(command + "\n")
        stdin.flush()
        return json.loads(stdout.readline())

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@contextlib.contextmanager
def servers(specs: list[tuple[str, Path, dict[str, str]]]) -> Iterator[list[ProbedServer]]:
    started: list[ProbedServer] = []
    try:
        for label, tree, env in specs:
            started.append(ProbedServer(label, tree, env))
        yield started
    finally:
        for server in started:
            server.stop()


def parse_server(text: str) -> tuple[str, dict[str, str]]:
    """``LABEL[:K=V;K=V]`` -> label, environment.

    >>> parse_server("frozen:LIVERECO_SERVING_GC=freeze;LIVERECO_IMPRESSIONS=0")
    ('frozen', {'LIVERECO_SERVING_GC': 'freeze', 'LIVERECO_IMPRESSIONS': '0'})
    """
    label, _, rest = text.partition(":")
    env = dict(pair.split("=", 1) for pair in rest.split(";") if pair)
    return label, env


def one_round(server: ProbedServer, client: redis.Redis, args: argparse.Namespace, script: str,
              pacing: str) -> dict[str, Any]:
    importer = None
    if args.import_changes:
        importer = threading.Timer(args.duration / 2, bulk_import, (client, server.namespace, args.import_changes))
        importer.start()
    server.ask("reset")
    cpu, redis_cpu = session_cpu_s(server.process.pid), redis_cpu_s(client)
    load = run_loadgen(server.base, args.rate, args.duration, pacing)
    figures_cpu = {"loadgen_cpu_us": load["gen_cpu_us"],
                   "redis_cpu_us": (redis_cpu_s(client) - redis_cpu) / load["answered"] * 1e6 if load["answered"] else 0}
    if importer is not None:
        importer.join()
    figures = server.ask(f"dump {int(load['answered'])}")
    figures["cpu_us"] = (session_cpu_s(server.process.pid) - cpu) / load["answered"] * 1e6 if load["answered"] else 0
    figures["load"] = load
    figures.update(figures_cpu)
    if args.saturation:
        figures["saturation"] = run_wrk(server.base, args.duration, 32, script)
    return figures


def bulk_import(client: redis.Redis, namespace: str, changes: int) -> None:
    """``changes`` catalog items rewritten in one go (prices moved), as ``livereco catalog`` or a bulk PUT would."""
    store = CatalogStore(client, RedisKeys(namespace, 4))
    shift = float(store.version() % 7)
    store.put_many([parse_item({"item_id": f"sku-{k:05d}", "categories": [f"c{k % 10}/s{k % 7}"], "brand": f"b{k % 20}",
                                "price": 1.0 + (k * 37 + shift) % 500, "in_stock": k % 20 != 3,
                                "attributes": {"color": ("red", "blue", "green")[k % 3]}, "created_at": 1.7e9 + k})
                    for k in range(changes)])


def _get(row: dict[str, Any], path: str) -> float:
    value: Any = row
    for part in path.split("."):
        value = value.get(part, {}) if isinstance(value, dict) else {}
    return float(value) if isinstance(value, int | float) else 0.0


COLUMNS = [
    ("p50 ms", "load.p50", ".2f"), ("p99 ms", "load.p99", ".2f"), ("max ms", "load.max", ".1f"),
    ("sent→answer p99", "load.service_p99", ".2f"), ("gen lag p99", "load.send_lag_p99", ".2f"), ("respond p99", "respond_ms.p99", ".2f"),
    ("Redis rt p99", "redis_ms.p99", ".2f"), ("CPU µs/req", "cpu_us", ".0f"), ("loop busy", "cpu_share", ".2f"),
    ("gc0 /10k", "gc.0.per_10k", ".1f"), ("gc1 /10k", "gc.1.per_10k", ".1f"), ("gc2 /10k", "gc.2.per_10k", ".2f"),
    ("gc ms /10k", "gc_ms_per_10k", ".2f"), ("gc max ms", "gc_max_ms", ".2f"),
    ("loadgen CPU µs/req", "loadgen_cpu_us", ".0f"), ("Redis CPU µs/req", "redis_cpu_us", ".0f"),
    ("stalls>1ms /10k", "stalls.per_10k", ".1f"), ("stall max ms", "stalls.max_ms", ".1f"),
    ("off-CPU /10k", "stalls.off_cpu_per_10k", ".1f"), ("off-CPU ms", "stalls.off_cpu_ms", ".1f"),
    ("on-CPU /10k", "stalls.on_cpu_per_10k", ".1f"), ("on-CPU max ms", "stalls.on_cpu_max_ms", ".1f"),
    ("answers per on-CPU stall", "stalls.on_cpu_answers_p50", ".0f"),
    ("with gc /10k", "stalls.with_gc_per_10k", ".1f"),
    ("sat. req/s", "saturation.achieved", ",.0f"),
]


def derived(row: dict[str, Any]) -> dict[str, Any]:
    gens = row["gc"].values()
    row["gc_ms_per_10k"] = sum(g["total_ms_per_10k"] for g in gens)
    row["gc_max_ms"] = max(g["max_ms"] for g in gens)
    return row


def table(results: dict[str, list[dict[str, Any]]], out: IO[str]) -> None:
    names = [name for name, _, _ in COLUMNS]
    print("| server | " + " | ".join(names) + " |", file=out)
    print("|---" * (len(names) + 1) + "|", file=out)
    for label, rounds in results.items():
        cells = []
        for _, path, fmt in COLUMNS:
            values = [_get(r, path) for r in rounds]
            cells.append(format(statistics.median(values), fmt))
        print(f"| {label} | " + " | ".join(cells) + " |", file=out)
    for label, rounds in results.items():
        refreshes: dict[str, list[dict[str, float]]] = {}
        for r in rounds:
            for name, figures in r["refreshes"].items():
                refreshes.setdefault(name, []).append(figures)
        described = ", ".join(f"{name} {statistics.median(f['per_s'] for f in runs):.1f}/s, "
                              f"{runs[0]['cpu_ms_each']:.2f} ms CPU each (quiet loop), wall p50 "
                              f"{statistics.median(f['wall_p50_ms'] for f in runs):.2f} ms"
                              for name, runs in refreshes.items())
        print(f"  {label} refreshes on the loop: {described or 'none'}", file=out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=5000.0)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--server", action="append", default=[], help="LABEL[:K=V;K=V] (repeatable)")
    parser.add_argument("--against", metavar="REV", help="also commit REV's server, compiled in a temporary worktree")
    parser.add_argument("--pacing", type=lambda text: text.split(","), default=["thread"],
                        help="the generator's pacing(s), comma-separated: thread (default), timer (the previous, "
                             "spinning one); each server is measured with each")
    parser.add_argument("--catalog", type=int, default=0, metavar="ITEMS",
                        help="give each server its own catalog of ITEMS items (benchmarks.serving_filters.seed_catalog)")
    parser.add_argument("--import-changes", type=int, default=0, metavar="N",
                        help="with --catalog: halfway through each run, write N item changes at once (a bulk import)")
    parser.add_argument("--saturation", action="store_true", help="a wrk run per round and server too")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    namespace = "bench"
    print(machine_line())
    with contextlib.ExitStack() as stack:
        specs: list[tuple[str, Path, dict[str, str]]] = []
        if args.against:
            from benchmarks.build_ab import checkout

            specs.append((f"at {args.against}", stack.enter_context(checkout(args.against)), {}))
        for text in args.server or ([] if args.against else ["this tree"]):
            label, env = parse_server(text)
            specs.append((label, ROOT, env))
        if args.against and not args.server:
            specs.append(("this tree", ROOT, {}))
        redis_server = stack.enter_context(EmbeddedRedis())
        if not args.catalog:
            seed(redis_server.url, namespace)
        script = stack.enter_context(tempfile.NamedTemporaryFile("w", suffix=".lua"))
        script.write(LUA % (USERS - 1))
        script.flush()
        for i, (label, tree, env) in enumerate(specs):
            own = namespace
            if args.catalog:  # each server its own catalog: an import reaches only the server under load
                own = f"{namespace}{i}"
                seed(redis_server.url, own)
                seed_catalog(redis_server.url, own, args.catalog)
            # no flow runs here: catalog changes stay unread, which /readyz would call a stall
            specs[i] = (label, tree, {"REDIS_URL": redis_server.url, "LIVERECO_NAMESPACE": own,
                                      "LIVERECO_FLOW_STALE_S": "3600", **env})
        print("load average at start: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()), flush=True)
        results: dict[str, list[dict[str, Any]]] = {}
        client = stack.enter_context(redis.Redis.from_url(redis_server.url))
        started = stack.enter_context(servers(specs))
        for server in started:
            run_wrk(server.base, 2, 32, script.name)  # warm-up: connections, caches
            print(f"{server.label}: refresh CPU on a quiet loop (ms each): {server.ask('calibrate')}", flush=True)
        for round_ in range(args.repeat):
            for server, pacing in ((server, pacing) for server in started for pacing in args.pacing):
                label = server.label if len(args.pacing) == 1 else f"{server.label}, {pacing} pacing"
                row = derived(one_round(server, client, args, script.name, pacing))
                results.setdefault(label, []).append(row)
                print(f"round {round_ + 1} {label}: p99 {row['load']['p99']:.2f} ms, "
                      f"gc {row['gc_ms_per_10k']:.2f} ms/10k, stalls {row['stalls']['per_10k']:.1f}/10k "
                      f"({row['stalls']['off_cpu_per_10k']:.1f} off-CPU)", flush=True)
        print("load average at end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
        print(f"{args.rate:,.0f} req/s offered, medians of {args.repeat} interleaved rounds of {args.duration:g} s:")
        table(results, sys.stdout)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
