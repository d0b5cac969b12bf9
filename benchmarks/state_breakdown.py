"""Where the flow's memory goes during a soak: bytes per user and per item, by stage and by structure.

:func:`run_breakdown` runs the real dataflow (``build_flow``, one worker,
discarding sink) in this process over
:func:`~benchmarks.memory_workload.soak_entries`; the stage logics Bytewax
builds are registered as they are made (:func:`registering` wraps the builder
names in ``flows.dataflow``; nothing in ``flows/`` or ``online/`` changes). At
each point it records RSS, pymalloc's accounting (:mod:`benchmarks.pymalloc`),
each stage's state structures walked over a sample of keys
(:mod:`benchmarks.heap_walk`), how full each bounded structure is, and
optionally the allocation sites that grew (tracemalloc).
:func:`print_breakdown` prints it.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
import time
import tracemalloc
import weakref
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from bytewax.testing import TestingSource, run_main

import flows.dataflow as dataflow_module
from benchmarks.heap_walk import KINDS, Bucket, HeapWalk
from benchmarks.memory_probes import DiscardSink, rss_kib
from benchmarks.memory_workload import soak_entries, users_seen_after
from benchmarks.pymalloc import PymallocStats, pymalloc_stats
from flows.dataflow import build_flow
from flows.progress import Progress
from flows.redis_source import StreamEntry
from online.contract import Settings

__all__ = ["Breakdown", "PointReport", "StageReport", "history_of", "measure_state", "print_breakdown",
           "registering", "run_breakdown", "stage_fill", "state_of"]

STAGES: tuple[tuple[str, str], ...] = (
    ("user_history", "UserHistoryLogic"),
    ("items", "ItemListedLogic"),
    ("user_lists", "UserListListedLogic"),
    ("ranker", "RankerListedLogic"),
)
"""(stage, logic class name in ``flows.dataflow``), in the order the flow builds them."""

KEY_NOUN = {"user_history": "user", "user_lists": "user", "items": "item", "ranker": "shard"}


class Registry:
    """Every stage logic the flow built, by stage (weak references: Bytewax owns them)."""

    def __init__(self) -> None:
        self.logics: dict[str, weakref.WeakSet[Any]] = {stage: weakref.WeakSet() for stage, _ in STAGES}
        self.built: Counter[str] = Counter()

    def alive(self, stage: str) -> list[Any]:
        return list(self.logics[stage])


@contextlib.contextmanager
def registering(registry: Registry) -> Iterator[None]:
    """While active, ``build_flow`` builds its logics through factories that register them in ``registry``.

    Only a pure-Python ``flows.dataflow`` looks its logic classes up by name at run time: compiled, it calls them
    directly and nothing would be registered (every stage would read 0 keys), so that is refused with the fix.
    """
    if not str(getattr(dataflow_module, "__file__", "")).endswith(".py"):
        raise RuntimeError("flows.dataflow is compiled here, so its stage logics cannot be counted: run with "
                           "LIVERECO_PURE_PYTHON=1 (sizes are then those of the pure-Python objects, an upper bound "
                           "of the compiled ones)")
    originals = {name: getattr(dataflow_module, name) for _, name in STAGES}
    try:
        for stage, name in STAGES:
            cls = originals[name]

            def factory(*args: Any, _cls: type = cls, _stage: str = stage, **kwargs: Any) -> Any:
                logic = _cls(*args, **kwargs)
                registry.logics[_stage].add(logic)
                registry.built[_stage] += 1
                return logic

            setattr(dataflow_module, name, factory)
        yield
    finally:
        for name, cls in originals.items():
            setattr(dataflow_module, name, cls)


def state_of(stage: str, logic: Any) -> tuple[object, str]:
    """(state object, row prefix) of a stage logic: its ``state``, or a user history logic's ``history``."""
    state = getattr(logic, "state", None)
    if state is None and stage == "user_history":
        return logic.history, "UserHistory"
    return state, type(state).__name__


def history_of(logic: Any) -> Any:
    """The :class:`UserHistory` of a user history logic (``logic.history`` or ``logic.state.history``)."""
    state = getattr(logic, "state", None)
    return state.history if state is not None and hasattr(state, "history") else logic.history


@dataclass
class StageReport:
    stage: str
    keys: int
    walked: int
    rows: dict[str, Bucket]
    """Summed over the walked keys."""
    fill: dict[str, float]
    """Logical sizes (means over all keys) and their bounds."""

    def per_key(self, bucket: Bucket) -> float:
        return bucket.bytes / self.walked if self.walked else 0.0

    @property
    def total_per_key(self) -> float:
        return sum(b.bytes for b in self.rows.values()) / self.walked if self.walked else 0.0


def stage_fill(stage: str, logics: list[Any], settings: Settings) -> dict[str, float]:
    n = max(1, len(logics))
    if stage == "user_history":
        histories = [history_of(lg) for lg in logics]
        recent = [len(h._recent) for h in histories]
        return {"recent items (mean)": sum(recent) / n, "recent items bound": settings.recent_items,
                "users at bound %": 100.0 * sum(r >= settings.recent_items for r in recent) / n,
                "purchased (mean)": sum(len(h.purchased) for h in histories) / n,
                "events per user (mean)": sum(h.events for h in histories) / n}
    if stage == "items":
        states = [lg.state for lg in logics if lg.state is not None]
        cap = 2 * settings.neighbours
        sizes = [len(s.neighbours) for s in states]
        m = max(1, len(sizes))
        return {"neighbours (mean)": sum(sizes) / m, "neighbours bound": cap,
                "items at bound %": 100.0 * sum(s >= cap for s in sizes) / m,
                "items with >= half %": 100.0 * sum(s >= cap // 2 for s in sizes) / m,
                "neighbour entries (total)": float(sum(sizes))}
    if stage == "user_lists":
        states = [lg.state for lg in logics]
        cached = [len(s.candidates._neighbours) for s in states]
        tuples = [sum(len(ids) for ids, _ in s.candidates._neighbours.values()) for s in states]
        return {"cached neighbour lists (mean)": sum(cached) / n,
                "cached (item, score) pairs (mean)": sum(tuples) / n,
                "latest.recent length (mean)": sum(len(s.latest.recent) if s.latest else 0 for s in states) / n,
                "previous.ranked length (mean)": sum(len(s.previous.ranked) if s.previous else 0 for s in states) / n,
                "pending replies (total)": float(sum(len(s.pending) for s in states))}
    if stage == "ranker":
        return {"trending kept (mean)": sum(len(lg.state.trending) for lg in logics) / n,
                "pending heap (mean)": sum(len(lg.state.pending) for lg in logics) / n}
    return {}


def measure_state(registry: Registry, settings: Settings, sample: int = 2000) -> list[StageReport]:
    """Walk up to ``sample`` keys of each stage (evenly spread over the keys built so far)."""
    reports: list[StageReport] = []
    for stage, _ in STAGES:
        logics = registry.alive(stage)
        step = max(1, len(logics) // sample) if sample else 1
        walked = logics[::step]
        walk = HeapWalk()
        logic_label = f"{type(logics[0]).__name__} object + attrs" if logics else "logic"
        for logic in walked:
            state, prefix = state_of(stage, logic)
            walk.root(logic_label, logic, skip=state)
            if state is not None:
                rc = sys.getrefcount(state) - 2  # the local variable and getrefcount's argument
                walk.state(prefix, state, 1.0 / max(1, rc), shared=rc > 1)
            del state
        reports.append(StageReport(stage, len(logics), len(walked), walk.buckets, stage_fill(stage, logics, settings)))
    return reports


@dataclass
class SiteGrowth:
    site: str
    bytes: int
    blocks: int


@dataclass
class PointReport:
    events: int
    users_seen: int
    seconds: float
    rss_mib: float
    pymalloc: PymallocStats
    stages: list[StageReport]
    walk_seconds: float
    rss_after_walk_mib: float
    traced_bytes: int = 0
    tracemalloc_overhead: int = 0
    sites: list[SiteGrowth] = field(default_factory=list)
    alive: dict[str, int] = field(default_factory=dict)


@dataclass
class Breakdown:
    events: int
    users: int
    items: int
    baseline_mib: float
    points: list[PointReport]
    seconds: float
    user_ttl_s: int = 0
    recoverable: bool = True
    built: dict[str, int] = field(default_factory=dict)
    """Logics Bytewax built per stage (more than the keys alive when keys were discarded and came back)."""
    baseline_pymalloc: PymallocStats | None = None


def _site_growth(before: tracemalloc.Snapshot | None, after: tracemalloc.Snapshot, top: int) -> list[SiteGrowth]:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    stats = after.compare_to(before, "lineno") if before is not None else [
        tracemalloc.StatisticDiff(s.traceback, s.size, s.size, s.count, s.count) for s in after.statistics("lineno")]
    out: list[SiteGrowth] = []
    for s in sorted(stats, key=lambda d: d.size_diff, reverse=True)[:top]:
        frame = s.traceback[0]
        name = os.path.relpath(frame.filename, root) if frame.filename.startswith(root) else frame.filename
        out.append(SiteGrowth(f"{name}:{frame.lineno}", s.size_diff, s.count_diff))
    return out


def run_breakdown(settings: Settings, events: int, users: int, items: int, points: list[int], sample: int = 2000,
                  trace: bool = False, recoverable: bool = True, seed: int = 7, top_sites: int = 15,
                  progress: bool = False) -> Breakdown:
    """The real dataflow over the soak's events; a :class:`PointReport` after each of ``points`` events.

    ``recoverable`` is passed to ``build_flow`` (True, its default: every key
    touched in an epoch is pickled at the epoch's end, as with a recovery store).
    """
    registry = Registry()
    reports: list[PointReport] = []
    marks = sorted(set(p for p in points if 0 < p <= events) | {events})
    previous_snapshot: list[tracemalloc.Snapshot | None] = [None]
    started = time.perf_counter()
    # on a terminal, a redrawn count of events between the point lines; elsewhere only the point lines
    bar = Progress(events, "breakdown", enabled=progress)

    def report(n: int) -> None:
        elapsed = time.perf_counter() - started
        gc.collect()
        rss = rss_kib() / 1024
        stats = pymalloc_stats()
        traced = overhead = 0
        sites: list[SiteGrowth] = []
        if trace:
            traced = tracemalloc.get_traced_memory()[0]
            overhead = tracemalloc.get_tracemalloc_memory()
            snap = tracemalloc.take_snapshot()
            sites = _site_growth(previous_snapshot[0], snap, top_sites)
            previous_snapshot[0] = snap
        walk_started = time.perf_counter()
        stages = measure_state(registry, settings, sample)
        walk_seconds = time.perf_counter() - walk_started
        alive = {stage: len(registry.logics[stage]) for stage, _ in STAGES}
        reports.append(PointReport(n, users_seen_after(n, users), elapsed, rss, stats, stages, walk_seconds,
                                   rss_kib() / 1024, traced, overhead, sites, alive))
        if progress:
            bar.note(f"  breakdown: {n:>10,} events, RSS {rss:8.1f} MiB, walk {walk_seconds:5.1f} s, "
                     f"{elapsed:7.1f} s")

    def on_event(n: int) -> None:
        bar.advance()
        if n and n in marks:
            report(n)

    def entries() -> Iterator[StreamEntry]:
        yield from soak_entries(events, users, items, seed=seed, on_event=on_event)
        report(events)

    with registering(registry):
        flow = build_flow(settings, source=TestingSource(entries(), batch_size=settings.read_count),
                          sink=DiscardSink(), flow_id="livereco-memory-breakdown", recoverable=recoverable)
        gc.collect()
        baseline = rss_kib() / 1024
        baseline_pymalloc = pymalloc_stats()
        if trace:
            tracemalloc.start(1)
        started = time.perf_counter()
        run_main(flow)
        seconds = time.perf_counter() - started
        if trace:
            tracemalloc.stop()
    bar.close()
    return Breakdown(events, users, items, baseline, reports, seconds, settings.user_ttl_s, recoverable,
                     dict(registry.built), baseline_pymalloc)


def _mib(b: float) -> str:
    return f"{b / 2**20:,.1f}"


def print_point(point: PointReport, baseline_mib: float) -> None:
    pm = point.pymalloc
    print(f"\n== after {point.events:,} events ({point.users_seen:,} users seen, {point.seconds:,.0f} s): "
          f"RSS {point.rss_mib:,.1f} MiB (baseline {baseline_mib:,.1f}; walk took {point.walk_seconds:.1f} s, "
          f"RSS after it {point.rss_after_walk_mib:,.1f})")
    print(f"   pymalloc: {_mib(pm.total)} MiB in {pm.arenas:,} arenas (high-water {pm.arenas_highwater:,}): "
          f"{_mib(pm.allocated_blocks)} live, {_mib(pm.free_blocks)} free blocks in used pools, "
          f"{_mib(pm.empty_pools)} in empty pools")
    if point.traced_bytes:
        print(f"   tracemalloc: {_mib(point.traced_bytes)} MiB traced Python allocations "
              f"(+{_mib(point.tracemalloc_overhead)} MiB of tracemalloc's own)")
    estimated = 0.0
    print(f"   {'structure':<52}{'B/key':>9}{'shared':>8}{'objs/key':>9}  "
          + "".join(f"{k:>7}" for k in KINDS) + f"{'MiB (all keys)':>16}")
    for stage in point.stages:
        noun = KEY_NOUN[stage.stage]
        total = stage.total_per_key * stage.keys
        estimated += total
        print(f"   -- {stage.stage}: {stage.keys:,} keys ({noun}s), {stage.walked:,} walked: "
              f"{stage.total_per_key:,.0f} B per {noun}, {_mib(total)} MiB")
        for label, b in sorted(stage.rows.items(), key=lambda kv: -kv[1].bytes):
            per = stage.per_key(b)
            if per < 1.0:
                continue
            kinds = "".join(f"{b.kinds.get(k, 0.0) / stage.walked:>7,.0f}" for k in KINDS)
            print(f"   {label:<52}{per:>9,.0f}{b.shared / stage.walked:>8,.0f}{b.objects / stage.walked:>9,.1f}  "
                  f"{kinds}{_mib(per * stage.keys):>16}")
        fill = ", ".join(f"{k} {v:,.1f}" for k, v in stage.fill.items())
        print(f"      fill: {fill}")
    rest = point.rss_mib * 2**20 - baseline_mib * 2**20 - estimated
    print(f"   state walked, extrapolated to all keys: {_mib(estimated)} MiB; RSS − baseline − that: {_mib(rest)} MiB "
          f"(Bytewax's per-key maps, in-flight batches, allocator slack)")
    if point.sites:
        print("   allocation sites that grew most since the previous point (tracemalloc, by line):")
        for s in point.sites:
            print(f"     {s.bytes / 2**20:>+9.1f} MiB {s.blocks:>+11,} blocks  {s.site}")


def print_breakdown(result: Breakdown) -> None:
    snaps = "snapshots pickled" if result.recoverable else "no snapshots (recoverable=False)"
    print(f"\nFlow state breakdown: {result.events:,} events, {result.users:,} users, {result.items:,} items, "
          f"1 worker, build_flow + discarding sink, {snaps}, LIVERECO_USER_TTL_S {result.user_ttl_s:,} "
          f"({result.seconds:,.0f} s incl. walks)")
    if result.baseline_pymalloc is not None:
        print(f"   pymalloc before the first event: {_mib(result.baseline_pymalloc.allocated_blocks)} MiB live "
              f"in {result.baseline_pymalloc.arenas:,} arenas")
    print("   B/key: bytes per key of the stage (objects shared with other structures split by reference count);")
    print("   shared: the part of B/key in objects referenced from elsewhere too; kinds: B/key by object type")
    for point in result.points:
        print_point(point, result.baseline_mib)
    print(f"\n   logics built: {', '.join(f'{k} {v:,}' for k, v in result.built.items())}")
    print("\n   RSS per point: " + ", ".join(f"{p.events:,}: {p.rss_mib:,.0f} MiB (alive: "
                                          f"{p.alive.get('user_history', 0):,} users, "
                                          f"{p.alive.get('items', 0):,} items)" for p in result.points))
