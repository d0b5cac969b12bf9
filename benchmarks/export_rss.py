"""``livereco export``'s peak RSS for 10k and 100k users (bounded memory: it must not grow with the users), and the
server's catalog copy's memory for the same 100k-item catalog.

Users' lists are written with the sink's encoder (50 candidates each, as :mod:`benchmarks.serving`); the
catalog is :func:`benchmarks.serving_filters.seed_catalog`'s. The export runs as ``livereco export`` in a
child process writing to /dev/null; its peak RSS is the child's ``ru_maxrss``.

    .venv/bin/python -m benchmarks.export_rss [--users 100000] [--items 100000]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
import tracemalloc

import redis

from benchmarks.serving_filters import seed_catalog
from benchmarks.serving_harness import ROOT
from flows.catalog_store import run_steps
from flows.embedded_redis import EmbeddedRedis
from online.catalog.protocol import CatalogCommands
from online.catalog.snapshot import CatalogReplica
from online.contract import CandidateList, RedisKeys, encode_candidates


def seed_users(url: str, namespace: str, start: int, stop: int) -> None:
    client = redis.Redis.from_url(url)
    keys = RedisKeys(namespace, 4)
    pipe = client.pipeline(transaction=False)
    for u in range(start, stop):
        items = [f"sku-{(u * 31 + k) % 5000:05d}" for k in range(50)]
        pipe.set(keys.user_recs(f"u{u}"), encode_candidates(CandidateList(items, [1.0 / (k + 1) for k in range(50)])))
        if len(pipe) >= 5000:
            pipe.execute()
    pipe.execute()


def export_rss_mib(url: str, namespace: str) -> tuple[float, float]:
    """(peak RSS of ``livereco export`` in MiB, seconds)."""
    env = {**os.environ, "REDIS_URL": url, "LIVERECO_NAMESPACE": namespace, "PYTHONPATH": str(ROOT)}
    began = time.monotonic()
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    subprocess.run([sys.executable, "-m", "flows.cli", "export", "--format", "jsonl", "--n", "20", "-o", os.devnull,
                    "--no-progress"], env=env, cwd=ROOT, check=True)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(peak, before) / 1024, time.monotonic() - began


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=100_000)
    args = parser.parse_args()
    namespace = "rss"
    with EmbeddedRedis() as server:
        seed_catalog(server.url, namespace, args.items)
        client = redis.Redis.from_url(server.url)
        tracemalloc.start()
        replica = CatalogReplica(CatalogCommands(RedisKeys(namespace, 4)))
        run_steps(client, replica.refresh())
        size, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(f"catalog copy (CatalogReplica, {len(replica.snapshot):,} items): {size / 2**20:.1f} MiB "
              f"({size / len(replica.snapshot):.0f} B an item)", flush=True)
        del replica
        small = args.users // 10
        seed_users(server.url, namespace, 0, small)
        rss, took = export_rss_mib(server.url, namespace)
        print(f"livereco export, {small:,} users: peak RSS {rss:.0f} MiB, {took:.1f} s", flush=True)
        seed_users(server.url, namespace, small, args.users)
        rss, took = export_rss_mib(server.url, namespace)
        print(f"livereco export, {args.users:,} users: peak RSS {rss:.0f} MiB, {took:.1f} s "
              f"({args.users / took:,.0f} users/s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
