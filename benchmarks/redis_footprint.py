"""Redis bytes per user and per item: as the flow writes them, with full lists, and in other encodings.

* :func:`flow_footprint`: synthetic sessions through the real dataflow and
  Redis sink; the ``MEMORY USAGE`` of each user's and item's keys and the
  ``used_memory`` delta.
* :func:`full_footprint`: every user and item at its bound
  (:mod:`benchmarks.memory_workload`), written by the real sink.
* :func:`alternative_footprints`: the same users in the previous encoding and
  other layouts (measured only; production encodes with ``flows/redis_sink.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import redis
from bytewax.testing import TestingSource, run_main

from benchmarks.memory_probes import used_memory
from benchmarks.memory_workload import (
    PROFILE_AFFINITIES,
    full_item_writes,
    full_user_writes,
    item_id,
    soak_entries,
    user_id,
)
from flows.dataflow import build_flow
from flows.redis_sink import ItemSimilarWrite, RedisSink, SinkOptions, UserListWrite, Write
from online.contract import RedisKeys, Settings, decode_candidates
from online.item_embedding import DIM

__all__ = ["ALTERNATIVES", "ITEM_ALTERNATIVES", "Alternative", "FlowFootprint", "FullFootprint",
           "alternative_footprints", "flow_footprint", "full_footprint", "print_redis"]

TARGET_BYTES_PER_USER = 1024


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
    "version 2 (float16 scores, decimals, whole-second ts, zlib)": (
        "keys", lambda w: {"recs": w.recs_blob(2), "profile": w.profile_blob(2)}),
    "as written: version 3 (version 2's numbers, ids packed as numbers, no zlib)": (
        "keys", lambda w: {"recs": w.recs_blob(), "profile": w.profile_blob()}),
    "version 3, one hash per user (2 fields, 1 key, 1 TTL)": (
        "hash", lambda w: {"recs": w.recs_blob(), "profile": w.profile_blob()}),
    "version 3 without the profile (recs key only)": ("keys", lambda w: {"recs": w.recs_blob()}),
}
ITEM_ALTERNATIVES: dict[str, Callable[[ItemSimilarWrite], bytes]] = {
    "version 1 (orjson, 6-dp scores)": lambda w: w.blob(1),
    "version 2": lambda w: w.blob(2),
    "as written: version 3": lambda w: w.blob(),
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


def print_redis(flow: FlowFootprint, full: list[FullFootprint], alternatives: list[Alternative]) -> None:
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
