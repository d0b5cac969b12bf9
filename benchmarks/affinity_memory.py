"""What affinity candidates cost in memory: per category in a ranker replica, per user in the flow and in Redis.

``python -m benchmarks.affinity_memory`` prints the figures the README quotes:

* a ranker replica's :class:`~online.affinity_candidates.CategoryTrending`, every
  category at its bound (``LIVERECO_AFFINITY_ITEMS`` items), measured with
  ``tracemalloc`` over the structure alone (item ids are the catalog's, shared
  with the rest of the flow, and allocated before measuring);
* a user's share in the flow: the affinities their :class:`~flows.stages.PersonalPool`
  keeps (``LIVERECO_AFFINITY_CATEGORIES`` pairs; category names are interned and shared);
* a user's share in Redis: ``MEMORY USAGE`` of their list with and without the
  affinities it carries (the embedded Redis of the test suite).
"""

from __future__ import annotations

import argparse
import random
import sys

from benchmarks.allocation import allocated
from flows.embedded_redis import EmbeddedRedis
from flows.redis_client import connect
from online.affinity_candidates import CategoryTrending
from online.contract import CandidateList, encode_candidates, quantize_affinity

__all__ = ["main"]


def replica_bytes(categories: int, per_category: int, items: int = 20_000, seed: int = 1) -> int:
    """Bytes allocated by a :class:`CategoryTrending` holding ``categories`` full categories."""
    rng = random.Random(seed)
    ids = [sys.intern(f"item-{n:06d}") for n in range(items)]
    names = [sys.intern(f"category-{c:04d}") for c in range(categories)]
    updates = [(rng.choice(ids), rng.choice(names), float(step) + rng.random()) for step in range(categories * 200)]

    def build() -> CategoryTrending:
        trending = CategoryTrending(per_category=per_category, max_categories=categories)
        for item, category, score in updates:
            trending.learn_one(item, category, score)
        for category in names:
            trending.tops(category, per_category)  # the cached read a replica keeps
        return trending

    trending, size = allocated(build)
    assert len(trending) == categories and all(len(trending.tops(c, per_category)) == per_category for c in names)
    return size


def user_flow_bytes(categories: int) -> int:
    """A user's pool affinities in the flow: the list and its (name, score) pairs (names shared)."""
    pairs = [(sys.intern(f"category-{c:04d}"), quantize_affinity(1.0 / (c + 1))) for c in range(categories)]
    return sys.getsizeof(pairs) + sum(sys.getsizeof(pair) + sys.getsizeof(pair[1]) for pair in pairs)


def user_redis_bytes(categories: int) -> tuple[int, int, int, int]:
    """``MEMORY USAGE`` of a full 50-candidate list without and with ``categories`` affinities, and the blobs' sizes."""
    rng = random.Random(2)
    items = [f"sku-{rng.randrange(10**6):06d}" for _ in range(50)]
    scores = sorted((rng.random() * 10 for _ in items), reverse=True)
    affinities = [(f"category-{c:04d}", quantize_affinity(1.0 / (c + 1))) for c in range(categories)]
    plain = encode_candidates(CandidateList(items, scores, event_ts=1.7e9, accepted_ms=1_700_000_000_000))
    with_affinities = encode_candidates(CandidateList(items, scores, event_ts=1.7e9, accepted_ms=1_700_000_000_000,
                                                      affinities=affinities))
    with EmbeddedRedis() as server:
        client = connect(server.url)
        client.set("plain", plain)
        client.set("with", with_affinities)
        usage = (int(client.memory_usage("plain")), int(client.memory_usage("with")))
        client.close()
    return usage[0], usage[1], len(plain), len(with_affinities)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--categories", type=int, default=1000, help="categories in the replica (all at their bound)")
    parser.add_argument("--per-category", type=int, default=20, help="LIVERECO_AFFINITY_ITEMS")
    parser.add_argument("--user-categories", type=int, default=3, help="LIVERECO_AFFINITY_CATEGORIES")
    args = parser.parse_args(argv)
    total = replica_bytes(args.categories, args.per_category)
    print(f"ranker replica, {args.categories:,} categories x {args.per_category} items: {total / 2**20:.1f} MiB, "
          f"{total / args.categories:,.0f} B per category ({total / args.categories / args.per_category:,.0f} B per item)")
    print(f"flow, per user: {user_flow_bytes(args.user_categories)} B ({args.user_categories} affinities in the pool)")
    plain, with_affinities, blob_plain, blob_with = user_redis_bytes(args.user_categories)
    print(f"Redis, per user: list MEMORY USAGE {plain} -> {with_affinities} B (+{with_affinities - plain}); "
          f"blob {blob_plain} -> {blob_with} B (+{blob_with - blob_plain})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
