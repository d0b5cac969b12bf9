"""How the responding shop answers kinds of lists, with the simulator alone (no server): clicks per list, and carts
and purchases per click, for lists of the shopper's taste, random lists, the most popular items, and a worse ranking.

Each kind runs the same simulation (seed, shoppers, catalog) with its lists given by a ``fetch`` function: the
figures behind docs/lift.md's statements on the click model and on conversions.

    .venv/bin/python -m benchmarks.responding_shop [--events 60000] [--users 1000]
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Callable

from flows.synthetic_shop import Catalog, Listing, ShopSimulator

ListMaker = Callable[[ShopSimulator, str, random.Random], list[str]]


def respond(catalog: Catalog, make_list: ListMaker, users: int, events: int, seed: int = 7) -> dict[str, float]:
    """Lists shown, and clicks per list, carts and purchases (carrying the ``rec_id``) per click."""
    sim = ShopSimulator(catalog, n_users=users, seed=seed, events_per_s=200)
    rng = random.Random(seed)
    shown = 0

    def fetch(user_id: str) -> Listing:
        nonlocal shown
        shown += 1
        return f"r{shown}", make_list(sim, user_id, rng)

    counts = {"view": 0, "add_to_cart": 0, "purchase": 0}
    for event in sim.events(limit=events, fetch=fetch):
        if "rec_id" in event:
            counts[event["type"]] += 1
    clicks = counts["view"]
    return {"lists": shown, "clicks_per_list": clicks / shown, "carts_per_click": counts["add_to_cart"] / clicks,
            "purchases_per_click": counts["purchase"] / clicks}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--items", type=int, default=2000)
    args = parser.parse_args()
    catalog = Catalog.generate(n_items=args.items, seed=7)
    popular = [catalog.item_ids[i] for i in sorted(range(len(catalog)), key=lambda i: -catalog.popularity[i])[:10]]
    liked: dict[str, list[str]] = {}

    def by_taste(sim: ShopSimulator, user_id: str, rng: random.Random) -> list[str]:
        if user_id not in liked:  # the ten items liked best (as at the shopper's first list), of any popularity
            liked[user_id] = sorted(catalog.item_ids, key=lambda item: (-sim.appeal(user_id, item), rng.random()))[:10]
        return liked[user_id]

    kinds: dict[str, ListMaker] = {
        "taste (the 10 liked best)": by_taste,
        "random": lambda sim, user_id, rng: rng.sample(catalog.item_ids, 10),
        "the 10 most popular": lambda sim, user_id, rng: popular,
        "5 liked, then 5 random": lambda sim, user_id, rng: by_taste(sim, user_id, rng)[:5] + rng.sample(
            catalog.item_ids, 5),
        "5 random, then 5 liked": lambda sim, user_id, rng: rng.sample(catalog.item_ids, 5) + by_taste(
            sim, user_id, rng)[:5],
    }
    print(f"the responding shop alone: {args.events:,} events, {args.users:,} shoppers, {args.items:,} items, seed 7")
    print(f"{'lists':<26} {'shown':>7} {'clicks/list':>12} {'carts/click':>12} {'purchases/click':>16}")
    for name, make_list in kinds.items():
        liked.clear()
        r = respond(catalog, make_list, args.users, args.events)
        print(f"{name:<26} {r['lists']:>7,.0f} {r['clicks_per_list']:>12.3f} {r['carts_per_click']:>12.3f}"
              f" {r['purchases_per_click']:>16.3f}")


if __name__ == "__main__":
    main()
