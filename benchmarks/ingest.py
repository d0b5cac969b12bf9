"""Ingestion benchmark: Redis streams → dataflow → candidate lists in Redis.

1. Throughput: N synthetic-shop events are written to the streams first, then
   the real dataflow (one process, one worker) drains them; events/s is N over
   the drain time, every event producing its user's list write.
2. Freshness: the flow runs live in its own process while events are appended
   at a fixed rate; the flow's own freshness histogram (acceptance → list
   written) gives p50/p99 as bucket upper bounds.

    .venv/bin/python -m benchmarks.ingest [--events 100000] [--rate 1000] [--seconds 15] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import redis
from bytewax.testing import run_main

from benchmarks.machine import machine_line
from flows.dataflow import build_flow
from flows.embedded_redis import EmbeddedRedis, free_port
from flows.event_writer import EventWriter
from flows.readiness import wait_until_answering
from flows.synthetic_shop import Catalog, ShopSimulator
from online.contract import Event, Settings, parse_event

ROOT = Path(__file__).resolve().parents[1]


def shop_events(n: int, seed: int = 7) -> list[Event]:
    sim = ShopSimulator(Catalog.generate(seed=seed), n_users=20_000, seed=seed)
    now = time.time()
    return [parse_event({**e, "ts": now - 3600 + i * 0.01}, now=now) for i, e in enumerate(sim.events(limit=n))]


def throughput(url: str, events: list[Event], namespace: str) -> float:
    settings = Settings.from_env({}, redis_url=url, namespace=namespace, flow_metrics_port=0)
    client = redis.Redis.from_url(url)
    writer = EventWriter(client, settings.keys)
    for start in range(0, len(events), 1000):
        writer.append(events[start:start + 1000])
    started = time.perf_counter()
    run_main(build_flow(settings, stop_at_end=True))
    return len(events) / (time.perf_counter() - started)


def histogram_quantiles(text: str, name: str, qs: tuple[float, ...]) -> tuple[list[float], int]:
    buckets = []
    for line in text.splitlines():
        if line.startswith(f"{name}_bucket{{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float("inf") if le == "+Inf" else float(le), float(line.rsplit(" ", 1)[1])))
    total = buckets[-1][1]
    return [next(le for le, count in buckets if count >= q * total) for q in qs], int(total)


def freshness(url: str, events: list[Event], rate: float, seconds: float, namespace: str) -> tuple[float, float, int]:
    port = free_port()
    env = {**os.environ, "REDIS_URL": url, "LIVERECO_NAMESPACE": namespace, "LIVERECO_FLOW_METRICS_PORT": str(port),
           "PYTHONPATH": str(ROOT)}
    flow = subprocess.Popen([sys.executable, "-m", "flows.cli", "flow"], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        metrics = f"http://127.0.0.1:{port}/metrics"
        wait_until_answering(metrics, [flow])
        writer = EventWriter(redis.Redis.from_url(url), Settings.from_env({}, namespace=namespace).keys)
        batch = max(1, int(rate / 100))  # appends every 10 ms
        started = time.perf_counter()
        sent = 0
        while time.perf_counter() - started < seconds and sent + batch <= len(events):
            writer.append(events[sent:sent + batch])
            sent += batch
            delay = started + sent / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        time.sleep(1.0)
        text = urllib.request.urlopen(metrics, timeout=5).read().decode()
        (p50, p99), count = histogram_quantiles(text, "livereco_flow_freshness_seconds", (0.5, 0.99))
        return p50 * 1000, p99 * 1000, count
    finally:
        flow.terminate()
        flow.wait(timeout=10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=1000.0, help="offered events/s for the freshness run")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    events = shop_events(args.events)
    print(machine_line())
    with EmbeddedRedis() as server:
        rates = [throughput(server.url, events, f"tp{i}") for i in range(args.repeat)]
        print(f"throughput, 1 flow process, 1 worker, {args.events:,} synthetic-shop events: "
              f"median {statistics.median(rates):,.0f} events/s (runs: {', '.join(f'{r:,.0f}' for r in rates)})")
        p50, p99, count = freshness(server.url, events, args.rate, args.seconds, "fresh")
        print(f"freshness at {args.rate:,.0f} events/s offered for {args.seconds:.0f} s ({count:,} list writes): "
              f"p50 <= {p50:g} ms, p99 <= {p99:g} ms (histogram bucket bounds)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
