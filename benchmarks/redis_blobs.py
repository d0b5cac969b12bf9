"""A full user's Redis blobs broken down by part, and compressed encodings measured in Redis.

Measured only: production encodes with ``flows/redis_sink.py``
(:mod:`benchmarks.redis_footprint` measures what it writes).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from benchmarks.memory_probes import used_memory
from benchmarks.memory_workload import full_user_writes
from flows.embedded_redis import EmbeddedRedis

__all__ = ["REDIS_ALTERNATIVES", "redis_alternatives", "redis_blob_composition"]


def redis_blob_composition(users: int = 2000) -> list[tuple[str, float]]:
    """Mean bytes of a full user's two version-1 (JSON) blobs (``full_user_writes``: 50 candidates, 20 recent), by part.

    The parts are measured by encoding each part alone with orjson (so quotes,
    commas and brackets are counted with the part they belong to); compressed
    sizes use the standard library's zlib (no dictionary, per blob). The last
    rows are the version-2 blobs the sink writes.
    """
    import zlib

    import orjson

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
        rows["version-3 recs blob (as written)"] += len(w.recs_blob())
        rows["version-3 profile blob (as written)"] += len(w.profile_blob())
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
    "version 2 (2 keys)": lambda w: {"recs": w.recs_blob(2), "profile": w.profile_blob(2)},
    "as written: version 3 (2 keys)": lambda w: {"recs": w.recs_blob(), "profile": w.profile_blob()},
}
"""Encodings measured in Redis (nothing in production changes): ``used_memory`` delta per user, 2 string keys + TTL."""


def redis_alternatives(users: int = 20_000, ttl_s: int = 30 * 86400, style: str = "sku"
                       ) -> list[tuple[str, float, float]]:
    """(name, used_memory delta per user, mean blob bytes per user) for each of :data:`REDIS_ALTERNATIVES`."""
    import redis

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
