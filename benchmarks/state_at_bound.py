"""One user and one item filled to their bounds (the real logic classes, no Bytewax), and compact alternatives.

Each structure is walked as :mod:`benchmarks.state_breakdown` walks a soak's
keys; the alternatives are built from the same state and walked the same way
(measured only: nothing in ``flows/`` changes).
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from benchmarks.heap_walk import KINDS, HeapWalk
from benchmarks.state_breakdown import StageReport, history_of, stage_fill, state_of
from flows.redis_source import StreamEntry
from flows.stages import ItemLogic, Link, NeighbourReply, Touch, UserHistoryLogic, UserListLogic
from online.contract import Settings

__all__ = ["VariantSize", "at_bound", "print_at_bound"]


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
            if not isinstance(messages, list):  # an attribution or a dead letter, not touches
                continue
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
    walk = HeapWalk()
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
        walk = HeapWalk()
        logic = registry_like[stage][0]
        state, prefix = state_of(stage, logic)
        walk.root(f"{type(logic).__name__} object + attrs", logic, skip=state)
        walk.state(prefix, state)
        reports.append(StageReport(stage, 1, 1, walk.buckets, stage_fill(stage, [logic], settings)))

    # Compact alternatives, built from the same state and walked the same way. Interned ids are
    # catalog strings shared by every structure (one per item: ~64 B x catalog, not per key), so
    # they are left out of the walk (their references, 8 B each, are counted in the tuples).
    st = lists.state
    cache = st.candidates._neighbours
    h = history_of(history)
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
        walk = HeapWalk()
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
        VariantSize("UserHistory._session_items (a list of <= 5)", as_is["session"], ""),
        VariantSize("  as a deque(maxlen=5), as before flow10", _walk_one(deque(h._session_items, maxlen=5)), ""),
        VariantSize("UserHistory.dedup (EventDedup)", as_is["seen"],
                    f"{len(h.dedup) if h.dedup is not None else 0} ids: 3 arrays, 24 B an id"),
        VariantSize("UserHistory._recent as is", as_is["recent"],
                    f"{len(h._recent)} items -> [weight, ts]"),
        VariantSize("  values as (weight, ts) tuples, interned ids",
                    without_strs({sys.intern(k): (v[0], v[1]) for k, v in h._recent.items()}), ""),
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
