"""What the catalog costs a server: its in-process copy's memory, and assemble() per request.

``python -m benchmarks.catalog_assemble [--items 100000] [--requests 2000]`` builds a synthetic
catalog (200 categories three levels deep, 500 brands, prices, a few attributes and tags), measures
the snapshot's memory with tracemalloc, then times :func:`online.catalog.assemble.assemble` on
requests shaped like the server's (the blend of 50 personal and 50 trending candidates plus 100
trending items to refill from): no filters (the default stock filter and diversity cap), no catalog
at all, typical filters (a category, a price range, an attribute), and filters plus rules (a block,
two boosts, new arrivals, a pin and a promotion). It prints medians and p99 in µs.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time
import tracemalloc
from collections.abc import Callable

from online.blend import Pool, blend
from online.catalog.assemble import assemble
from online.catalog.filters import Filters
from online.catalog.item import Item, decode_item, encode_item, parse_item
from online.catalog.rules import parse_rules
from online.catalog.snapshot import CatalogSnapshot

NOW = 1_750_000_000.0


def synthetic_items(count: int, seed: int = 7, first: int = 0) -> list[Item]:
    """``count`` items as a shop might have them (ids ``sku-<first>``, ``sku-<first + 1>``...)."""
    rng = random.Random(seed)
    categories = [f"dept{a}/group{a}-{b}/kind{a}-{b}-{c}" for a in range(5) for b in range(5) for c in range(8)]
    items = []
    for number in range(first, first + count):
        raw = {"item_id": f"sku-{number:07d}", "title": f"Product {number}", "categories": [rng.choice(categories)],
               "brand": f"brand{rng.randrange(500)}", "price": round(rng.uniform(1, 1000), 2),
               "in_stock": rng.random() < 0.9, "created_at": NOW - rng.uniform(0, 365 * 86400),
               "attributes": {"color": rng.choice(["red", "blue", "black", "white"]), "size": rng.randrange(30, 50)},
               "tags": ["sale"] if rng.random() < 0.05 else []}
        items.append(parse_item(raw))
    return items


def snapshot_memory(items: list[Item]) -> tuple[CatalogSnapshot, int]:
    """The snapshot of ``items`` built as a server builds it (from the stored JSON), and the bytes it holds."""
    blobs = [encode_item(item) for item in items]
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    snapshot = CatalogSnapshot()
    for blob in blobs:
        snapshot.put(decode_item(blob))  # the item is dropped; its id string stays, as the snapshot's key
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return snapshot, after - before


def _median_p99(samples: list[float]) -> tuple[float, float]:
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args(argv)
    items = synthetic_items(args.items)
    snapshot, used = snapshot_memory(items)
    print(f"snapshot of {len(snapshot):,} items: {used / 2**20:.1f} MiB, {used / len(snapshot):.0f} B an item"
          " (tracemalloc: the id strings, arrays and shared sets)")
    rng = random.Random(11)
    ids = [item.item_id for item in items]
    requests = []
    for _ in range(args.requests):
        chosen = rng.sample(ids, 200)
        pool = Pool(personal=[(item, 50.0 - k) for k, item in enumerate(chosen[:50])],
                    trending=[(item, 1.0 / (k + 1)) for k, item in enumerate(chosen[50:100])])
        requests.append((blend(pool, {}, n=100), [(item, 1.0 / (k + 1)) for k, item in enumerate(chosen[100:])]))
    rules = parse_rules({"rules": [
        {"kind": "block", "brands": ["brand1", "brand2"]},
        {"kind": "boost", "factor": 2.0, "categories": ["dept1"]},
        {"kind": "bury", "factor": 0.5, "tags": ["sale"]},
        {"kind": "new_arrivals", "days": 30, "factor": 1.5},
        {"kind": "pin", "item": ids[0], "position": 1},
        {"kind": "promotion", "slots": 2, "of": 10, "filter": {"brands": [f"brand{b}" for b in range(50)]}}]})
    filtered = Filters.from_query({"category": "dept1", "min_price": "10", "max_price": "800", "attr.color": "red"})
    empty = CatalogSnapshot()
    cases: list[tuple[str, Callable[[tuple[list, list]], object]]] = [
        ("no catalog (exclusions only)", lambda r: assemble(r[0], empty, n=10, trending=r[1], now=NOW)),
        ("100k catalog, default filters + diversity", lambda r: assemble(r[0], snapshot, n=10, trending=r[1], now=NOW)),
        ("+ category, price range, attribute", lambda r: assemble(r[0], snapshot, n=10, filters=filtered,
                                                                  trending=r[1], now=NOW)),
        ("+ rules (block, boost, bury, new arrivals, pin, promotion)",
         lambda r: assemble(r[0], snapshot, n=10, filters=filtered, rules=rules, trending=r[1], now=NOW)),
    ]
    for name, case in cases:
        samples = []
        for request in requests:
            started = time.perf_counter()
            case(request)
            samples.append((time.perf_counter() - started) * 1e6)
        median, p99 = _median_p99(samples)
        print(f"{name:60s} median {median:7.1f} µs   p99 {p99:7.1f} µs")


if __name__ == "__main__":
    main()
