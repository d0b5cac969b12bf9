"""What context popularity costs per event, alone: RSC15's training clicks through a ranker replica's segments.

``python -m benchmarks.context_speed`` prints the figure the README quotes: for each click, in
time order, what the ranker stage does with context features on (``LIVERECO_CONTEXT_ITEMS``):
find the event's segments, read its hour segment's relative popularity (what the candidates
are scored with), then count the click. The median of ``--repeat`` passes.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import time
from pathlib import Path

from online.context_popularity import ContextPopularity, context_segments

__all__ = ["main", "microseconds_per_event"]

ROOT = Path(__file__).resolve().parents[1]
NO_CONTEXT: dict[str, str | float] = {}


def clicks(log: Path) -> list[tuple[str, float]]:
    """``(item, time)`` of every click of an RSC15 ``train.tsv``, in time order."""
    with log.open(newline="") as f:
        rows = [(row["ItemId"], float(row["Time"])) for row in csv.DictReader(f, delimiter="\t")]
    return sorted(rows, key=lambda row: row[1])


def microseconds_per_event(events: list[tuple[str, float]], per_segment: int) -> float:
    """One pass: segments, the hour segment's shares, then the count, per click."""
    popularity = ContextPopularity(per_segment)
    started = time.perf_counter()
    for item, ts in events:
        _device, hour = context_segments(NO_CONTEXT, ts)  # no device in this log
        popularity.relative(hour)
        popularity.learn_one(hour, item, ts)
    return (time.perf_counter() - started) / len(events) * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log", nargs="?", default=str(ROOT.parent / "shared" / "data" / "rsc15-100k" / "train.tsv"))
    parser.add_argument("--per-segment", type=int, default=50, help="LIVERECO_CONTEXT_ITEMS")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    events = clicks(Path(args.log))
    runs = [microseconds_per_event(events, args.per_segment) for _ in range(args.repeat)]
    print(f"{len(events):,} clicks, {args.per_segment} items per segment: {statistics.median(runs):.1f} µs per event "
          f"(median of {args.repeat}; segments, shares read, count)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
