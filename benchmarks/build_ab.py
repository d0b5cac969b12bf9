"""The compiled build against pure Python: ``livereco eval`` alternated, medians; optionally instruction counts.

Runs ``livereco eval LOG --mode streaming --models livereco --json`` in a
subprocess, alternating ``LIVERECO_PURE_PYTHON=0`` (the compiled modules, if
this install has them) and ``=1`` (the sources), ``--runs`` times each, and
prints each run's events/s and the medians (alternating spreads the shared
machine's drift over both). ``--instructions`` instead counts instructions
under valgrind (``cachegrind --cache-sim=no``, ``PYTHONHASHSEED=0``) on the
first 8k train and 2k test lines of the log, minus a 3+3-line run's start-up:
what load cannot move.

    .venv/bin/python -m benchmarks.build_ab [LOG] [--runs 3] [--instructions]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import orjson

from benchmarks.machine import machine_line
from online.compiled import PURE_PYTHON_ENV

ROOT = Path(__file__).resolve().parents[1]
BUILDS = (("compiled", "0"), ("pure Python", "1"))


def _eval(log: Path, pure: str, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, PURE_PYTHON_ENV: pure, "PYTHONHASHSEED": "0"}
    return subprocess.run([*prefix, sys.executable, "-m", "flows.cli", "eval", str(log), "--mode", "streaming",
                           "--models", "livereco", "--json"], env=env, cwd=ROOT, capture_output=True, check=True)


def _head(log: Path, folder: Path, lines: tuple[int, int]) -> Path:
    for name, count in zip(("train.tsv", "test.tsv"), lines, strict=True):
        with (log / name).open() as full:
            (folder / name).write_text("".join(line for _, line in zip(range(count + 1), full, strict=False)))
    return folder


def _instructions(log: Path, pure: str) -> int:
    with tempfile.NamedTemporaryFile() as out:
        done = _eval(log, pure, ("valgrind", "--tool=cachegrind", "--cache-sim=no", f"--cachegrind-out-file={out.name}"))
    return int(re.findall(r"I\s+refs:\s+([\d,]+)", done.stderr.decode())[-1].replace(",", ""))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("log", nargs="?", default=str(ROOT.parent / "shared" / "data" / "rsc15-100k"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--instructions", action="store_true")
    args = parser.parse_args()
    log = Path(args.log)
    print(machine_line())
    if args.instructions:
        with tempfile.TemporaryDirectory() as small, tempfile.TemporaryDirectory() as tiny:
            sliced, start = _head(log, Path(small), (8000, 2000)), _head(log, Path(tiny), (3, 3))
            for name, pure in BUILDS:
                total, startup = _instructions(sliced, pure), _instructions(start, pure)
                print(f"{name}: {total / 1e9:.2f} G instructions, start-up {startup / 1e9:.2f} G, "
                      f"events {(total - startup) / 1e9:.2f} G")
        return 0
    speeds: dict[str, list[float]] = {name: [] for name, _ in BUILDS}
    for _ in range(args.runs):
        for name, pure in BUILDS:
            result = orjson.loads(_eval(log, pure).stdout)
            speeds[name].append(result["livereco_events_per_s"])
            print(f"{name:<12} {result['livereco_events_per_s']:>8,.0f} events/s  ({result['build']})", flush=True)
    for name, runs in speeds.items():
        print(f"median {name}: {statistics.median(runs):,.0f} events/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
