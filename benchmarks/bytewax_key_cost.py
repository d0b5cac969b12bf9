"""What Bytewax itself keeps per key of a ``stateful_batch``: a logic that holds nothing, over many keys.

With ``notify`` every key also asks for a notification (one schedule entry per
key, as an idle-eviction logic does); the one-item batches of one more key that
follow time an activation with that many keys alive.
"""

from __future__ import annotations

import gc
import itertools
import time
import tracemalloc
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bytewax import operators as op
from bytewax.dataflow import Dataflow
from bytewax.inputs import DynamicSource, StatelessSourcePartition
from bytewax.operators import StatefulBatchLogic
from bytewax.testing import TestingSink, TestingSource, run_main

from benchmarks.memory_probes import rss_kib

__all__ = ["KeyOverhead", "bytewax_key_overhead"]


class _Empty(StatefulBatchLogic[Any, Any, None]):
    __slots__ = ()

    def on_batch(self, values: list[Any]) -> tuple[list[Any], bool]:
        return [], StatefulBatchLogic.RETAIN

    def snapshot(self) -> None:
        return None


class _Scheduled(_Empty):
    """Asks for a notification a year from now, as an idle-eviction logic does (one ``sched_cache`` entry per key)."""

    __slots__ = ()
    far = datetime.now(UTC) + timedelta(days=365)

    def notify_at(self) -> datetime | None:
        return self.far


class _Batches(StatelessSourcePartition[str]):
    def __init__(self, batches: list[list[str]]):
        self.batches = iter(batches)

    def next_batch(self) -> list[str]:
        try:
            return next(self.batches)
        except StopIteration:
            raise StopIteration() from None


class _BatchSource(DynamicSource[str]):
    """Yields the given batches in order, one per ``next_batch`` (one activation each), on worker 0."""

    def __init__(self, batches: list[list[str]]):
        self.batches = batches

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Batches:
        return _Batches(self.batches if worker_index == 0 else [])


@dataclass
class KeyOverhead:
    keys: int
    notify: bool
    rss_per_key: float
    """(RSS with every key's logic alive − RSS before) / keys: what a key costs, logic object included."""
    python_per_key: float
    """Traced Python allocations per key (the logic object; Bytewax's keys are Rust strings)."""
    native_per_key: float
    """The rest: Bytewax's Rust side (BTreeMap entries, String keys, PyObject handles) and allocator slack."""
    activation_us: float
    """Mean time of a one-item batch for one key once ``keys`` keys exist (Bytewax scans its schedule per activation)."""


def bytewax_key_overhead(keys: int, notify: bool = False, hot_batches: int = 300, key_len: int = 11) -> KeyOverhead:
    """A ``stateful_batch`` of a logic that keeps nothing, over ``keys`` distinct keys: the cost of a key alone.

    Then ``hot_batches`` one-item batches of one more key: their mean time is
    the per-activation cost with that many keys alive (and scheduled, with ``notify``).
    """
    pad = "k" * max(0, key_len - 7)
    warm = Dataflow("warm")  # a first run warms Bytewax and the interpreter
    op.output("o", op.stateful_batch("s", op.key_on("k", op.input("i", warm, TestingSource(["a"])), str),
                                     lambda resume: _Empty()), TestingSink([]))
    run_main(warm)
    gc.collect()
    marks: list[float] = []
    hot = "~hot"

    class _Hot(_Empty):
        __slots__ = ()

        def on_batch(self, values: list[Any]) -> tuple[list[Any], bool]:
            if not marks:
                marks.extend((float(rss_kib()), float(tracemalloc.get_traced_memory()[0])))
                tracemalloc.stop()
            marks.append(time.perf_counter())
            return [], StatefulBatchLogic.RETAIN

    def build(resume: None) -> _Empty:
        return _Scheduled() if notify else _Empty()

    def build_hot_or_not(resume: None, _made: list[int] = [0]) -> _Empty:  # noqa: B006
        _made[0] += 1
        return _Hot() if _made[0] == keys + 1 else build(resume)

    batches = [[f"{pad}{i:07d}" for i in range(start, min(keys, start + 1000))] for start in range(0, keys, 1000)]
    batches += [[hot] for _ in range(hot_batches)]
    flow = Dataflow("key-overhead")
    stream = op.input("in", flow, _BatchSource(batches))
    op.output("out", op.stateful_batch("state", op.key_on("key", stream, lambda k: k), build_hot_or_not),
              TestingSink([]))
    tracemalloc.start(1)
    before_traced = tracemalloc.get_traced_memory()[0]
    before = rss_kib()
    run_main(flow)
    rss_after, traced_after, *times = marks
    per_key = (rss_after - before) * 1024 / keys
    python = (traced_after - before_traced) / keys
    gaps = [b - a for a, b in itertools.pairwise(times)]
    return KeyOverhead(keys, notify, per_key, python, per_key - python, 1e6 * sum(gaps) / max(1, len(gaps)))
