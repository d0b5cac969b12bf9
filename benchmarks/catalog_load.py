"""``livereco catalog load`` at scale: time, and Redis bytes an item.

``python -m benchmarks.catalog_load [--items 1000000]`` writes a JSONL file of synthetic items
(:func:`benchmarks.catalog_assemble.synthetic_items`: title, one category path, brand, price, stock,
creation time, two attributes, sometimes a tag; ~230 B of JSON each), starts an embedded
redis-server of its own (or uses ``REDIS_URL``'s, under a fresh namespace), loads the file with
:func:`flows.catalog_store.load_catalog` as the CLI does, and prints the time and ``INFO memory``'s
``used_memory`` before and after, per item, with the share of the change stream (``MEMORY USAGE``).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import uuid
from pathlib import Path

import redis

from benchmarks.catalog_assemble import synthetic_items
from flows.catalog_store import CatalogStore, load_catalog
from flows.embedded_redis import EmbeddedRedis
from online.catalog.item import encode_item
from online.contract import RedisKeys


def write_items(path: Path, count: int) -> None:
    with path.open("wb") as out:
        for start in range(0, count, 100_000):
            out.write(b"".join(encode_item(item) + b"\n"
                               for item in synthetic_items(min(100_000, count - start), seed=start, first=start)))


def measure(url: str, path: Path, count: int) -> None:
    client = redis.Redis.from_url(url)
    keys = RedisKeys(f"bench{uuid.uuid4().hex[:6]}")
    before = int(client.info("memory")["used_memory"])
    report = load_catalog(path, CatalogStore(client, keys), progress=True)
    after = int(client.info("memory")["used_memory"])
    stream = int(client.memory_usage(keys.catalog_changes()) or 0)
    print(report.summary())
    print(f"used_memory: {before / 2**20:,.1f} MiB -> {after / 2**20:,.1f} MiB: {(after - before) / count:,.0f} B an item"
          f" in all; the change stream ({client.xlen(keys.catalog_changes()):,} entries) {stream / 2**20:,.1f} MiB of it,"
          f" so {(after - before - stream) / count:,.0f} B an item in the items hash")
    print(f"file: {path.stat().st_size / count:,.0f} B of JSON an item")
    client.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "items.jsonl"
        write_items(path, args.items)
        url = os.environ.get("REDIS_URL")
        if url:
            measure(url, path, args.items)
            return
        with EmbeddedRedis() as server:
            measure(server.url, path, args.items)


if __name__ == "__main__":
    main()
