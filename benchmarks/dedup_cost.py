"""What de-duplication by event time costs: bytes per user and time per event.

1. Memory (``--part memory``): one user's :class:`~online.event_dedup.EventDedup`
   at the default settings (a day, 2,000 ids) holding 0, 1, 20, 200 and 2,000
   ids: bytes in memory (the object and its arrays as the events grew them,
   walked as ``benchmarks.memory_breakdown`` walks state: sizes rounded to the
   allocator's blocks) and bytes pickled (what a recovery snapshot holds). Beside it,
   measured the same way: the ring of the last 64 id hashes it replaced
   (``array('Q', 64)``: a fixed 512 bytes, 64 ids at most) and a plain
   ``dict`` of hash -> time (the obvious alternative).
2. Time (``--part speed``): ``UserHistory.learn_one`` per event, medians of
   ``--repeats`` runs of ``--events`` events of one user, for events without
   an ``event_id`` (RSC15's case) and for events with new ids while the user
   has about 20, 200 and 2,000 ids remembered (ids spaced ``horizon / n`` apart
   in event time, so expiry keeps about ``n``). It uses whichever
   ``online`` package imports first, so the same script times an older tree.
   Wall time on a shared machine moves by ±50% between runs: ``--instructions``
   counts instructions under valgrind instead (5,000 events, minus a run of none).

    .venv/bin/python -m benchmarks.dedup_cost
    .venv/bin/python -m benchmarks.dedup_cost --instructions
    PYTHONPATH=/tmp/before .venv/bin/python -m benchmarks.dedup_cost --part speed   # an older checkout
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import time
from array import array

from benchmarks.memory_breakdown import _walk_one
from online.contract import Event
from online.user_history import UserHistory

SIZES = (20, 200, 2000)
T0 = 1_700_000_000.0
HORIZON_S = 86_400.0


def memory() -> None:
    from online.event_dedup import EventDedup, id_hash

    print("bytes per user for de-duplication (default settings: a day, 2,000 ids)")
    print(f"  {'structure':<44}{'ids':>6}{'in memory B':>13}{'pickled B':>11}{'B per id':>10}")

    def dedup(n: int) -> EventDedup:
        d = EventDedup()
        for k in range(n):
            d.is_duplicate(f"run-{k:08x}", T0 + k)
        return d

    for n in (0, 1, *SIZES):
        built = dedup(n)
        size = _walk_one(built)
        pickled = len(pickle.dumps(built, protocol=pickle.HIGHEST_PROTOCOL))
        print(f"  {'EventDedup (3 arrays)':<44}{n:>6}{size:>13,.0f}{pickled:>11,}{size / max(n, 1):>10.1f}")
    ring = array("Q", bytes(8 * 64))
    size = _walk_one(ring)
    pickled = len(pickle.dumps(ring, protocol=pickle.HIGHEST_PROTOCOL))
    print(f"  {'before: ring array(Q, 64), last 64 ids only':<44}{'<=64':>6}{size:>13,.0f}{pickled:>11,}{'':>10}")
    for n in (1, *SIZES):
        table = {id_hash(f"run-{k:08x}"): T0 + k for k in range(n)}
        size = _walk_one(table)
        pickled = len(pickle.dumps(table, protocol=pickle.HIGHEST_PROTOCOL))
        print(f"  {'alternative: dict hash -> time':<44}{n:>6}{size:>13,.0f}{pickled:>11,}{size / n:>10.1f}")


def _per_event_us(events: list[Event], warm: list[Event], repeats: int) -> float:
    """Median µs per ``learn_one`` over ``events`` after ``warm`` (each repeat on a fresh history)."""
    times = []
    for r in range(repeats):
        history = UserHistory()
        for event in warm:
            history.learn_one(event, 1.0)
        batch = [Event(e.user_id, e.item_id, e.type, e.ts, event_id=None if e.event_id is None else f"{e.event_id}/{r}")
                 for e in events]
        started = time.perf_counter()
        for event in batch:
            history.learn_one(event, 1.0)
        times.append((time.perf_counter() - started) / len(batch) * 1e6)
    return statistics.median(times)


def _scenario(name: str, events: int) -> tuple[list[Event], list[Event]]:
    """``(warm-up, timed)`` events of one user: ``plain`` (no ids) or ``ids<n>`` (about ``n`` ids remembered)."""
    items = [f"{214_000_000 + k}" for k in range(50)]
    if name == "plain":
        return [], [Event("u", items[k % 50], "view", T0 + k) for k in range(events)]
    n = int(name.removeprefix("ids"))
    step = HORIZON_S / n
    warm = [Event("u", items[k % 50], "view", T0 + step * k, event_id=f"w{k}") for k in range(n)]
    return warm, [Event("u", items[k % 50], "view", T0 + step * (n + k), event_id=f"n{k}") for k in range(events)]


def _run_once(name: str, events: int) -> None:
    """One scenario, once, for an instruction count (run under valgrind by :func:`instructions`)."""
    warm, timed = _scenario(name, events)
    history = UserHistory()
    for event in warm:
        history.learn_one(event, 1.0)
    for event in timed:
        history.learn_one(event, 1.0)


def instructions(events: int) -> None:
    """Instructions per ``learn_one`` (cachegrind, ``--cache-sim=no``): a run of ``events`` minus one of none."""
    import os
    import re
    import subprocess
    import sys
    import tempfile

    import online.compiled

    print(f"UserHistory.learn_one per event, instructions ({online.compiled.describe()}, "
          f"{__import__('online').__path__[0]})")

    def count(name: str, n: int) -> int:
        with tempfile.NamedTemporaryFile() as out:
            done = subprocess.run(["valgrind", "--tool=cachegrind", "--cache-sim=no", f"--cachegrind-out-file={out.name}",
                                   sys.executable, "-m", "benchmarks.dedup_cost", "--run-once", name, "--events", str(n)],
                                  env={**os.environ, "PYTHONHASHSEED": "0"}, capture_output=True, text=True, check=True)
        return int(re.findall(r"I\s+refs:\s+([\d,]+)", done.stderr)[-1].replace(",", ""))

    for name in ("plain", *(f"ids{n}" for n in SIZES)):
        per_event = (count(name, events) - count(name, 0)) / events
        label = "no event_id" if name == "plain" else f"new ids, ~{int(name[3:]):,} remembered"
        print(f"  {label:<34}{per_event:>10,.0f} instructions", flush=True)


def speed(events: int, repeats: int) -> None:
    import online.compiled

    print(f"UserHistory.learn_one per event, median of {repeats} x {events:,} events "
          f"({online.compiled.describe()}, {UserHistory.__module__} from {__import__('online').__path__[0]})")
    for name in ("plain", *(f"ids{n}" for n in SIZES)):
        warm, timed = _scenario(name, events)
        label = "no event_id" if name == "plain" else f"new ids, ~{int(name[3:]):,} remembered"
        print(f"  {label:<34}{_per_event_us(timed, warm, repeats):>8.2f} µs")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=("memory", "speed", "both"), default="both")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--instructions", action="store_true", help="count instructions under valgrind instead of timing")
    parser.add_argument("--run-once", metavar="SCENARIO", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run_once:
        _run_once(args.run_once, args.events)
        return 0
    if args.instructions:
        instructions(min(args.events, 5000))
        return 0
    if args.part in ("memory", "both"):
        memory()
    if args.part in ("speed", "both"):
        speed(args.events, args.repeats)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
