"""Where the flow's time goes, live: the wall time each stage spends on its batches.

Each stage adds the nanoseconds of every batch it handles (:func:`add`, a
per-thread dict, so Bytewax's worker threads never contend and no metric
child is touched per batch); a collector sums them when Prometheus scrapes,
as ``livereco_flow_stage_seconds_total{stage}``. The stages are a fixed set:
``parse``, ``catalog``, ``user_history``, ``items``, ``user_lists``,
``ranker``, ``sink`` and ``snapshots`` (pickling keyed state for recovery).
What the flow process spends beyond their sum (process CPU minus it) is
Bytewax's own work: routing between the stages, the source, the epochs.
This is the per-stage profile of docs/performance.md, kept up to date by the
running flow.

>>> add("parse", 1_500_000_000); add("parse", 500_000_000)
>>> totals()["parse"] >= 2.0
True
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

__all__ = ["STAGES", "StageTime", "add", "totals"]

STAGES = ("parse", "catalog", "user_history", "items", "user_lists", "ranker", "sink", "snapshots")
"""Every label value the metric can take."""

_threads: list[dict[str, int]] = []
"""One dict per thread that ever added time (worker threads live as long as the flow)."""
_lock = threading.Lock()
_local = threading.local()


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


class StageTime(Collector):
    """``livereco_flow_stage_seconds_total{stage}``, read from :func:`totals` at each scrape."""

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
        return CounterMetricFamily("livereco_flow_stage_seconds",
                                   "Wall time the flow's stages spent on their batches, by stage (the rest of the "
                                   "process's CPU time is Bytewax's routing, source and epochs).", labels=["stage"])
