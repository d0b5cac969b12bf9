"""After a purchase: what the "no second treadmill" rule does to a buyer's list, on the synthetic shop.

Replays a seeded synthetic-shop stream (:mod:`flows.synthetic_shop`: purchases
steer later sessions to complementary categories, and a category bought in is
rarely bought in again) through :class:`flows.model.LiverecoModel`, the
dataflow's stages in one process, once per setting, and prints for each:

* right after every purchase, the share of the buyer's personal top 20 (the
  stored list) and of the served top 20 (blended with trending) in the
  bought item's category, and the share of what buyers of the item bought next
  (the top 10, counted from the stream so far, the same for every setting)
  that is in the personal top 20;
* HR@20 of the served list for the buyer's first view after a purchase, and
  for every view of a user seen before (the rule must not cost the rest).

Columns: ``kind personal`` and ``kind served`` (share of the top 20 in the
bought category), ``bought next`` (share of what buyers bought next found in
the personal top 20), ``HR next view`` and ``HR all views``. The same with the
events' categories removed shows what the rule does without them.

    .venv/bin/python -m benchmarks.purchase_window                    # 100,000 events of 1,000 users
    .venv/bin/python -m benchmarks.purchase_window --events 24000 --users 300
"""

from __future__ import annotations

import argparse
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from benchmarks.machine import machine_line
from flows.model import LiverecoModel
from flows.synthetic_shop import Catalog, ShopSimulator
from online.contract import Event, Settings, parse_event

__all__ = ["PurchaseEffect", "measure", "shop_events"]

TOP = 20
BOUGHT_NEXT = 10


@dataclass
class PurchaseEffect:
    """What one setting did after the purchases of a stream (means over purchases or views)."""

    purchases: int = 0
    personal_share: list[float] = field(default_factory=list)
    """Per purchase: share of the personal top 20 in the bought item's category."""
    served_share: list[float] = field(default_factory=list)
    bought_next_found: list[float] = field(default_factory=list)
    """Per purchase of an item someone had bought something after: share of those items in the personal top 20."""
    after_hits: list[bool] = field(default_factory=list)
    """Per purchase followed by a view of the buyer: that view in the served top 20."""
    after_same_category: list[bool] = field(default_factory=list)
    """Per such view: in the bought item's category (what the buyer really did)."""
    view_hits: list[bool] = field(default_factory=list)
    events_per_s: float = 0.0

    @staticmethod
    def mean(values: Sequence[float]) -> float:
        return sum(values) / len(values) if values else float("nan")

    def row(self) -> dict[str, float]:
        return {
            "kind personal": self.mean(self.personal_share),
            "kind served": self.mean(self.served_share),
            "bought next": self.mean(self.bought_next_found),
            "HR next view": self.mean(self.after_hits),
            "HR all views": self.mean(self.view_hits),
        }


def shop_events(n_events: int, n_users: int, seed: int = 3, n_items: int = 1000,
                categories: bool = True) -> tuple[Catalog, list[Event]]:
    """A seeded synthetic-shop stream as contract events; ``categories=False`` drops ``context.category``."""
    catalog = Catalog.generate(n_items=n_items, n_categories=20, seed=seed)
    raw = list(ShopSimulator(catalog, n_users=n_users, seed=seed, events_per_s=20.0).events(limit=n_events))
    if not categories:
        for event in raw:
            event["context"].pop("category", None)
    return catalog, [parse_event(event, now=event["ts"]) for event in raw]


def measure(events: Iterable[Event], catalog: Catalog, settings: Settings) -> PurchaseEffect:
    """Run ``events`` through a fresh :class:`LiverecoModel` and record what followed each purchase."""
    model = LiverecoModel(settings)
    effect = PurchaseEffect()
    window = Settings().purchase_window_s  # the default, whatever the setting measured
    bought_after: defaultdict[str, Counter[str]] = defaultdict(Counter)
    """Item -> what its buyers bought within the window after it (from the stream so far)."""
    purchases: defaultdict[str, list[tuple[str, float]]] = defaultdict(list)
    waiting: dict[str, str] = {}
    """Buyer -> category of their latest purchase, until their next view."""
    started = time.perf_counter()
    count = 0
    for event in events:
        count += 1
        user = event.user_id
        if event.type == "view" and user in model.user_lists:
            hit = event.item_id in model.recommend(user, TOP)
            effect.view_hits.append(hit)
            bought_category = waiting.pop(user, None)
            if bought_category is not None:
                effect.after_hits.append(hit)
                effect.after_same_category.append(catalog.category_of(event.item_id) == bought_category)
        model.learn_one(event)
        if event.type != "purchase":
            continue
        category = catalog.category_of(event.item_id)
        effect.purchases += 1
        pool = model.user_lists[user].state.previous
        personal = [item for item, _ in pool.ranked[:TOP]] if pool is not None else []
        served = model.recommend(user, TOP)
        if personal:
            effect.personal_share.append(sum(catalog.category_of(i) == category for i in personal) / len(personal))
        if served:
            effect.served_share.append(sum(catalog.category_of(i) == category for i in served) / len(served))
        following = [item for item, _ in bought_after[event.item_id].most_common(BOUGHT_NEXT)]
        if following:
            effect.bought_next_found.append(sum(item in personal for item in following) / len(following))
        for earlier, ts in purchases[user]:
            if earlier != event.item_id and event.ts - ts < window:
                bought_after[earlier][event.item_id] += 1
        purchases[user] = [*purchases[user][-7:], (event.item_id, event.ts)]
        waiting[user] = category
    effect.events_per_s = count / (time.perf_counter() - started)
    return effect


SETTINGS: list[dict[str, Any]] = [
    {"purchase_window_s": 0.0},
    {"purchase_boost": 0.0},
    {"purchase_demote": 1.0},
    {"purchase_demote": 0.0},
    {"purchase_boost": 1.0},
    {},
]
"""Overrides measured (``{}``: the defaults)."""


def _label(overrides: dict[str, Any]) -> str:
    settings = Settings(**overrides)
    if settings.purchase_window_s == 0.0:
        return "rule off (WINDOW_S=0)"
    label = f"DEMOTE={settings.purchase_demote:g}, BOOST={settings.purchase_boost:g}"
    return label + (" (defaults)" if settings == Settings() else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args(argv)
    print(machine_line())
    for categories in (True, False):
        catalog, events = shop_events(args.events, args.users, args.seed, categories=categories)
        print(f"\nsynthetic shop, seed {args.seed}: {len(events):,} events of {args.users:,} users, "
              f"{sum(e.type == 'purchase' for e in events):,} purchases, "
              + ("with categories" if categories else "categories removed"))
        header = None
        for overrides in SETTINGS if categories else [SETTINGS[0], {}]:  # without categories nothing falls back
            name = _label(overrides)
            effect = measure(events, catalog, Settings.from_env({}, flow_metrics_port=0, **overrides))
            row = effect.row()
            if header is None:
                header = f"{'setting':<34}" + "".join(f"{column:>15}" for column in row)
                print(f"buyers' next view in the bought category: {effect.mean(effect.after_same_category):.3f} "
                      f"(of {len(effect.after_same_category):,} first views after a purchase)")
                print(header)
            print(f"{name:<34}" + "".join(f"{value:>15.4f}" for value in row.values())
                  + f"   ({effect.events_per_s:,.0f} events/s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
