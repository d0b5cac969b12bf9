"""Memory benchmark: Redis bytes per user and per item, and flow RSS over a long soak.

1. Redis, as the flow writes it: synthetic sessions (10 events per user) go
   through the real dataflow and the real Redis sink into an embedded Redis;
   bytes per user are the ``MEMORY USAGE`` of the user's two keys (candidate
   list + profile) and the ``used_memory`` delta over users, bytes per item the
   ``MEMORY USAGE`` of its neighbour list.
2. Redis, full lists: every user written by the real sink (``RedisSink``) with
   exactly ``LIVERECO_CANDIDATES`` (50) candidates and ``LIVERECO_RECENT_ITEMS``
   (20) recent items, a 32-d session embedding and ``--affinities`` (5, what
   the flow writes) category affinities, every item with ``LIVERECO_NEIGHBOURS``
   (50) neighbours: the upper bound of what production stores. The previous
   encoding (version 1) and other layouts are written the same way and
   measured beside it (nothing in production changes).
3. Flow RSS soak: the real dataflow (default stages, one worker) over
   ``--events`` synthetic events of ``--users`` users (who come round in a
   cycle, so every user has been seen by half-way) and ``--items`` Zipf-popular
   items, fed by a lazy generator (``TestingSource`` over a generator keeps
   one batch in memory) into a sink that discards writes. It runs in a child
   process; VmRSS is sampled every ``--sample-every`` events.

4. With ``--state-breakdown``, the soak is instrumented instead
   (:mod:`benchmarks.memory_breakdown`): at ``--breakdown-points`` points it
   also walks a sample of every stage's keys and prints bytes per user and per
   item for each state structure, pymalloc's live and free bytes, and how full
   each bounded structure is.

    .venv/bin/python -m benchmarks.memory                 # 2M events, 200k users, 50k items (~10 min)
    .venv/bin/python -m benchmarks.memory --quick         # small sizes, a smoke check (~30 s)
    .venv/bin/python -m benchmarks.memory --no-soak --redis-users 10000   # only the Redis measurements (~1 min)
    .venv/bin/python -m benchmarks.memory --events 500000 --users 50000 --json
    .venv/bin/python -m benchmarks.memory --no-redis --users 20000 --events 200000 --state-breakdown
    .venv/bin/python -m benchmarks.memory --no-redis --user-ttl-s 60          # idle users leave after 60 s
"""

from __future__ import annotations

import argparse
import bisect
import math
import random
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson
import redis
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from bytewax.testing import TestingSource, run_main
from typing_extensions import override

from benchmarks.child_process import run_in_child
from benchmarks.machine import machine_line
from flows.dataflow import build_flow
from flows.embedded_redis import EmbeddedRedis
from flows.redis_sink import ItemSimilarWrite, RedisSink, SinkOptions, UserListWrite, Write
from flows.redis_source import StreamEntry
from flows.stages import UserListLogic
from online.contract import RedisKeys, Settings, decode_candidates
from online.item_embedding import DIM

TARGET_BYTES_PER_USER = 1024
EVENT_TYPES = (("view", 0.83), ("impression", 0.04), ("add_to_cart", 0.09), ("purchase", 0.03), ("wishlist", 0.01))
BUNDLE = 10
"""Items ``10k .. 10k+9`` go together: a session mostly stays in its first item's bundle (learnable co-visitation)."""


# --------------------------------------------------------------------------- synthetic events


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


# --------------------------------------------------------------------------- flow RSS soak


def rss_kib(pid: int | str = "self") -> int:
    """VmRSS of a process in KiB, from ``/proc/<pid>/status``."""
    with open(f"/proc/{pid}/status") as status:
        return int(next(line.split()[1] for line in status if line.startswith("VmRSS:")))


class _DiscardPartition(StatelessSinkPartition[Write]):
    def __init__(self, counts: Counter[str]):
        self.counts = counts

    @override
    def write_batch(self, items: list[Write]) -> None:
        self.counts.update(type(w).__name__ for w in items)


class DiscardSink(DynamicSink[Write]):
    """Counts the flow's writes by kind and keeps none of them."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    @override
    def build(self, step_id: str, worker_index: int, worker_count: int) -> _DiscardPartition:
        return _DiscardPartition(self.counts)


@dataclass
class RssSample:
    events: int
    users_seen: int
    rss_mib: float
    seconds: float


@dataclass
class SoakResult:
    events: int
    users: int
    items: int
    baseline_mib: float
    """RSS with everything imported and the flow built, before the first event."""
    samples: list[RssSample]
    seconds: float
    writes: dict[str, int] = field(default_factory=dict)

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    @property
    def final_mib(self) -> float:
        return self.samples[-1].rss_mib if self.samples else self.baseline_mib

    def growth_last_half(self) -> tuple[float, float]:
        """RSS growth (MiB, %) from the sample nearest half-way to the last sample."""
        if len(self.samples) < 2:
            return 0.0, 0.0
        mid = min(self.samples, key=lambda s: abs(s.events - self.samples[-1].events / 2))
        grown = self.final_mib - mid.rss_mib
        return grown, 100.0 * grown / mid.rss_mib

    def per_user_bytes(self) -> float:
        """(final RSS − baseline) / users: the flow's memory per user once every user has been seen."""
        return (self.final_mib - self.baseline_mib) * 2**20 / self.users


def soak(settings: Settings, events: int, users: int, items: int, sample_every: int = 100_000, seed: int = 7,
         progress: bool = False) -> SoakResult:
    """Run the real dataflow over lazily generated events and sample this process's RSS every ``sample_every``."""
    samples: list[RssSample] = []
    started = time.perf_counter()

    def sample(n: int) -> None:
        seen = users_seen_after(n, users)
        samples.append(RssSample(n, seen, rss_kib() / 1024, time.perf_counter() - started))
        if progress:
            s = samples[-1]
            print(f"  soak: {n:>10,} events, {seen:>8,} users seen, RSS {s.rss_mib:8.1f} MiB, {s.seconds:7.1f} s",
                  file=sys.stderr, flush=True)

    def on_event(n: int) -> None:
        if n and n % sample_every == 0:
            sample(n)

    def entries() -> Iterator[StreamEntry]:
        yield from soak_entries(events, users, items, seed=seed, on_event=on_event)
        sample(events)  # the generator is drained: every batch but the last has been processed

    sink = DiscardSink()
    flow = build_flow(settings, source=TestingSource(entries(), batch_size=settings.read_count), sink=sink,
                      flow_id="livereco-memory")
    baseline = rss_kib() / 1024
    started = time.perf_counter()
    run_main(flow)
    seconds = time.perf_counter() - started
    return SoakResult(events, users, items, baseline, samples, seconds, dict(sink.counts))


def _soak_as_dict(settings: Settings, events: int, users: int, items: int, sample_every: int,
                  seed: int) -> dict[str, Any]:
    return asdict(soak(settings, events, users, items, sample_every, seed, progress=True))


def soak_in_child(settings: Settings, events: int, users: int, items: int, sample_every: int,
                  seed: int = 7) -> SoakResult:
    """:func:`soak` in a fresh (spawned) process, so nothing else this benchmark did is in its RSS."""
    raw = run_in_child(_soak_as_dict, settings, events, users, items, sample_every, seed, what="soak")
    raw["samples"] = [RssSample(**s) for s in raw["samples"]]
    return SoakResult(**raw)


# --------------------------------------------------------------------------- Redis footprint


def used_memory(client: redis.Redis, timeout_s: float = 2.0) -> int:
    """``used_memory`` once ``client`` is the only connection left.

    A writer's connection (the sink's, with its query buffer) closes
    asynchronously: counted in one reading and not in the next, it made small
    deltas swing by tens of KB.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        info: Any = client.info()
        if int(info["connected_clients"]) <= 1 or time.monotonic() > deadline:
            return int(info["used_memory"])
        time.sleep(0.01)


def _scan(client: redis.Redis, pattern: str) -> list[bytes]:
    return list(client.scan_iter(match=pattern, count=1000))


def _memory_usage(client: redis.Redis, keys: list[bytes]) -> list[int]:
    out: list[int] = []
    for start in range(0, len(keys), 1000):
        pipe = client.pipeline(transaction=False)
        for key in keys[start:start + 1000]:
            pipe.memory_usage(key, samples=0)
        out.extend(int(v or 0) for v in pipe.execute())
    return out


def _strlen(client: redis.Redis, keys: list[bytes]) -> list[int]:
    out: list[int] = []
    for start in range(0, len(keys), 1000):
        pipe = client.pipeline(transaction=False)
        for key in keys[start:start + 1000]:
            pipe.strlen(key)
        out.extend(int(v) for v in pipe.execute())
    return out


def _mean(values: list[int] | list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


@dataclass
class FlowFootprint:
    users: int
    events: int
    recs_keys: int
    profile_keys: int
    similar_keys: int
    user_bytes: float
    """Mean MEMORY USAGE of a user's recs + profile keys."""
    item_bytes: float
    """Mean MEMORY USAGE of an item's similar key."""
    used_memory_per_user: float
    """used_memory delta (every key the flow wrote, with Redis's dict and expiry overhead) / users."""
    recs_blob: float
    profile_blob: float
    similar_blob: float
    candidates: float
    """Mean candidates per user list."""
    neighbours: float


def flow_footprint(url: str, users: int, events_per_user: int = 10, items: int = 20_000,
                   seed: int = 11) -> FlowFootprint:
    """Synthetic sessions through the real dataflow and Redis sink; what ends up in Redis, per user and item."""
    settings = Settings.from_env({}, redis_url=url, namespace="memflow", flow_metrics_port=0)
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
        before = used_memory(client)
        events = users * events_per_user
        source = TestingSource(soak_entries(events, users, items, seed=seed), batch_size=settings.read_count)
        run_main(build_flow(settings, source=source, flow_id="livereco-memory-redis"))
        after = used_memory(client)
        ns = settings.namespace
        recs = _scan(client, f"{ns}:{{u:*}}:recs")
        profiles = _scan(client, f"{ns}:{{u:*}}:profile")
        similar = _scan(client, f"{ns}:{{i:*}}:similar")
        sample_recs = recs[:2000]
        sample_similar = similar[:2000]
        candidates = [len(decode_candidates(b).items) for b in client.mget(sample_recs) if b] if sample_recs else []
        neighbours = [len(decode_candidates(b).items) for b in client.mget(sample_similar) if b] \
            if sample_similar else []
        user_usage = sum(_memory_usage(client, recs)) + sum(_memory_usage(client, profiles))
        return FlowFootprint(
            users=users, events=events, recs_keys=len(recs), profile_keys=len(profiles), similar_keys=len(similar),
            user_bytes=user_usage / max(1, len(recs)),
            item_bytes=_mean(_memory_usage(client, similar)),
            used_memory_per_user=(after - before) / users,
            recs_blob=_mean(_strlen(client, recs)), profile_blob=_mean(_strlen(client, profiles)),
            similar_blob=_mean(_strlen(client, similar)),
            candidates=_mean(candidates), neighbours=_mean(neighbours),
        )
    finally:
        client.flushdb()
        client.close()


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


def _sink_options(keys: RedisKeys, settings: Settings) -> SinkOptions:
    return SinkOptions(keys, user_ttl_s=settings.user_ttl_s, item_ttl_s=settings.user_ttl_s,
                       trending_size=settings.trending_size, dead_letter_maxlen=settings.dead_letter_maxlen)


def _write_through_sink(url: str, keys: RedisKeys, writes: Iterator[Write], settings: Settings) -> None:
    partition = RedisSink(url, _sink_options(keys, settings)).build("memory", 0, 1)
    batch: list[Write] = []
    for w in writes:
        batch.append(w)
        if len(batch) == 1000:
            partition.write_batch(batch)
            batch = []
    if batch:
        partition.write_batch(batch)
    partition.close()


@dataclass
class FullFootprint:
    style: str
    users: int
    items: int
    affinities: int
    user_bytes: float
    """used_memory delta / users: recs + profile keys, their TTLs and Redis's dict overhead."""
    item_bytes: float
    recs_key_usage: float
    profile_key_usage: float
    similar_key_usage: float
    recs_blob: float
    profile_blob: float
    similar_blob: float


def full_footprint(url: str, users: int, items: int, style: str = "sku",
                   affinities: int = PROFILE_AFFINITIES) -> FullFootprint:
    """Users and items with full lists, written by the real sink; used_memory deltas and sample key sizes."""
    settings = Settings.from_env({}, redis_url=url, namespace="memfull", flow_metrics_port=0)
    keys = settings.keys
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
        before = used_memory(client)
        _write_through_sink(url, keys, full_user_writes(users, settings.candidates, settings.recent_items, style,
                                                        affinities=affinities), settings)
        middle = used_memory(client)
        _write_through_sink(url, keys, full_item_writes(items, settings.neighbours, style), settings)
        after = used_memory(client)
        sample_users = [user_id(u) for u in range(0, users, max(1, users // 500))]
        sample_items = [item_id(i, style) for i in range(0, items, max(1, items // 500))]
        recs = [keys.user_recs(u).encode() for u in sample_users]
        profiles = [keys.user_profile(u).encode() for u in sample_users]
        similar = [keys.item_similar(i).encode() for i in sample_items]
        return FullFootprint(
            style=style, users=users, items=items, affinities=affinities,
            user_bytes=(middle - before) / users, item_bytes=(after - middle) / items,
            recs_key_usage=_mean(_memory_usage(client, recs)), profile_key_usage=_mean(_memory_usage(client, profiles)),
            similar_key_usage=_mean(_memory_usage(client, similar)),
            recs_blob=_mean(_strlen(client, recs)), profile_blob=_mean(_strlen(client, profiles)),
            similar_blob=_mean(_strlen(client, similar)),
        )
    finally:
        client.flushdb()
        client.close()


# --- alternative encodings (measured only; production encodes with flows/redis_sink.py) ----------------

ALTERNATIVES: dict[str, tuple[str, Callable[[UserListWrite], dict[str, bytes]]]] = {
    "version 1 (orjson, 6-dp scores, full-precision ts; before issue 4)": (
        "keys", lambda w: {"recs": w.recs_blob(1), "profile": w.profile_blob(1)}),
    "as written: version 2 (float16 scores, decimals, whole-second ts, zlib)": (
        "keys", lambda w: {"recs": w.recs_blob(), "profile": w.profile_blob()}),
    "version 2, one hash per user (2 fields, 1 key, 1 TTL)": (
        "hash", lambda w: {"recs": w.recs_blob(), "profile": w.profile_blob()}),
    "version 2 without the profile (recs key only)": ("keys", lambda w: {"recs": w.recs_blob()}),
}
ITEM_ALTERNATIVES: dict[str, Callable[[ItemSimilarWrite], bytes]] = {
    "version 1 (orjson, 6-dp scores)": lambda w: w.blob(1),
    "as written: version 2": lambda w: w.blob(),
}


@dataclass
class Alternative:
    name: str
    per_user: float
    """used_memory delta / users (or items)."""
    usage: float
    """Mean MEMORY USAGE of a user's (item's) keys."""
    blob: float
    """Mean bytes of a user's (item's) blobs."""


def alternative_footprints(url: str, users: int, ttl_s: int = 30 * 86400,
                           affinities: int = PROFILE_AFFINITIES) -> list[Alternative]:
    """Each entry of :data:`ALTERNATIVES` (full lists, sku ids) per user, then :data:`ITEM_ALTERNATIVES` per item."""
    client = redis.Redis.from_url(url)
    settings = Settings.from_env({}, redis_url=url, namespace="memalt", flow_metrics_port=0)
    keys = settings.keys
    out: list[Alternative] = []
    try:
        for name, (mode, encode) in ALTERNATIVES.items():
            client.flushdb()
            before = used_memory(client)
            pipe = client.pipeline(transaction=False)
            written: list[bytes] = []
            blob_bytes = 0
            for w in full_user_writes(users, settings.candidates, settings.recent_items, affinities=affinities):
                blobs = encode(w)
                blob_bytes += sum(len(b) for b in blobs.values())
                if mode == "hash":
                    key = f"{keys.namespace}:{{u:{w.user_id}}}"
                    pipe.hset(key, mapping=blobs)  # type: ignore[arg-type]
                    pipe.expire(key, ttl_s)
                    written.append(key.encode())
                else:
                    for suffix, blob in blobs.items():
                        key = f"{keys.namespace}:{{u:{w.user_id}}}:{suffix}"
                        pipe.set(key, blob, ex=ttl_s)
                        written.append(key.encode())
                if len(pipe) >= 2000:
                    pipe.execute()
            pipe.execute()
            out.append(Alternative(name, (used_memory(client) - before) / users,
                                   sum(_memory_usage(client, written)) / users, blob_bytes / users))
        for name, encode_item in ITEM_ALTERNATIVES.items():
            client.flushdb()
            before = used_memory(client)
            pipe = client.pipeline(transaction=False)
            written, blob_bytes = [], 0
            for item in full_item_writes(users, settings.neighbours):
                blob = encode_item(item)
                blob_bytes += len(blob)
                pipe.set(keys.item_similar(item.item_id), blob, ex=ttl_s)
                written.append(keys.item_similar(item.item_id).encode())
                if len(pipe) >= 2000:
                    pipe.execute()
            pipe.execute()
            out.append(Alternative(f"per item: {name}", (used_memory(client) - before) / users,
                                   sum(_memory_usage(client, written)) / users, blob_bytes / users))
    finally:
        client.flushdb()
        client.close()
    return out


# --------------------------------------------------------------------------- report


def _print_report(flow: FlowFootprint | None, full: list[FullFootprint], alternatives: list[Alternative],
                  result: SoakResult | None, sample_every: int) -> None:
    if flow is not None:
        _print_redis(flow, full, alternatives)
    if result is not None:
        _print_soak(result, sample_every)


def _print_redis(flow: FlowFootprint, full: list[FullFootprint], alternatives: list[Alternative]) -> None:
    kib = TARGET_BYTES_PER_USER
    print(f"\nRedis, as the flow writes it ({flow.events:,} synthetic events of {flow.users:,} users "
          f"through build_flow + RedisSink):")
    print(f"  keys: {flow.recs_keys:,} recs, {flow.profile_keys:,} profile, {flow.similar_keys:,} similar")
    print(f"  per user: {flow.user_bytes:,.0f} B (MEMORY USAGE recs + profile; blobs {flow.recs_blob:,.0f} + "
          f"{flow.profile_blob:,.0f} B, {flow.candidates:.1f} candidates)")
    print(f"  per user, used_memory delta (all keys incl. items, trending, dict/TTL overhead): "
          f"{flow.used_memory_per_user:,.0f} B")
    print(f"  per item: {flow.item_bytes:,.0f} B (MEMORY USAGE similar; blob {flow.similar_blob:,.0f} B, "
          f"{flow.neighbours:.1f} neighbours)")
    if full:
        print(f"\nRedis, full lists (50 candidates, 20 recent items, 50 neighbours; profile: {DIM}-d session "
              f"embedding, {full[0].affinities} affinities), written by RedisSink:")
        print("  B/user: used_memory delta per user; usage: MEMORY USAGE of recs + profile keys")
    print(f"  {'ids':<10}{'B/user':>8}{'usage':>7}{'recs key':>10}{'profile key':>13}{'B/item':>8}{'similar key':>13}"
          "  target (1 KiB)")
    for f in full:
        usage = f.recs_key_usage + f.profile_key_usage
        verdict = "ok" if max(f.user_bytes, usage) <= kib else f"over by {max(f.user_bytes, usage) - kib:,.0f} B"
        print(f"  {f.style:<10}{f.user_bytes:>8,.0f}{usage:>7,.0f}{f.recs_key_usage:>10,.0f}"
              f"{f.profile_key_usage:>13,.0f}{f.item_bytes:>8,.0f}{f.similar_key_usage:>13,.0f}  {verdict}")
        print(f"  {'':<10}blobs: recs {f.recs_blob:,.0f} B, profile {f.profile_blob:,.0f} B, "
              f"similar {f.similar_blob:,.0f} B")
    print("\nEncodings (full lists, sku ids, same users): used_memory delta, MEMORY USAGE and blob bytes per user")
    for a in alternatives:
        print(f"  {a.per_user:>7,.0f} B {a.usage:>7,.0f} B {a.blob:>7,.0f} B  {a.name}")


def _print_soak(result: SoakResult, sample_every: int) -> None:
    grown, pct = result.growth_last_half()
    print(f"\nFlow RSS soak: {result.events:,} events, {result.users:,} users, {result.items:,} items, "
          f"1 worker, discarding sink ({result.events_per_s:,.0f} events/s, {result.seconds:,.0f} s)")
    print(f"  {'events':>12}{'users seen':>12}{'events/user':>13}{'RSS MiB':>10}{'B/event since last':>20}"
          f"{'seconds':>9}")
    print(f"  {'(before)':>12}{0:>12,}{0:>13}{result.baseline_mib:>10.1f}{'':>20}{0:>9}")
    previous = RssSample(0, 0, result.baseline_mib, 0.0)
    for s in result.samples:
        per_event = (s.rss_mib - previous.rss_mib) * 2**20 / max(1, s.events - previous.events)
        print(f"  {s.events:>12,}{s.users_seen:>12,}{s.events / result.users:>13.1f}{s.rss_mib:>10.1f}"
              f"{per_event:>20,.0f}{s.seconds:>9.0f}")
        previous = s
    print(f"  growth over the last half: {grown:+.1f} MiB ({pct:+.1f} %); "
          f"flow state per user: {result.per_user_bytes():,.0f} B ((final − before) / users)")
    print(f"  writes: {', '.join(f'{k} {v:,}' for k, v in sorted(result.writes.items()))}")
    print(f"  sampled every {sample_every:,} events")


def _state_breakdown(args: argparse.Namespace, machine: str, settings: Settings, flow: FlowFootprint | None,
                     full: list[FullFootprint], alternatives: list[Alternative]) -> int:
    """The soak instrumented by :mod:`benchmarks.memory_breakdown` (imported here: it imports this module)."""
    from benchmarks.memory_breakdown import in_child, print_breakdown, run_breakdown

    points = [args.events * (i + 1) // args.breakdown_points for i in range(max(1, args.breakdown_points))]
    breakdown = in_child(run_breakdown, settings, args.events, args.users, args.items, points,
                         args.breakdown_sample)
    if args.json:
        print(orjson.dumps({"machine": machine, "redis_flow": asdict(flow) if flow else None,
                            "redis_full": [asdict(f) for f in full], "alternatives": [asdict(a) for a in alternatives],
                            "breakdown": asdict(breakdown)}, option=orjson.OPT_INDENT_2).decode())
        return 0
    if flow is not None:
        _print_redis(flow, full, alternatives)
    print_breakdown(breakdown)
    print(machine)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=2_000_000, help="soak events")
    parser.add_argument("--users", type=int, default=200_000, help="soak users (they come round in a cycle)")
    parser.add_argument("--items", type=int, default=50_000, help="catalog size (Zipf popularity)")
    parser.add_argument("--sample-every", type=int, default=100_000, help="RSS sample interval, in events")
    parser.add_argument("--redis-users", type=int, default=20_000,
                        help="users for the Redis measurements (10 events each through the flow)")
    parser.add_argument("--no-redis", action="store_true", help="only the RSS soak")
    parser.add_argument("--no-soak", action="store_true", help="only the Redis measurements (no RSS soak)")
    parser.add_argument("--affinities", type=int, default=PROFILE_AFFINITIES,
                        help="category affinities in each full user's profile (the flow writes 5, keeps up to 16)")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke check in about half a minute")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of tables")
    parser.add_argument("--user-ttl-s", type=int, default=None,
                        help="LIVERECO_USER_TTL_S for the soak's flow (default: the setting's default)")
    parser.add_argument("--state-breakdown", action="store_true",
                        help="instrumented soak: bytes per user and per item for each state structure")
    parser.add_argument("--breakdown-points", type=int, default=4, help="with --state-breakdown: how many tables")
    parser.add_argument("--breakdown-sample", type=int, default=1000,
                        help="with --state-breakdown: keys walked per stage at each point (0: all)")
    args = parser.parse_args(argv)
    if args.quick:
        args.events, args.users, args.items, args.sample_every, args.redis_users = 60_000, 6_000, 5_000, 10_000, 1_000
    machine = machine_line()
    if not args.json:
        print(machine)
    flow: FlowFootprint | None = None
    full: list[FullFootprint] = []
    alternatives: list[Alternative] = []
    if not args.no_redis:
        with EmbeddedRedis() as server:
            flow = flow_footprint(server.url, args.redis_users, items=min(args.items, 20_000))
            full = [full_footprint(server.url, args.redis_users, args.redis_users // 4, style, args.affinities)
                    for style in ("sku", "numeric")]
            alternatives = alternative_footprints(server.url, args.redis_users, affinities=args.affinities)
    overrides: dict[str, Any] = {} if args.user_ttl_s is None else {"user_ttl_s": args.user_ttl_s}
    settings = Settings.from_env({}, redis_url="", flow_metrics_port=0, **overrides)
    if args.state_breakdown:
        return _state_breakdown(args, machine, settings, flow, full, alternatives)
    if args.no_soak:
        if args.json:
            print(orjson.dumps({"machine": machine, "redis_flow": asdict(flow) if flow else None,
                                "redis_full": [asdict(f) for f in full],
                                "alternatives": [asdict(a) for a in alternatives]}, option=orjson.OPT_INDENT_2).decode())
        else:
            _print_report(flow, full, alternatives, None, args.sample_every)
            print(machine)
        return 0
    result = soak_in_child(settings, args.events, args.users, args.items, args.sample_every)
    if args.json:
        grown, pct = result.growth_last_half()
        print(orjson.dumps({
            "machine": machine, "redis_flow": asdict(flow) if flow else None, "redis_full": [asdict(f) for f in full],
            "alternatives": [asdict(a) for a in alternatives],
            "soak": {**asdict(result), "events_per_s": round(result.events_per_s, 1),
                     "growth_last_half_mib": round(grown, 1), "growth_last_half_pct": round(pct, 2),
                     "per_user_bytes": round(result.per_user_bytes())},
        }, option=orjson.OPT_INDENT_2).decode())
        return 0
    _print_report(flow, full, alternatives, result, args.sample_every)
    print(machine)
    return 0


if __name__ == "__main__":
    sys.exit(main())
