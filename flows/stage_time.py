"""Where the flow's CPU goes, live: the CPU time each stage spends on its batches.

Every large batch, and every :data:`SAMPLE_EVERY`-th small one counting that
many times (:func:`sample`), is timed with the thread's CPU clock (:func:`add`, a per-thread
dict, so Bytewax's worker threads never contend and no metric child is
touched per batch); a collector sums them when Prometheus scrapes, as
``livereco_flow_stage_cpu_seconds_total{stage}``. CPU, not wall time: on
shared cores a thread waiting for one would charge the wait to whichever
stage it was in (measured: the stages' wall time summed to 135% of the
process's CPU under load). Sampled, because the thread CPU clock is a system
call (~1-1.6 µs, against ~0.1 µs for the wall clock) and a flow makes several
batches per event. The stages are a fixed set:
``parse``, ``catalog``, ``user_history``, ``items``, ``user_lists``,
``ranker``, ``sink`` and ``snapshots`` (pickling keyed state for recovery).
What the flow process spends beyond their sum (process CPU minus it) is
Bytewax's own work: routing between the stages, the source, the epochs.
This is the per-stage profile of docs/performance.md, kept up to date by the
running flow.

>>> add("parse", 1_500_000_000); add("parse", 500_000_000)
>>> totals()["parse"] >= 2.0
True
>>> sum(sample("items", 1) > 0 for _ in range(8 * SAMPLE_EVERY)), max(sample("items", 1) for _ in range(SAMPLE_EVERY))
(8, 8)
>>> sample("ranker", 500)
1
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from mypy_extensions import mypyc_attr
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

__all__ = ["SAMPLE_EVERY", "STAGES", "StageTime", "add", "sample", "timed", "totals"]

STAGES = ("parse", "catalog", "user_history", "items", "user_lists", "ranker", "sink", "snapshots")
"""Every label value the metric can take."""

SAMPLE_EVERY = 8
"""One batch in this many is timed (and counts this many times)."""

_ticks: dict[str, int] = {}

_threads: list[dict[str, int]] = []
"""One dict per thread that ever added time (worker threads live as long as the flow)."""
_lock = threading.Lock()
_local = threading.local()


def sample(stage: str, size: int) -> int:
    """How many batches a batch of ``size`` items of ``stage`` stands for if it is to be timed, else 0.

    A batch of :data:`SAMPLE_EVERY` items or more is always timed (the clock's cost is nothing beside it: the
    ranker, the sink and parsing take few, large batches); of the small ones (a key's one or two events), every
    :data:`SAMPLE_EVERY`-th of the stage is timed and counts that many times. The counts are per stage: one
    count for all would alias with a loop's fixed order of stages and never time some. Threads share them,
    which only moves which batches are timed.
    """
    if size >= SAMPLE_EVERY:
        return 1
    tick = _ticks.get(stage, 0) + 1
    _ticks[stage] = tick
    return SAMPLE_EVERY if tick % SAMPLE_EVERY == 0 else 0


R = TypeVar("R")


def timed(stage: str, size: int, work: Callable[..., R], *args: Any) -> R:
    """``work(*args)``, a batch of ``size`` items of ``stage``, its CPU time added when :func:`sample` picks it.

    >>> timed("catalog", 100, sorted, [3, 1, 2])
    [1, 2, 3]
    """
    weight = sample(stage, size)
    if not weight:
        return work(*args)
    started = time.thread_time_ns()
    result = work(*args)
    add(stage, (time.thread_time_ns() - started) * weight)
    return result


def add(stage: str, ns: int) -> None:
    """``ns`` nanoseconds more spent in ``stage`` (one of :data:`STAGES`)."""
    mine: dict[str, int] | None = getattr(_local, "totals", None)
    if mine is None:
        mine = _local.totals = {}
        with _lock:
            _threads.append(mine)
    mine[stage] = mine.get(stage, 0) + ns


def totals() -> dict[str, float]:
    """Seconds per stage so far, over every thread."""
    with _lock:
        threads = list(_threads)
    out: dict[str, float] = {}
    for mine in threads:
        for stage, ns in list(mine.items()):
            out[stage] = out.get(stage, 0.0) + ns / 1e9
    return out


@mypyc_attr(native_class=False)  # the module is compiled (timed runs per batch); the collector stays a Python class
class StageTime(Collector):
    """``livereco_flow_stage_cpu_seconds_total{stage}``, read from :func:`totals` at each scrape."""

    def describe(self) -> Iterator[CounterMetricFamily]:
        yield self._family()

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = self._family()
        seconds = totals()
        for stage in STAGES:
            if stage in seconds:
                family.add_metric([stage], seconds[stage])
        yield family

    @staticmethod
    def _family() -> CounterMetricFamily:
        return CounterMetricFamily("livereco_flow_stage_cpu_seconds",
                                   "CPU time the flow's stages spent on their batches, by stage, estimated from one "
                                   "batch in 8 (the rest of the process's CPU is Bytewax's routing, source and "
                                   "epochs).", labels=["stage"])
