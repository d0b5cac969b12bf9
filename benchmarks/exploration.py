"""Exploration: what the slot costs on RSC15 and what it does for new items on a shop where they appear.

**Cost** (``--rsc15``): ``livereco eval`` of ``../shared/data/rsc15-100k``
(streaming, through the real dataflow) with the slot off and at the 10th and
20th place: HR/MRR@10 and @20.

**Benefit**: a seeded synthetic-shop stream (:mod:`flows.synthetic_shop`)
replayed through :class:`flows.model.LiverecoModel`, in which new items
appear: every so often one is launched (one view by a random shopper), half of
them *good* (a shopper shown one goes to it with probability 0.3) and half
*poor* (never). Before each shopper event the served top 10 is asked for (as
the server would serve it); a shopper who finds a new item in it may go to it
(an extra view, which the model then learns from, before the shopper's own
event). Outside lists a shopper stumbles on a random live new item with
probability 0.002 per event (search, a newsletter): the only way in without
exploration. Printed per setting: new items that ever reached a served list,
the median number of stream events from launch to the first list (a launch
never listed counts as the rest of the stream), views of good and of poor new
items, and HR@10 of the shoppers' own events (what the slot costs them).

    .venv/bin/python -m benchmarks.exploration                 # the shop, 30,000 events of 500 shoppers
    .venv/bin/python -m benchmarks.exploration --rsc15         # and the RSC15 cost (about 3 x 30 s)
"""

from __future__ import annotations

import argparse
import random
import statistics
from dataclasses import dataclass, field, replace
from pathlib import Path

from benchmarks.machine import machine_line
from benchmarks.purchase_window import shop_events
from flows.model import LiverecoModel
from online.contract import Event, Settings

__all__ = ["NewItemEffect", "simulate"]

ROOT = Path(__file__).resolve().parents[1]
TOP = 10
GOOD, POOR = 0.3, 0.0
STUMBLE = 0.002


@dataclass
class NewItemEffect:
    """What happened to the new items of one run."""

    launched: int = 0
    listed: int = 0
    """New items that reached some served top 10."""
    to_first_list: list[int] = field(default_factory=list)
    """Per new item: stream events from its launch to its first served list (the rest of the stream if never)."""
    good_views: int = 0
    poor_views: int = 0
    requests: int = 0
    hits: int = 0
    """Shopper events whose item was in the top 10 served just before (new-item views not counted)."""

    @property
    def hr(self) -> float:
        return self.hits / self.requests if self.requests else 0.0


def simulate(settings: Settings, n_events: int = 30_000, n_users: int = 500, launches: int = 40,
             seed: int = 7) -> NewItemEffect:
    """Replay a shop stream with ``launches`` new items through a :class:`LiverecoModel`; see the module docstring."""
    catalog, events = shop_events(n_events, n_users, seed=seed)
    rng = random.Random(seed)
    model = LiverecoModel(settings)
    first, last = len(events) // 5, 4 * len(events) // 5
    launch_at = {first + k * (last - first) // launches: k for k in range(launches)}
    appeal: dict[str, float] = {}
    launched_at: dict[str, int] = {}
    first_listed: dict[str, int] = {}
    users = sorted({event.user_id for event in events})
    effect = NewItemEffect(launched=launches)
    for index, event in enumerate(events):
        k = launch_at.get(index)
        if k is not None:
            item = f"new-{k:03d}"
            appeal[item] = GOOD if k % 2 == 0 else POOR
            launched_at[item] = index
            category = catalog.categories[rng.randrange(len(catalog.categories))]
            model.learn_one(Event(rng.choice(users), item, "view", event.ts, context={"category": category}))
        if event.type != "impression":
            served = model.recommend(event.user_id, TOP)
            effect.requests += 1
            effect.hits += event.item_id in served
            for item in served:
                if item in appeal:
                    first_listed.setdefault(item, index)
                    if rng.random() < appeal[item]:
                        model.learn_one(Event(event.user_id, item, "view", event.ts, event.session_id))
                        if appeal[item] > 0:
                            effect.good_views += 1
                        else:
                            effect.poor_views += 1
                        break
            if appeal and rng.random() < STUMBLE:
                item = rng.choice(list(appeal))
                model.learn_one(Event(event.user_id, item, "view", event.ts, event.session_id))
                if appeal[item] > 0:
                    effect.good_views += 1
                else:
                    effect.poor_views += 1
        model.learn_one(event)
    effect.listed = len(first_listed)
    effect.to_first_list = [first_listed.get(item, len(events)) - at for item, at in launched_at.items()]
    return effect


def _rsc15(settings: Settings) -> None:
    from flows.evaluation import evaluate_livereco, load
    from flows.progress import Progress

    data = load(ROOT.parent / "shared" / "data" / "rsc15-100k", settings)
    print("RSC15 sample, streaming, through the dataflow (10,152 predictions)")
    print(f"{'slot':>8} {'HR@10':>8} {'MRR@10':>8} {'HR@20':>8} {'MRR@20':>8} {'events/s':>9}")
    for position in (0, 10, 20):
        progress = Progress(len(data.events), f"slot {position or 'off'}")  # draws on a terminal only
        metrics, per_s, _ = evaluate_livereco(data, replace(settings, explore_position=position), progress=progress)
        progress.close()
        report = metrics.report()
        print(f"{position or 'off':>8} {report['HR@10']:8.4f} {report['MRR@10']:8.4f} {report['HR@20']:8.4f} "
              f"{report['MRR@20']:8.4f} {per_s:9,.0f}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--launches", type=int, default=40)
    parser.add_argument("--rsc15", action="store_true", help="also measure the cost on the RSC15 sample")
    args = parser.parse_args()
    print(machine_line())
    settings = replace(Settings.from_env(), flow_metrics_port=0)
    if args.rsc15:
        _rsc15(settings)
    print(f"\nSynthetic shop: {args.events:,} events of {args.users} shoppers, {args.launches} new items "
          f"(half good: taken by {GOOD:.0%} of shoppers shown one; half never taken)")
    print(f"{'slot':>8} {'listed':>8} {'median events to a list':>24} {'good views':>11} {'poor views':>11} "
          f"{'HR@10':>7}")
    for position in (0, 10, 5):
        effect = simulate(replace(settings, explore_position=position), args.events, args.users, args.launches)
        print(f"{position or 'off':>8} {effect.listed:>5}/{effect.launched:<2} "
              f"{statistics.median(effect.to_first_list):>24,.0f} {effect.good_views:>11} {effect.poor_views:>11} "
              f"{effect.hr:7.4f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
