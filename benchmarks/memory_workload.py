"""The synthetic load of the memory benchmarks: a lazy stream of shop events, and users and items with full lists.

:func:`soak_entries` feeds the real dataflow (``benchmarks.memory``'s RSS soak and Redis measurement,
``benchmarks.memory_breakdown``); :func:`full_user_writes` and :func:`full_item_writes` are what the
flow's stages hand the Redis sink once every list is at its bound.

>>> next(soak_entries(1, users=10, items=100, seed=1)).entry_id.endswith("-0")
True
>>> users_seen_after(25, users=100)
5
>>> item_id(12), item_id(12, "numeric"), user_id(3)
('sku-000012', '214000012', 'user-000003')
"""

from __future__ import annotations

import bisect
import math
import random
import time
from collections.abc import Callable, Iterator

import orjson

from flows.redis_sink import ItemSimilarWrite, UserListWrite
from flows.redis_source import StreamEntry
from flows.stages import UserListLogic
from online.item_embedding import DIM

__all__ = ["PROFILE_AFFINITIES", "full_item_writes", "full_user_writes", "item_id", "soak_entries", "user_id",
           "users_seen_after"]

EVENT_TYPES = (("view", 0.83), ("impression", 0.04), ("add_to_cart", 0.09), ("purchase", 0.03), ("wishlist", 0.01))
BUNDLE = 10
"""Items ``10k .. 10k+9`` go together: a session mostly stays in its first item's bundle (learnable co-visitation)."""


def item_id(index: int, style: str = "sku") -> str:
    """``sku-000123`` (synthetic shop style) or a 9-digit number (RSC15 style)."""
    return f"sku-{index:06d}" if style == "sku" else str(214_000_000 + index)


def user_id(index: int) -> str:
    return f"user-{index:06d}"


def _user_stride(users: int) -> int:
    """A multiplier coprime with ``users``: session k belongs to user ``k * stride % users`` (all users per cycle)."""
    stride = 7919
    while math.gcd(stride, users) != 1:
        stride += 2
    return stride


def soak_entries(events: int, users: int, items: int, seed: int = 7, zipf: float = 1.1,
                 concurrent: int = 64, start_ts: float | None = None,
                 on_event: Callable[[int], None] | None = None) -> Iterator[StreamEntry]:
    """``events`` stream entries as the server writes them, generated lazily (memory independent of ``events``).

    ``concurrent`` sessions are interleaved; each has 2-8 events (mean 5) of one
    user, mostly within the bundle of its first (Zipf-popular) item. Session k
    belongs to user ``k * stride % users``: users come round in a fixed cycle,
    so all have been seen once ``5 * users`` events have gone by. ``on_event(n)``
    is called before the n-th entry (0-based) is produced.
    """
    rng = random.Random(seed)
    ranks = list(range(items))
    rng.shuffle(ranks)  # popularity rank of each item, so ids do not reveal popularity
    by_rank = sorted(range(items), key=ranks.__getitem__)
    cum: list[float] = []
    total = 0.0
    for r in range(items):
        total += 1.0 / (r + 1) ** zipf
        cum.append(total)
    types = [t for t, _ in EVENT_TYPES]
    type_cum: list[float] = []
    acc = 0.0
    for _, p in EVENT_TYPES:
        acc += p
        type_cum.append(acc)
    stride = _user_stride(users)
    dt = 0.01
    ts = (time.time() - 3600.0 - events * dt) if start_ts is None else start_ts
    sessions_started = 0
    # Active sessions: [user index, session number, events left, anchor item].
    active: list[list[int]] = []

    def zipf_item() -> int:
        return by_rank[min(bisect.bisect_left(cum, rng.random() * total), items - 1)]

    def new_session() -> list[int]:
        nonlocal sessions_started
        k = sessions_started
        sessions_started += 1
        return [k * stride % users, k, rng.randint(2, 8), zipf_item()]

    for n in range(events):
        if on_event is not None:
            on_event(n)
        while len(active) < concurrent:
            active.append(new_session())
        slot = rng.randrange(len(active))
        session = active[slot]
        u, k, left, anchor = session
        same_bundle = rng.random() < 0.75
        item = min(items - 1, anchor - anchor % BUNDLE + rng.randrange(BUNDLE)) if same_bundle else zipf_item()
        session[2] = left - 1
        if left <= 1:
            active[slot] = active[-1]
            active.pop()
        ts += dt
        iid = item_id(item)
        event = {
            "user_id": user_id(u), "item_id": iid, "type": types[bisect.bisect_left(type_cum, rng.random() * acc)],
            "ts": round(ts, 3), "session_id": f"s{k}", "event_id": f"e{n}",
            "context": {"category": f"cat-{item * 40 // items}"},
        }
        yield StreamEntry("soak", f"{int(ts * 1000)}-{n}", {b"e": orjson.dumps(event)})


def users_seen_after(events: int, users: int) -> int:
    """Users whose first session has started after ``events`` events (mean session length 5)."""
    return min(users, events // 5)

PROFILE_AFFINITIES = UserListLogic.profile_affinities
"""Category affinities the flow writes into a profile (5; ``CategoryAffinity`` keeps up to 16)."""


def full_user_writes(users: int, candidates: int = 50, recent: int = 20, style: str = "sku", items: int = 50_000,
                     seed: int = 3, affinities: int = PROFILE_AFFINITIES) -> Iterator[UserListWrite]:
    """Users with full lists, as the flow's user-list stage hands them to the sink (realistic float scores).

    The profile has a ``DIM``-d session embedding (the mean of unit item
    embeddings: components of about ±0.2) and ``affinities`` categories.
    """
    rng = random.Random(seed)
    profile_rng = random.Random(seed + 1)  # its own stream: the lists are the same whatever the profile holds
    now = time.time()
    for u in range(users):
        picked = rng.sample(range(items), candidates + recent)
        scores = sorted((rng.lognormvariate(0.0, 1.0) for _ in range(candidates)), reverse=True)
        ranked = [(item_id(i, style), s) for i, s in zip(picked[:candidates], scores, strict=True)]
        last = now - rng.random() * 86400
        history = [(item_id(i, style), rng.choice((1.0, 1.0, 1.0, 3.0, 4.0, 8.0)) * rng.randint(1, 3),
                    last - j * rng.uniform(5.0, 600.0)) for j, i in enumerate(picked[candidates:])]
        direction = [profile_rng.gauss(0.0, 1.0) for _ in range(DIM)]
        weight, length = profile_rng.uniform(1.0, 5.0), math.hypot(*direction) / profile_rng.uniform(0.5, 1.0)
        embedding = (tuple(weight * x / length for x in direction), weight)
        categories = profile_rng.sample(range(40), affinities)
        strengths = sorted((profile_rng.random() for _ in categories[1:]), reverse=True)
        affinity = list(zip([f"cat-{c}" for c in categories], [1.0, *strengths], strict=True))
        yield UserListWrite(user_id(u), ranked, last, int(now * 1000), f"s{rng.randrange(10**6)}", history,
                            session_embedding=embedding, affinities=affinity)


def full_item_writes(n_items: int, neighbours: int = 50, style: str = "sku", seed: int = 5) -> Iterator[ItemSimilarWrite]:
    rng = random.Random(seed)
    now = time.time()
    for i in range(n_items):
        scores = sorted((rng.lognormvariate(0.0, 1.0) for _ in range(neighbours)), reverse=True)
        others = rng.sample(range(max(n_items, neighbours + 1)), neighbours)
        yield ItemSimilarWrite(item_id(i, style), [(item_id(o, style), s) for o, s in zip(others, scores, strict=True)],
                               now)
