"""Ingestion benchmark: Redis streams → dataflow → candidate lists in Redis, with 1 and 2 flow processes.

1. Sustained throughput: N synthetic-shop events are written to the streams
   first, then real ``livereco flow`` processes (1, then 2 on this machine,
   one worker each) drain them; events/s is measured from the flow's own
   ``livereco_flow_events_total`` between the first and the last event it
   took, so interpreter start-up is not counted. Every event rewrites its
   user's list, updates its item and is scored and learned from by the ranker.
2. Freshness: one flow process runs live while events are appended at half the
   sustained rate; the flow's freshness histogram (stream acceptance → list
   written to Redis) gives p50/p99/max as bucket upper bounds.

3. ``--instructions``: instructions per event under valgrind (``cachegrind
   --cache-sim=no``, ``PYTHONHASHSEED=0``), what load on this shared machine
   cannot move: the stages and the Redis sink in one process
   (:mod:`benchmarks.ingest_count`), ``--events`` events minus a 200-event
   run's start-up; ``--against REV`` counts commit ``REV``'s compiled build
   the same way (a temporary git worktree) and prints the ratio.

4. ``--ceiling``: after each 1-process run, the same events drained by the
   empty topology as a flow process (:mod:`benchmarks.ceiling_e2e`: the same
   source, hops and a Redis write per user per batch), and livereco's share
   of that end-to-end ceiling.

    .venv/bin/python -m benchmarks.ingest [--events 100000] [--seconds 15] [--repeat 3] [--processes 1,2] [--ceiling]
    .venv/bin/python -m benchmarks.ingest --instructions [--events 10000] [--against REV]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from benchmarks.build_ab import checkout
from benchmarks.ceiling_e2e import empty_throughput
from benchmarks.cluster_check import flow_env, free_port_pair, running_flow, scrape
from benchmarks.machine import machine_line
from flows.embedded_redis import EmbeddedRedis
from flows.event_writer import EventWriter
from flows.synthetic_shop import Catalog, ShopSimulator
from online.contract import Event, Settings, parse_event

PARTITIONS = 4


def shop_events(n: int, seed: int = 7) -> list[Event]:
    sim = ShopSimulator(Catalog.generate(seed=seed), n_users=20_000, seed=seed)
    now = time.time()
    return [parse_event({**e, "ts": now - 3600 + i * 0.01}, now=now) for i, e in enumerate(sim.events(limit=n))]


@contextmanager
def flow_processes(url: str, namespace: str, processes: int) -> Iterator[list[str]]:
    """``processes`` live ``livereco flow`` processes (a cluster when more than one); yields their metrics URLs."""
    env = flow_env(url, namespace, free_port_pair(processes), PARTITIONS)
    with tempfile.TemporaryDirectory(prefix="livereco-ingest-") as logs, \
            running_flow(env, processes, None, log_dir=Path(logs), ready_timeout_s=60) as (_, urls):
        yield urls


def events_taken(urls: list[str]) -> float:
    """Events the flow processes have accepted so far (``livereco_flow_events_total``, all types)."""
    return sum(float(line.rsplit(" ", 1)[1]) for text in scrape(urls) for line in text.splitlines()
               if line.startswith("livereco_flow_events_total{"))


def stage_seconds(urls: list[str]) -> dict[str, float]:
    """The flow processes' ``livereco_flow_stage_cpu_seconds_total`` by stage, and their CPU as ``cpu``, summed.

    >>> stage_seconds([]) == {}
    True
    """
    out: dict[str, float] = {}
    for text in scrape(urls) if urls else ():
        for line in text.splitlines():
            if line.startswith('livereco_flow_stage_cpu_seconds_total{stage="'):
                stage = line.split('"', 2)[1]
            elif line.startswith("process_cpu_seconds_total "):
                stage = "cpu"
            else:
                continue
            out[stage] = out.get(stage, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


def profile_line(spent: dict[str, float]) -> str:
    """Each stage's share of the flow processes' CPU time over a drain (``spent``: :func:`stage_seconds` deltas).

    >>> profile_line({"cpu": 2.0, "sink": 0.5, "ranker": 0.3})
    'sink 25%, ranker 15%, Bytewax and the rest 60% of 2.0 s of flow CPU'
    """
    cpu = spent.get("cpu", 0.0)
    stages = sorted(((v, k) for k, v in spent.items() if k != "cpu"), reverse=True)
    if cpu <= 0.0:
        return "no CPU time measured"
    rest = cpu - sum(v for v, _ in stages)
    parts = [f"{k} {100 * v / cpu:.0f}%" for v, k in stages]
    return ", ".join([*parts, f"Bytewax and the rest {100 * rest / cpu:.0f}%"]) + f" of {cpu:.1f} s of flow CPU"


def write_all(url: str, namespace: str, events: list[Event]) -> None:
    writer = EventWriter(redis.Redis.from_url(url), Settings.from_env({}, namespace=namespace,
                                                                      partitions=PARTITIONS).keys)
    for start in range(0, len(events), 1000):
        writer.append(events[start:start + 1000])


def throughput(url: str, events: list[Event], namespace: str, processes: int,
               profile: dict[str, float] | None = None) -> float:
    """Events/s while ``processes`` flow processes drain ``events`` already waiting in the streams; ``profile``
    receives where their time went over the same span (:func:`stage_seconds` differences)."""
    write_all(url, namespace, events)
    with flow_processes(url, namespace, processes) as urls:
        first: tuple[float, float] | None = None
        last = (0.0, 0.0)
        at_first: dict[str, float] = {}
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            taken, now = events_taken(urls), time.perf_counter()
            if taken and first is None:
                first, at_first = (now, taken), stage_seconds(urls)
            if taken:
                last = (now, taken)
            if taken >= len(events):
                break
            time.sleep(0.05)
        if first is None or last[1] < len(events):
            raise RuntimeError(f"the flow took {last[1]:,.0f} of {len(events):,} events within 600 s")
        if profile is not None:
            profile.update({k: v - at_first.get(k, 0.0) for k, v in stage_seconds(urls).items()})
        return (last[1] - first[1]) / (last[0] - first[0])


def histogram_quantiles(text: str, name: str, qs: tuple[float, ...]) -> tuple[list[float], int]:
    buckets = []
    for line in text.splitlines():
        if line.startswith(f"{name}_bucket{{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float("inf") if le == "+Inf" else float(le), float(line.rsplit(" ", 1)[1])))
    total = buckets[-1][1]
    return [next(le for le, count in buckets if count >= q * total) for q in qs], int(total)


def freshness(url: str, events: list[Event], rate: float, seconds: float,
              namespace: str) -> tuple[tuple[float, float, float], int]:
    """``((p50, p99, max), list writes)`` in ms, one flow process, events appended at ``rate`` for ``seconds``."""
    with flow_processes(url, namespace, 1) as urls:
        writer = EventWriter(redis.Redis.from_url(url), Settings.from_env({}, namespace=namespace,
                                                                          partitions=PARTITIONS).keys)
        batch = max(1, int(rate / 100))  # appends every 10 ms
        started = time.perf_counter()
        sent = 0
        while time.perf_counter() - started < seconds and sent + batch <= len(events):
            writer.append(events[sent:sent + batch])
            sent += batch
            delay = started + sent / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        deadline = time.monotonic() + 60
        while events_taken(urls) < sent and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # the last lists reach Redis
        (text,) = scrape(urls)
        quantiles, count = histogram_quantiles(text, "livereco_flow_freshness_seconds", (0.5, 0.99, 1.0))
        p50, p99, top = (q * 1000 for q in quantiles)
        return (p50, p99, top), count


ROOT = Path(__file__).resolve().parents[1]
COUNT_START = 200
"""Events of the short run whose count is subtracted as start-up (the log's load, Redis, the flow's build)."""


def instructions(tree: Path, events: int) -> int:
    """Instructions of one :mod:`benchmarks.ingest_count` run of ``tree``'s build over ``events`` events."""
    out = Path(tempfile.gettempdir()) / f"livereco-ingest-{os.getpid()}.cg"
    env = {"PYTHONHASHSEED": "0", "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(tree)}
    done = subprocess.run(["valgrind", "--tool=cachegrind", "--cache-sim=no", f"--cachegrind-out-file={out}",
                           sys.executable, str(ROOT / "benchmarks" / "ingest_count.py"), str(events)],
                          capture_output=True, text=True, env=env, cwd=tree, check=True)
    out.unlink(missing_ok=True)
    for line in done.stderr.splitlines():
        if "I   refs:" in line or "I refs:" in line:
            return int(line.rsplit(":", 1)[1].replace(",", "").strip())
    raise RuntimeError(f"no instruction count in valgrind's output:\n{done.stderr[-2000:]}")


def per_event(tree: Path, events: int) -> float:
    return (instructions(tree, events) - instructions(tree, COUNT_START)) / (events - COUNT_START)


def count_instructions(events: int, against: str | None) -> None:
    """Print instructions per event of this tree (and of ``against``), stages and sink in one process."""
    print(machine_line())
    mine = per_event(ROOT, events)
    print(f"this tree: {mine:,.0f} instructions per event ({events:,} synthetic-shop events, stages + Redis sink)")
    if against:
        with checkout(against) as tree:
            theirs = per_event(tree, events)
        print(f"{against}: {theirs:,.0f} instructions per event; this tree needs {mine / theirs:.1%} of them")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=15.0, help="length of the freshness run")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--processes", default="1,2", help="flow process counts to measure, comma-separated")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="offered events/s for the freshness run (default: half the 1-process median)")
    parser.add_argument("--instructions", action="store_true",
                        help="count instructions per event under valgrind instead (default --events 10000)")
    parser.add_argument("--against", metavar="REV", help="with --instructions: also count commit REV's build")
    parser.add_argument("--ceiling", action="store_true",
                        help="also drain the same events with the empty topology (benchmarks.ceiling_e2e) after each"
                             " 1-process run, and print livereco's share of that end-to-end ceiling")
    args = parser.parse_args()
    if args.instructions:
        count_instructions(args.events if args.events != parser.get_default("events") else 10_000, args.against)
        return 0
    counts = [int(p) for p in args.processes.split(",") if p.strip()]
    events = shop_events(args.events)
    print(machine_line())
    medians: dict[int, float] = {}
    with EmbeddedRedis() as server:
        print(f"| flow processes | events/s, median of {args.repeat} | runs |")
        print("|---|---|---|")
        profiles: dict[int, list[tuple[float, dict[str, float]]]] = {}
        empty: list[float] = []
        for processes in counts:
            runs = []
            for i in range(args.repeat):
                spent: dict[str, float] = {}
                runs.append((throughput(server.url, events, f"tp{processes}x{i}", processes, spent), spent))
                if args.ceiling and processes == 1:  # alternated with livereco's rounds: the same load on both
                    write_all(server.url, f"empty{i}", events)
                    empty.append(empty_throughput(server.url, f"empty{i}", PARTITIONS, len(events)))
            rates = [rate for rate, _ in runs]
            profiles[processes] = runs
            medians[processes] = statistics.median(rates)
            print(f"| {processes} | {medians[processes]:,.0f} | {', '.join(f'{r:,.0f}' for r in rates)} |")
        if empty:
            shares = [live / ceiling for (live, _), ceiling in zip(profiles[1], empty, strict=True)]
            print(f"the empty topology end to end (benchmarks.ceiling_e2e), 1 process: median "
                  f"{statistics.median(empty):,.0f} events/s ({', '.join(f'{r:,.0f}' for r in empty)}); livereco "
                  f"runs at {statistics.median(shares):.1%} of it (median of the rounds' ratios)")
        for processes, runs in profiles.items():  # the median run's: livereco_flow_stage_cpu_seconds_total over its drain
            _, spent = sorted(runs, key=lambda run: run[0])[len(runs) // 2]
            print(f"where the time went, {processes} process(es), median run: {profile_line(spent)}")
        rate = args.rate or medians.get(1, next(iter(medians.values()))) / 2
        (p50, p99, top), count = freshness(server.url, events, rate, args.seconds, "fresh")
        print(f"freshness at {rate:,.0f} events/s offered for {args.seconds:.0f} s, 1 process ({count:,} list writes):"
              f" p50 <= {p50:g} ms, p99 <= {p99:g} ms, max <= {top:g} ms (histogram bucket bounds)")
        print(f"({args.events:,} synthetic-shop events of 20,000 users; {PARTITIONS} stream partitions)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
