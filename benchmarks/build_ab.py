"""Two builds of ``livereco eval`` alternated, medians; optionally instruction counts.

By default the compiled build against pure Python: runs ``livereco eval LOG
--mode streaming --models livereco --json`` in a subprocess, alternating
``LIVERECO_PURE_PYTHON=0`` (the compiled modules, if this install has them)
and ``=1`` (the sources), ``--runs`` times each, and prints each run's
events/s, the medians and the median of the rounds' ratios (alternating
spreads the shared machine's drift over both). ``--against REV`` compares this
tree's compiled build with commit ``REV``'s instead, checked out in a temporary
git worktree and compiled there. ``--instructions`` counts instructions
under valgrind (``cachegrind --cache-sim=no``, ``PYTHONHASHSEED=0``) on the
first 8k train and 2k test lines of the log, minus a 3+3-line run's start-up:
what load cannot move.

    .venv/bin/python -m benchmarks.build_ab [LOG] [--runs 3] [--instructions] [--against REV]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import orjson

from benchmarks.machine import machine_line
from online.compiled import PURE_PYTHON_ENV

ROOT = Path(__file__).resolve().parents[1]

Build = tuple[str, Path, str]
"""A build: its name, the source tree it runs from, and ``LIVERECO_PURE_PYTHON``."""
BUILDS: tuple[Build, ...] = (("compiled", ROOT, "0"), ("pure Python", ROOT, "1"))


def _eval(log: Path, build: Build, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[bytes]:
    _, tree, pure = build
    env = {**os.environ, PURE_PYTHON_ENV: pure, "PYTHONHASHSEED": "0", "PYTHONPATH": str(tree)}
    return subprocess.run([*prefix, sys.executable, "-m", "flows.cli", "eval", str(log), "--mode", "streaming",
                           "--models", "livereco", "--json"], env=env, cwd=tree, capture_output=True, check=True)


@contextlib.contextmanager
def checkout(rev: str) -> Iterator[Path]:
    """Commit ``rev`` in a temporary git worktree, its hot modules compiled in place."""
    with tempfile.TemporaryDirectory() as folder:
        tree = Path(folder) / "tree"
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), rev], cwd=ROOT, check=True, capture_output=True)
        try:
            subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"], cwd=tree, check=True,
                           capture_output=True)
            yield tree
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=False)


def _head(log: Path, folder: Path, lines: tuple[int, int]) -> Path:
    for name, count in zip(("train.tsv", "test.tsv"), lines, strict=True):
        with (log / name).open() as full:
            (folder / name).write_text("".join(line for _, line in zip(range(count + 1), full, strict=False)))
    return folder


def _instructions(log: Path, build: Build) -> int:
    with tempfile.NamedTemporaryFile() as out:
        done = _eval(log, build, ("valgrind", "--tool=cachegrind", "--cache-sim=no", f"--cachegrind-out-file={out.name}"))
    return int(re.findall(r"I\s+refs:\s+([\d,]+)", done.stderr.decode())[-1].replace(",", ""))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("log", nargs="?", default=str(ROOT.parent / "shared" / "data" / "rsc15-100k"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--instructions", action="store_true")
    parser.add_argument("--against", metavar="REV", help="compare with this commit's compiled build, not pure Python")
    args = parser.parse_args()
    print(machine_line())
    with contextlib.ExitStack() as stack:
        builds = BUILDS
        if args.against:
            builds = (("this tree", ROOT, "0"), (f"at {args.against}", stack.enter_context(checkout(args.against)), "0"))
        return _compare(Path(args.log), builds, args.runs, args.instructions)


def _compare(log: Path, builds: tuple[Build, ...], runs: int, instructions: bool) -> int:
    if instructions:
        with tempfile.TemporaryDirectory() as small, tempfile.TemporaryDirectory() as tiny:
            sliced, start = _head(log, Path(small), (8000, 2000)), _head(log, Path(tiny), (3, 3))
            for build in builds:
                total, startup = _instructions(sliced, build), _instructions(start, build)
                print(f"{build[0]}: {total / 1e9:.2f} G instructions, start-up {startup / 1e9:.2f} G, "
                      f"events {(total - startup) / 1e9:.2f} G")
        return 0
    speeds: dict[str, list[float]] = {build[0]: [] for build in builds}
    for _ in range(runs):
        for build in builds:
            result = orjson.loads(_eval(log, build).stdout)
            speeds[build[0]].append(result["livereco_events_per_s"])
            print(f"{build[0]:<12} {result['livereco_events_per_s']:>8,.0f} events/s  ({result['build']})", flush=True)
    for name, measured in speeds.items():
        print(f"median {name}: {statistics.median(measured):,.0f} events/s")
    first, second = (speeds[build[0]] for build in builds[:2])
    ratio = statistics.median(a / b for a, b in zip(first, second, strict=True))
    print(f"median of the rounds' ratios, {builds[0][0]} / {builds[1][0]}: {ratio:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
