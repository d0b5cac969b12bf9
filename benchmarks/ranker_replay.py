"""The ranker stage alone: its recorded inputs replayed through a fresh ``RankerLogic``, for instruction counts.

``capture`` runs :mod:`benchmarks.ingest_count`'s in-process flow (synthetic-shop events) and pickles every
batch the ranker stage received; ``replay`` feeds them to new ranker logics and prints the CPU time and a
digest of the prequential scores and published weights (equal digests: identical rankings);
``--load-only`` stops after loading them, so the replay's own instructions are the difference of two
counts under valgrind::

    PYTHONPATH=. .venv/bin/python -m benchmarks.ranker_replay capture /tmp/ranker.pkl --events 10000
    PYTHONHASHSEED=0 valgrind --tool=cachegrind --cache-sim=no .venv/bin/python -m benchmarks.ranker_replay replay /tmp/ranker.pkl
    PYTHONHASHSEED=0 valgrind --tool=cachegrind --cache-sim=no .venv/bin/python -m benchmarks.ranker_replay replay /tmp/ranker.pkl --load-only

Settings come from the environment (``LIVERECO_RANKER_LEARN_EVERY=1``: learn from every outcome).
"""

from __future__ import annotations

import argparse
import hashlib
import pickle
import time
from pathlib import Path
from typing import Any

from flows import stages
from flows.writes import PrequentialScore, RankerWrite
from online.contract import Settings


def capture(path: Path, events: int) -> int:
    """Run the flow over ``events`` shop events, keeping the ranker's batches; returns how many."""
    from benchmarks import ingest_count

    batches: list[tuple[int, bytes]] = []
    process = stages.RankerLogic.process  # what every ranker logic's on_batch calls (the dataflow's listed one too)

    def recorded(self: Any, values: list[Any]) -> Any:
        batches.append((id(self), pickle.dumps(values)))
        return process(self, values)

    stages.RankerLogic.process = recorded  # type: ignore[method-assign]
    try:
        ingest_count.main(events)
    finally:
        stages.RankerLogic.process = process  # type: ignore[method-assign]
    path.write_bytes(pickle.dumps(batches))
    return len(batches)


def replay(path: Path, load_only: bool = False) -> str:
    """Feed the recorded batches to fresh logics (one per recorded instance); CPU seconds and output digest."""
    loaded = [(key, pickle.loads(blob)) for key, blob in pickle.loads(path.read_bytes())]
    outcomes = sum(type(value).__name__ == "Outcome" for _, values in loaded for value in values)
    if load_only:
        return f"{len(loaded)} batches, {outcomes} outcomes loaded"
    settings = Settings.from_env()
    logics: dict[int, stages.RankerLogic] = {}
    digest = hashlib.sha256()
    started = time.process_time()
    for key, values in loaded:
        logic = logics.get(key) or logics.setdefault(key, stages.RankerLogic(settings, None, recoverable=False))
        out, _ = logic.on_batch(values)
        for write in out:
            if isinstance(write, PrequentialScore):
                digest.update(repr((write.entry_id, write.rank, write.listed)).encode())
            elif isinstance(write, RankerWrite):
                digest.update(repr(sorted(write.weights.items())).encode())
    return f"{outcomes} outcomes in {time.process_time() - started:.3f} s CPU, digest {digest.hexdigest()[:16]}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("capture", "replay"))
    parser.add_argument("path", type=Path)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--load-only", action="store_true")
    args = parser.parse_args()
    if args.mode == "capture":
        print(f"{capture(args.path, args.events)} ranker batches captured")
    else:
        print(replay(args.path, args.load_only))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
