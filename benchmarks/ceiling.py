"""The framework's ceiling: livereco's dataflow against the same topology with empty stage logic, in one run.

Both run in this process over the same stream entries (a log, default
rsc15-100k train + test), through Bytewax's testing source in batches of
``LIVERECO_READ_COUNT`` and into a sink that keeps nothing, alternated
``--runs`` times:

* **livereco**: :func:`flows.dataflow.build_flow`, the real stages;
* **empty**: the same shape — parse (JSON decode, keyed by user) → user-keyed
  state → item-keyed state → back to the user → shard-keyed state → sink —
  with each stateful step only counting its key's events and passing one
  message on, and the same number of hops per event.

Both run under the live flow's garbage-collection policy
(:func:`flows.gc_policy.periodic_collection`, ``LIVERECO_GC_INTERVAL_S``), as
``livereco flow`` and ``livereco eval`` do: under Python's automatic collector
the cyclic GC walking the model state took ~30% of livereco's time.

Printed: each run's events/s, the medians, and livereco's share of the
ceiling (median of the rounds' ratios). ``--instructions`` counts each under
valgrind instead (cachegrind, ``PYTHONHASHSEED=0``, on the first
``--events`` entries), what load cannot move.

    .venv/bin/python -m benchmarks.ceiling [LOG] [--runs 3] [--events N] [--instructions]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from bytewax import operators as op
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source
from bytewax.operators import StatefulBatchLogic
from bytewax.outputs import DynamicSink, Sink, StatelessSinkPartition
from bytewax.testing import TestingSource, run_main

from benchmarks.machine import machine_line
from flows.dataflow import build_flow
from flows.evaluation import load
from flows.gc_policy import periodic_collection
from flows.redis_source import StreamEntry
from online.compiled import describe
from online.contract import Settings

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_LOG = ROOT.parent / "shared" / "data" / "rsc15-100k"


class _Discard(StatelessSinkPartition[Any]):
    def write_batch(self, items: list[Any]) -> None:
        pass


class DiscardSink(DynamicSink[Any]):
    """Keeps nothing: the sink's Redis writes are outside what is compared."""

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Discard:
        return _Discard()


class _Count(StatefulBatchLogic[Any, Any, int]):
    """A key's state is its count of messages; each batch passes one message per input on."""

    def __init__(self, resume: int | None):
        self.count = resume or 0

    def on_batch(self, values: list[Any]) -> tuple[Iterable[Any], bool]:
        self.count += len(values)
        return values, StatefulBatchLogic.RETAIN

    def notify_at(self) -> datetime | None:
        return None

    def snapshot(self) -> int:
        return self.count


def _parse(batch: list[StreamEntry]) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for entry in batch:
        event = orjson.loads(entry.fields[b"e"])
        out.append((event["user_id"], event))
    return out


def empty_flow(source: Source[StreamEntry], shards: int = 1, sink: Sink[Any] | None = None) -> Dataflow:
    """livereco's topology with counting logic: parse → user → item → user → shard → sink (``sink``: discarding)."""
    flow = Dataflow("ceiling")
    parsed = op.flat_map_batch("parse", op.input("streams", flow, source), _parse)
    users = op.stateful_batch("user_history", parsed, _Count)
    items = op.stateful_batch("items", op.flat_map_batch(
        "to_items", users, lambda batch: [(event["item_id"], event) for _, event in batch]), _Count)
    lists = op.stateful_batch("user_lists", op.flat_map_batch(
        "by_user_again", items, lambda batch: [(event["user_id"], event) for _, event in batch]), _Count)
    ranked = op.stateful_batch("ranker", op.flat_map_batch(
        "outcome_shard", lists, lambda batch: [(f"shard{hash(key) % shards}", event) for key, event in batch]), _Count)
    op.output("sink", op.flat_map_batch("values", ranked, lambda batch: [value for _, value in batch]),
              sink or DiscardSink())
    return flow


def entries_of(log: Path, settings: Settings, limit: int | None) -> list[StreamEntry]:
    data = load(log, settings)
    events = data.events[:limit] if limit else data.events
    return [StreamEntry("eval", f"{int(e.ts * 1000)}-{n}", {b"e": orjson.dumps(e.to_dict())})
            for n, e in enumerate(events)]


def timed(which: str, entries: list[StreamEntry], settings: Settings) -> float:
    """Events per second of one run of ``which`` (``livereco`` or ``empty``)."""
    source = TestingSource(entries, batch_size=settings.read_count)
    flow = build_flow(settings, source=source, sink=DiscardSink(), recoverable=False) if which == "livereco" \
        else empty_flow(source)
    with periodic_collection(settings.gc_interval_s):  # the live flow's GC policy, for both
        started = time.perf_counter()
        run_main(flow)
        return len(entries) / (time.perf_counter() - started)


def _instructions(which: str, log: Path, events: int) -> int:
    """Instructions of one run under cachegrind (start-up included: the same for both)."""
    out = Path(f"/tmp/livereco-ceiling-{which}.cg")
    done = subprocess.run(["valgrind", "--tool=cachegrind", "--cache-sim=no", f"--cachegrind-out-file={out}",
                           sys.executable, "-m", "benchmarks.ceiling", str(log), "--only", which,
                           "--events", str(events)],
                          capture_output=True, text=True, env={"PYTHONHASHSEED": "0", "PATH": "/usr/bin:/bin"},
                          cwd=ROOT, check=True)
    for line in done.stderr.splitlines():
        if "I   refs:" in line or "I refs:" in line:
            return int(line.rsplit(":", 1)[1].replace(",", "").strip())
    raise RuntimeError(f"no instruction count in valgrind's output:\n{done.stderr[-2000:]}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ceiling", description=__doc__.split("\n\n")[0])
    parser.add_argument("log", nargs="?", type=Path, default=DEFAULT_LOG)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--events", type=int, default=None, help="only the first N events")
    parser.add_argument("--instructions", action="store_true", help="count instructions under valgrind instead")
    parser.add_argument("--only", choices=("livereco", "empty"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    if args.only:  # one run, for --instructions
        timed(args.only, entries_of(args.log, settings, args.events), settings)
        return 0
    print(machine_line())
    if args.instructions:
        events = args.events or 10_000
        counts = {which: _instructions(which, args.log, events) for which in ("empty", "livereco")}
        base = _instructions("empty", args.log, 1)
        for which, count in counts.items():
            print(f"{which:<9} {count / 1e9:6.2f} G instructions, {(count - base) / events:,.0f} per event "
                  f"(start-up {base / 1e9:.2f} G)")
        print(f"livereco per event: {(counts['livereco'] - base) / max(1, counts['empty'] - base):.1f}x the empty topology's")
        return 0
    entries = entries_of(args.log, settings, args.events)
    print(f"{len(entries):,} events of {args.log.name}, batches of {settings.read_count}, {describe()}")
    rates: dict[str, list[float]] = {"livereco": [], "empty": []}
    for _ in range(args.runs):
        for which in ("empty", "livereco"):
            rates[which].append(timed(which, entries, settings))
            print(f"  {which:<9} {rates[which][-1]:>10,.0f} events/s", flush=True)
    ratios = [live / empty for live, empty in zip(rates["livereco"], rates["empty"], strict=True)]
    for which, values in rates.items():
        print(f"{which:<9} median {statistics.median(values):>10,.0f} events/s")
    print(f"livereco runs at {statistics.median(ratios):.1%} of the framework's ceiling (median of the rounds' ratios)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
