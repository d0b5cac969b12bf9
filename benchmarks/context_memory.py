"""What context features cost in memory: a ranker replica's segments at their bound, and Redis's copy of them.

``python -m benchmarks.context_memory`` prints the figures the README quotes:

* a ranker replica's :class:`~online.context_popularity.ContextPopularity`, every
  segment at its bound (``LIVERECO_CONTEXT_ITEMS`` items) with its cached
  relative popularity (what scoring reads), measured with ``tracemalloc`` over
  the structure alone (item ids and segment names are allocated before measuring:
  the flow shares them);
* Redis's copy, ``lr:context:<shard>``: ``MEMORY USAGE`` of the hash the sink
  writes from the replica's published tops (the embedded Redis of the test suite).
"""

from __future__ import annotations

import argparse
import random
import sys

import orjson

from benchmarks.allocation import allocated
from flows.embedded_redis import EmbeddedRedis
from flows.redis_client import connect
from online.context_popularity import ContextPopularity

__all__ = ["main", "replica"]


def replica(segments: int, per_segment: int, items: int = 20_000, seed: int = 1) -> tuple[ContextPopularity, int]:
    """A replica with ``segments`` full segments, and the bytes it allocated."""
    rng = random.Random(seed)
    ids = [sys.intern(f"item-{n:06d}") for n in range(items)]
    names = [sys.intern(f"hour={h}") for h in range(24)] + [sys.intern(f"device=d{d}") for d in range(segments - 24)]
    names = names[:segments]
    events = [(rng.choice(names), rng.choice(ids), float(step)) for step in range(segments * per_segment * 8)]

    def build() -> ContextPopularity:
        popularity = ContextPopularity(per_segment=per_segment, max_segments=segments)
        for segment, item, ts in events:
            popularity.learn_one(segment, item, ts)
        return popularity

    popularity, size = allocated(build)
    assert len(popularity) == segments and all(len(popularity.relative(s)) == per_segment for s in names)
    return popularity, size


def redis_bytes(popularity: ContextPopularity) -> tuple[int, int]:
    """``MEMORY USAGE`` of the published hash, and its fields' JSON bytes."""
    tops = popularity.changed_tops()
    fields = {segment: orjson.dumps(top) for segment, top in tops.items()}
    with EmbeddedRedis() as server:
        client = connect(server.url)
        client.hset("context", mapping=fields)  # type: ignore[arg-type]
        usage = int(client.memory_usage("context"))
        client.close()
    return usage, sum(len(blob) for blob in fields.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segments", type=int, default=64, help="segments in the replica (64: the bound)")
    parser.add_argument("--per-segment", type=int, default=50, help="LIVERECO_CONTEXT_ITEMS")
    args = parser.parse_args(argv)
    popularity, flow = replica(args.segments, args.per_segment)
    print(f"ranker replica, {args.segments} segments x {args.per_segment} items: {flow / 2**20:.2f} MiB, "
          f"{flow / args.segments / 1024:.1f} KB per segment, {flow / args.segments / args.per_segment:.0f} B per item")
    usage, json_bytes = redis_bytes(popularity)
    print(f"Redis, lr:context:<shard>: MEMORY USAGE {usage / 1024:.0f} KB ({json_bytes / 1024:.0f} KB of JSON), "
          "read whole by each server process once a second")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
