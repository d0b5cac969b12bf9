"""A synthetic sports shop: a seeded catalog, simulated shoppers, and a producer that POSTs their events.

``make run`` streams this shop into the server so that recommendation lists
mean something within a minute: popularity is skewed (Zipf), sessions stay on
one intent (a small *bundle* of items that go together, plus its companions in
complementary categories), so co-visitation is learnable, and purchases steer
later sessions towards complementary categories (after a treadmill come mats
and running shoes, not a second treadmill).

Three layers:

* :class:`Catalog` -- items, categories, brands, prices, popularity, bundles
  and complementary categories, generated from a seed (pure, numpy).
* :class:`ShopSimulator` -- users with latent category preferences whose
  interleaved sessions yield contract event dicts (pure; timestamps come from
  a simulated clock, or from a clock you pass in, e.g. ``time.time``).
* :func:`produce` -- paces the simulator to ``rate`` events/s and POSTs JSON
  arrays to ``{base_url}/v1/events`` over one keep-alive ``http.client``
  connection; :func:`add_arguments` and :func:`run` make it a CLI command.

Examples
--------
>>> from itertools import islice
>>> from online.contract import parse_event
>>> catalog = Catalog.generate(n_items=300, n_categories=20, seed=1)
>>> len(catalog), catalog.categories[:3]
(300, ('running-shoes', 'running-apparel', 'treadmills'))
>>> catalog.complements_of("treadmills")
('treadmill-mats', 'running-shoes', 'heart-rate-monitors')
>>> item = catalog.item(42)
>>> item.item_id, item.category in catalog.categories, type(item.price).__name__
('sku-00042', True, 'float')
>>> sim = ShopSimulator(catalog, n_users=50, seed=1)
>>> events = list(sim.events(start=1_700_000_000.0, limit=200))
>>> sorted(events[0]), sorted(events[0]["context"])
(['context', 'event_id', 'item_id', 'session_id', 'ts', 'type', 'user_id'], ['brand', 'category', 'device', 'price'])
>>> all(parse_event(e, now=1_800_000_000.0).user_id == e["user_id"] for e in events)
True
>>> all(a["ts"] <= b["ts"] for a, b in zip(events, events[1:]))
True
>>> len({e["event_id"] for e in events}), {e["type"] for e in events} >= {"view", "impression"}
(200, True)
>>> again = ShopSimulator(Catalog.generate(n_items=300, n_categories=20, seed=1), n_users=50, seed=1)
>>> list(again.events(start=1_700_000_000.0, limit=200)) == events
True
"""

from __future__ import annotations

import argparse
import bisect
import heapq
import http.client
import math
import random
import re
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any, TextIO
from urllib.parse import urlsplit

import numpy as np
import orjson

from online.contract import Settings
from online.contract.backoff import Backoff

__all__ = [
    "CATEGORY_SPECS",
    "Catalog",
    "CategorySpec",
    "Item",
    "ProduceStats",
    "ShopSimulator",
    "add_arguments",
    "produce",
    "run",
]


# --------------------------------------------------------------------------- catalog


@dataclass(frozen=True, slots=True)
class CategorySpec:
    """A category: its name, typical price (median and log-normal spread) and what people buy after it."""

    name: str
    median_price: float
    price_sigma: float
    complements: tuple[str, ...]


CATEGORY_SPECS: tuple[CategorySpec, ...] = (
    CategorySpec("running-shoes", 110.0, 0.35, ("running-apparel", "fitness-trackers", "foam-rollers")),
    CategorySpec("running-apparel", 45.0, 0.40, ("running-shoes", "water-bottles")),
    CategorySpec("treadmills", 900.0, 0.40, ("treadmill-mats", "running-shoes", "heart-rate-monitors")),
    CategorySpec("treadmill-mats", 60.0, 0.30, ("running-shoes", "foam-rollers")),
    CategorySpec("yoga-mats", 40.0, 0.40, ("yoga-blocks", "yoga-apparel", "foam-rollers")),
    CategorySpec("yoga-blocks", 18.0, 0.30, ("yoga-mats", "yoga-apparel")),
    CategorySpec("yoga-apparel", 50.0, 0.40, ("yoga-mats", "water-bottles")),
    CategorySpec("dumbbells", 80.0, 0.60, ("weight-benches", "resistance-bands", "protein-powder")),
    CategorySpec("weight-benches", 220.0, 0.40, ("dumbbells", "gym-bags")),
    CategorySpec("resistance-bands", 25.0, 0.40, ("foam-rollers", "yoga-mats")),
    CategorySpec("fitness-trackers", 150.0, 0.40, ("heart-rate-monitors", "headphones", "running-shoes")),
    CategorySpec("heart-rate-monitors", 70.0, 0.35, ("fitness-trackers", "running-apparel")),
    CategorySpec("bicycles", 750.0, 0.50, ("bike-helmets", "bike-lights", "water-bottles")),
    CategorySpec("bike-helmets", 80.0, 0.40, ("bike-lights", "water-bottles")),
    CategorySpec("bike-lights", 35.0, 0.40, ("bike-helmets",)),
    CategorySpec("water-bottles", 20.0, 0.35, ("gym-bags", "protein-powder")),
    CategorySpec("protein-powder", 40.0, 0.30, ("water-bottles", "gym-bags")),
    CategorySpec("foam-rollers", 30.0, 0.35, ("yoga-mats", "resistance-bands")),
    CategorySpec("gym-bags", 55.0, 0.35, ("water-bottles", "headphones")),
    CategorySpec("headphones", 120.0, 0.50, ("fitness-trackers", "gym-bags")),
)
"""The shop's categories, in the order ``Catalog.generate(n_categories=k)`` takes the first ``k``."""

_BRANDS: tuple[str, ...] = (
    "Stridemark", "Pacefield", "Northpeak", "Velora", "Kinetiq", "Ironhold", "Lotusleaf", "Zenflow",
    "Cadence", "Trailwise", "Apexline", "Hydrova", "Pulsera", "Corestrong", "Urbanride", "Spokeworks",
    "Brightbeam", "Fuelwell", "Recoverly", "Carryall", "Soundfit", "Gripmax", "Flexora", "Summitgear",
)
_BRANDS_PER_CATEGORY = 5
_BRAND_SHARES = (0.35, 0.25, 0.18, 0.12, 0.10)


@dataclass(frozen=True, slots=True)
class Item:
    """One catalog item, as :meth:`Catalog.item` returns it."""

    index: int
    item_id: str
    category: str
    brand: str
    price: float
    popularity: float
    bundle: int


@dataclass(frozen=True)
class Catalog:
    """A generated shop catalog; every per-item array is indexed by the item's position.

    ``bundles[b]`` lists the items of bundle ``b`` (3-8 items of one category
    that go together); ``bundle_links[b]`` lists bundles in complementary
    categories that go with it (a treadmill line -> its mats and shoes).
    ``complements[c]`` lists the categories bought after category ``c``.
    Build one with :meth:`generate`.
    """

    item_ids: tuple[str, ...]
    categories: tuple[str, ...]
    item_category: np.ndarray
    brands: tuple[str, ...]
    item_brand: np.ndarray
    price: np.ndarray
    popularity: np.ndarray
    item_bundle: np.ndarray
    bundles: tuple[tuple[int, ...], ...]
    bundle_category: tuple[int, ...]
    bundle_links: tuple[tuple[int, ...], ...]
    complements: tuple[tuple[int, ...], ...]

    @classmethod
    def generate(
        cls,
        n_items: int = 2000,
        n_categories: int = 20,
        seed: int = 7,
        zipf_exponent: float = 1.1,
    ) -> Catalog:
        """A catalog of ``n_items`` items in the first ``n_categories`` of :data:`CATEGORY_SPECS`."""
        if not 1 <= n_categories <= len(CATEGORY_SPECS):
            raise ValueError(f"n_categories={n_categories}: must be between 1 and {len(CATEGORY_SPECS)}")
        if n_items < 3 * n_categories:
            raise ValueError(f"n_items={n_items}: need at least 3 items per category ({3 * n_categories})")
        rng = np.random.default_rng(seed)
        specs = CATEGORY_SPECS[:n_categories]
        names = tuple(s.name for s in specs)
        index_of = {name: i for i, name in enumerate(names)}

        # Items per category: uneven shares, at least 3 each (largest remainder).
        shares = rng.dirichlet(np.full(n_categories, 4.0))
        spare = n_items - 3 * n_categories
        raw = shares * spare
        counts = np.floor(raw).astype(np.int64)
        order = np.argsort(-(raw - counts), kind="stable")
        counts[order[: spare - int(counts.sum())]] += 1
        counts += 3
        item_category = np.repeat(np.arange(n_categories), counts)
        perm = rng.permutation(n_items)  # ids do not reveal the category
        item_category = item_category[perm]

        # Zipf-like popularity over a random ranking of the items.
        ranks = rng.permutation(n_items)
        popularity = 1.0 / np.power(ranks + 1.0, zipf_exponent)
        popularity /= popularity.sum()

        # Prices: log-normal around the category median, shop-style endings (49.99).
        medians = np.array([s.median_price for s in specs])[item_category]
        sigmas = np.array([s.price_sigma for s in specs])[item_category]
        raw_price = medians * np.exp(sigmas * rng.standard_normal(n_items))
        price = np.maximum(np.round(raw_price), 2.0) - 0.01

        # Brands: five per category, a couple of them dominant.
        brand_sets = [rng.choice(len(_BRANDS), size=_BRANDS_PER_CATEGORY, replace=False) for _ in range(n_categories)]
        pick = rng.choice(_BRANDS_PER_CATEGORY, size=n_items, p=np.array(_BRAND_SHARES))
        item_brand = np.array([brand_sets[c][k] for c, k in zip(item_category, pick, strict=True)], dtype=np.int64)

        # Bundles: each category's items split into groups of 3-8.
        bundles: list[tuple[int, ...]] = []
        bundle_category: list[int] = []
        item_bundle = np.zeros(n_items, dtype=np.int64)
        bundles_of_category: list[list[int]] = []
        for c in range(n_categories):
            members = rng.permutation(np.flatnonzero(item_category == c))
            mine: list[int] = []
            pos = 0
            while pos < len(members):
                size = int(rng.integers(3, 9))
                if len(members) - (pos + size) < 3:  # no runt bundle at the end
                    size = len(members) - pos if len(members) - pos <= 8 else len(members) - pos - 3
                group = tuple(int(i) for i in members[pos : pos + size])
                item_bundle[list(group)] = len(bundles)
                mine.append(len(bundles))
                bundles.append(group)
                bundle_category.append(c)
                pos += size
            bundles_of_category.append(mine)

        complements = tuple(
            tuple(index_of[name] for name in spec.complements if name in index_of) for spec in specs
        )

        # Bundle links: each bundle goes with one bundle in each complementary category,
        # chosen by popularity (the popular mat goes with many treadmills).
        bundle_pop = np.array([popularity[list(b)].sum() for b in bundles])
        links: list[tuple[int, ...]] = []
        for c in bundle_category:
            linked = []
            for d in complements[c]:
                candidates = np.array(bundles_of_category[d])
                p = bundle_pop[candidates] / bundle_pop[candidates].sum()
                linked.append(int(rng.choice(candidates, p=p)))
            links.append(tuple(linked))

        width = max(5, len(str(n_items - 1)))
        return cls(
            item_ids=tuple(f"sku-{i:0{width}d}" for i in range(n_items)),
            categories=names,
            item_category=item_category,
            brands=_BRANDS,
            item_brand=item_brand,
            price=price,
            popularity=popularity,
            item_bundle=item_bundle,
            bundles=tuple(bundles),
            bundle_category=tuple(bundle_category),
            bundle_links=tuple(links),
            complements=complements,
        )

    def __len__(self) -> int:
        return len(self.item_ids)

    def item(self, index: int) -> Item:
        """The item at ``index`` as a record."""
        return Item(
            index=index,
            item_id=self.item_ids[index],
            category=self.categories[int(self.item_category[index])],
            brand=self.brands[int(self.item_brand[index])],
            price=float(self.price[index]),
            popularity=float(self.popularity[index]),
            bundle=int(self.item_bundle[index]),
        )

    def category_of(self, item_id: str) -> str:
        """The category name of an item id (``sku-00042``)."""
        return self.categories[int(self.item_category[self.index_of(item_id)])]

    def index_of(self, item_id: str) -> int:
        """The position of an item id; ids are ``sku-`` and the zero-padded position."""
        index = int(item_id.removeprefix("sku-"))
        if not 0 <= index < len(self.item_ids) or self.item_ids[index] != item_id:
            raise KeyError(item_id)
        return index

    def complements_of(self, category: str) -> tuple[str, ...]:
        """The categories people buy after buying in ``category``."""
        return tuple(self.categories[d] for d in self.complements[self.categories.index(category)])

    def category_popularity(self) -> np.ndarray:
        """Total item popularity per category (sums to 1)."""
        return np.bincount(self.item_category, weights=self.popularity, minlength=len(self.categories))


# --------------------------------------------------------------------------- simulator

_DEVICES: tuple[str, ...] = ("web", "ios", "android")
_DEVICE_CUM = tuple(accumulate((0.5, 0.3, 0.2)))
_RATING_VALUES = (1.0, 2.0, 3.0, 4.0, 5.0)
_RATING_CUM = tuple(accumulate((0.05, 0.07, 0.15, 0.38, 0.35)))

MAX_SESSION_EVENTS = 15
_MEAN_SESSION_EVENTS = 7.2  # measured; converts events_per_s into session arrivals


@dataclass(slots=True)
class _User:
    user_id: str
    cat_cum: list[float]  # cumulative category preference weights
    cat_weights: list[float]
    device: str
    cart_propensity: float
    followups: deque[int] = field(default_factory=deque)  # bundles to look at next (complements)
    purchased_categories: set[int] = field(default_factory=set)
    unrated: list[int] = field(default_factory=list)
    sessions: int = 0
    busy_until: float = -math.inf


@dataclass(frozen=True, slots=True)
class ShopBehaviour:
    """The knobs of a shopper's session (probabilities are per view unless stated)."""

    cart: float = 0.112
    purchase: float = 0.34  # per carted item that is not removed again
    remove_from_cart: float = 0.08  # per carted item
    dislike: float = 0.01
    wishlist: float = 0.015
    share: float = 0.005
    impression: float = 0.2  # an item shown (and not clicked) before a view
    same_bundle: float = 0.7  # next view from the current bundle ...
    linked_bundle: float = 0.15  # ... or from a bundle that goes with it, else the category
    followup: float = 0.7  # a session after a purchase is about a complementary category
    repurchase_damping: float = 0.03  # preference left for a category after buying in it
    rate_after_purchase: float = 0.25  # a session starts by rating an earlier purchase
    favourite_share: float = 0.85  # preference mass on the user's 2-4 favourite categories
    primary_device: float = 0.85
    median_gap_s: float = 6.0  # between events of a session
    user_idle_s: float = 30.0  # a user's gap between two sessions (simulated time)


class ShopSimulator:
    """Shoppers of a :class:`Catalog` and their interleaved sessions, as contract event dicts.

    Deterministic for a seed (``random.Random``; no I/O). Sessions start as a
    Poisson process tuned so simulated time carries about ``events_per_s``
    events a second; each session belongs to one user (weighted by a skewed
    activity level), picks an intent -- a complementary bundle queued by an
    earlier purchase, or a bundle of a preferred category -- and views 3+
    items mostly from that bundle, with impressions, carts, removals,
    purchases, wishlists, shares, rare dislikes and ratings of earlier
    purchases. The simulator keeps state: successive :meth:`events` calls
    continue the same simulation.
    """

    def __init__(
        self,
        catalog: Catalog,
        n_users: int = 5000,
        seed: int = 7,
        *,
        events_per_s: float = 200.0,
        run_id: str | None = None,
        behaviour: ShopBehaviour | None = None,
    ) -> None:
        if n_users < 1:
            raise ValueError(f"n_users={n_users}: must be positive")
        if events_per_s <= 0:
            raise ValueError(f"events_per_s={events_per_s}: must be positive")
        self.catalog = catalog
        self.n_users = n_users
        self.seed = seed
        self.events_per_s = events_per_s
        self.run_id = f"s{seed}" if run_id is None else run_id
        self.behaviour = behaviour or ShopBehaviour()
        self._rng = random.Random(seed * 1_000_003 + 17)
        rng = self._rng
        width = max(5, len(str(n_users - 1)))
        self._user_ids = [f"user-{i:0{width}d}" for i in range(n_users)]
        self._activity_cum = list(accumulate(rng.lognormvariate(0.0, 1.0) for _ in range(n_users)))
        self._users: dict[int, _User] = {}
        self._counter = 0  # events emitted
        self._seq = 0  # events planned (heap tie-break)
        self._heap: list[tuple[float, int, dict[str, Any]]] = []  # planned events by simulated time
        self._next_arrival = 0.0  # simulated seconds

        cat = catalog
        self._ids = cat.item_ids
        self._cat_of = [int(c) for c in cat.item_category]
        self._bundle_of = [int(b) for b in cat.item_bundle]
        self._context = [
            {
                "category": cat.categories[int(cat.item_category[i])],
                "brand": cat.brands[int(cat.item_brand[i])],
                "price": float(cat.price[i]),
            }
            for i in range(len(cat))
        ]
        pop = [float(p) for p in cat.popularity]
        self._bundle_cum = [list(accumulate(pop[i] for i in members)) for members in cat.bundles]
        self._bundle_pop = [c[-1] for c in self._bundle_cum]
        n_cat = len(cat.categories)
        self._cat_items: list[list[int]] = [[] for _ in range(n_cat)]
        for i, c in enumerate(self._cat_of):
            self._cat_items[c].append(i)
        self._cat_item_cum = [list(accumulate(pop[i] for i in items)) for items in self._cat_items]
        self._cat_bundles: list[list[int]] = [[] for _ in range(n_cat)]
        for b, c in enumerate(cat.bundle_category):
            self._cat_bundles[c].append(b)
        self._cat_bundle_cum = [list(accumulate(self._bundle_pop[b] for b in bs)) for bs in self._cat_bundles]
        self._cat_pop = [float(p) for p in cat.category_popularity()]

    # ---- random helpers

    def _pick(self, cum: Sequence[float]) -> int:
        """An index drawn with the weights whose running sums are ``cum``."""
        return min(bisect.bisect_right(cum, self._rng.random() * cum[-1]), len(cum) - 1)

    def _item_in_bundle(self, b: int) -> int:
        return self.catalog.bundles[b][self._pick(self._bundle_cum[b])]

    def _item_in_category(self, c: int) -> int:
        return self._cat_items[c][self._pick(self._cat_item_cum[c])]

    def _bundle_in_category(self, c: int) -> int:
        return self._cat_bundles[c][self._pick(self._cat_bundle_cum[c])]

    def _gap(self) -> float:
        beh = self.behaviour
        return min(max(self._rng.lognormvariate(math.log(beh.median_gap_s), 0.6), 1.0), 60.0)

    # ---- users

    def _user(self, u: int) -> _User:
        user = self._users.get(u)
        if user is not None:
            return user
        rng = self._rng
        beh = self.behaviour
        n_cat = len(self._cat_pop)
        k = min(rng.choice((2, 2, 3, 3, 4)), n_cat)
        favourites: list[int] = []
        cum = list(accumulate(self._cat_pop))
        while len(favourites) < k:
            c = self._pick(cum)
            if c not in favourites:
                favourites.append(c)
        fav_weights = [rng.random() + 0.3 for _ in favourites]
        fav_total = sum(fav_weights)
        total_pop = sum(self._cat_pop)
        weights = [(1.0 - beh.favourite_share) * p / total_pop for p in self._cat_pop]
        for c, w in zip(favourites, fav_weights, strict=True):
            weights[c] += beh.favourite_share * w / fav_total
        device = _DEVICES[self._pick(_DEVICE_CUM)]
        propensity = beh.cart * rng.uniform(0.5, 1.5)
        user = _User(self._user_ids[u], list(accumulate(weights)), weights, device, propensity)
        self._users[u] = user
        return user

    def _choose_user(self, now: float) -> _User | None:
        for _ in range(20):
            user = self._user(self._pick(self._activity_cum))
            if user.busy_until <= now:
                return user
        # The active users are all busy: anyone idle (scanning from a random place), else nobody.
        first = self._rng.randrange(self.n_users)
        for k in range(self.n_users):
            u = (first + k) % self.n_users
            known = self._users.get(u)
            if known is None or known.busy_until <= now:
                return self._user(u)
        return None

    # ---- sessions

    def _intent(self, user: _User) -> int:
        """The bundle a session is about."""
        rng = self._rng
        while user.followups:
            b = user.followups.popleft()
            if self.catalog.bundle_category[b] in user.purchased_categories:
                continue
            if rng.random() < self.behaviour.followup:
                return b
            user.followups.clear()  # interest faded
        return self._bundle_in_category(self._pick(user.cat_cum))

    def _next_item(self, bundle: int, current: int) -> int:
        beh = self.behaviour
        r = self._rng.random()
        if r < beh.same_bundle:
            for _ in range(3):  # prefer a different item, but revisits happen
                item = self._item_in_bundle(bundle)
                if item != current:
                    return item
            return item
        links = self.catalog.bundle_links[bundle]
        if r < beh.same_bundle + beh.linked_bundle and links:
            return self._item_in_bundle(links[self._rng.randrange(len(links))])
        return self._item_in_category(self.catalog.bundle_category[bundle])

    def _session(self, user: _User, start: float) -> list[tuple[float, dict[str, Any]]]:
        """One session of ``user`` from ``start`` (simulated seconds): (time, event) pairs."""
        rng = self._rng
        beh = self.behaviour
        user.sessions += 1
        session_id = f"{self.run_id}-{user.user_id}-{user.sessions}"
        device = user.device if rng.random() < beh.primary_device else _DEVICES[self._pick(_DEVICE_CUM)]
        out: list[tuple[float, dict[str, Any]]] = []
        t = start

        def emit(kind: str, item: int, value: float | None = None) -> None:
            event: dict[str, Any] = {
                "user_id": user.user_id,
                "item_id": self._ids[item],
                "type": kind,
                "ts": 0.0,
                "session_id": session_id,
                "event_id": "",
            }
            if value is not None:
                event["value"] = value
            event["context"] = {**self._context[item], "device": device}
            out.append((t, event))

        if user.unrated and rng.random() < beh.rate_after_purchase:
            item = user.unrated.pop(rng.randrange(len(user.unrated)))
            emit("rating", item, _RATING_VALUES[self._pick(_RATING_CUM)])
            t += self._gap()

        bundle = self._intent(user)
        n_views = min(3 + int(rng.expovariate(1.0 / 3.5)), 12)
        cart: list[int] = []
        item = self._item_in_bundle(bundle)
        for _ in range(n_views):
            if len(out) + 4 + len(cart) > MAX_SESSION_EVENTS:  # room for a step and the checkout
                break
            if rng.random() < beh.impression:
                shown = self._item_in_category(self._cat_of[item])
                if shown != item:
                    emit("impression", shown)
                    t += rng.uniform(0.3, 2.0)
            emit("view", item)
            t += self._gap()
            r = rng.random()
            p_cart = user.cart_propensity
            if r < p_cart:
                if item not in cart:
                    emit("add_to_cart", item)
                    cart.append(item)
                    t += self._gap()
            elif r < p_cart + beh.dislike:
                emit("dislike", item)
                t += self._gap()
                # something else of the category, away from the disliked bundle
                item = self._item_in_category(self._cat_of[item])
                bundle = self._bundle_of[item]
                continue
            elif r < p_cart + beh.dislike + beh.wishlist:
                emit("wishlist", item)
                t += self._gap()
            elif r < p_cart + beh.dislike + beh.wishlist + beh.share:
                emit("share", item)
                t += self._gap()
            item = self._next_item(bundle, item)

        # Checkout: review the cart, maybe buy.
        if cart:
            t += rng.uniform(10.0, 45.0)
        bought: list[int] = []
        for item in cart:
            if rng.random() < beh.remove_from_cart:
                emit("remove_from_cart", item)
                t += rng.uniform(1.0, 5.0)
            elif rng.random() < beh.purchase:
                emit("purchase", item)
                bought.append(item)
                t += rng.uniform(0.5, 2.0)

        for item in bought:
            c = self._cat_of[item]
            if c not in user.purchased_categories:
                user.purchased_categories.add(c)
                user.cat_weights[c] *= beh.repurchase_damping
            user.unrated.append(item)
            links = [b for b in self.catalog.bundle_links[self._bundle_of[item]]
                     if self.catalog.bundle_category[b] not in user.purchased_categories]
            rng.shuffle(links)
            user.followups.extend(links)
        if bought:
            user.cat_cum = list(accumulate(user.cat_weights))
        user.busy_until = t + beh.user_idle_s
        return out

    def events(
        self,
        clock: Callable[[], float] | None = None,
        *,
        start: float = 1_700_000_000.0,
        limit: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Contract event dicts of many interleaved sessions, in time order.

        Without ``clock``, ``ts`` is simulated time from ``start`` (seconds),
        so the whole stream is a function of the seed. With a clock (live
        runs: ``time.time``), each event's ``ts`` is read from it as the event
        is generated; pace the iteration (as :func:`produce` does) so that
        simulated gaps become real ones. ``limit`` ends the stream after that
        many events; by default it never ends. Event ids are the run id and a
        counter (``s7-0000002a``), unique within the simulator.
        """
        rng = self._rng
        arrivals_per_s = self.events_per_s / _MEAN_SESSION_EVENTS
        heap = self._heap
        emitted = 0
        while limit is None or emitted < limit:
            while not heap or self._next_arrival <= heap[0][0]:
                arrival = self._next_arrival
                user = self._choose_user(arrival)
                if user is not None:
                    for t, event in self._session(user, arrival):
                        heapq.heappush(heap, (t, self._seq, event))
                        self._seq += 1
                self._next_arrival = arrival + rng.expovariate(arrivals_per_s)
            now, _, event = heapq.heappop(heap)
            self._counter += 1
            event["ts"] = round(clock() if clock is not None else start + now, 3)
            event["event_id"] = f"{self.run_id}-{self._counter:08x}"
            emitted += 1
            yield event


# --------------------------------------------------------------------------- producer


@dataclass
class ProduceStats:
    """What :func:`produce` did.

    ``errors`` maps each distinct rejection (its first ``HTTP status: body``;
    bodies differing only in numbers count as one) to the events it cost.
    """

    sent: int = 0  # events POSTed and answered (accepted or rejected)
    accepted: int = 0
    rejected: int = 0
    dropped: int = 0  # generated but never delivered (server gone, or stopped while retrying)
    batches: int = 0
    reconnects: int = 0  # connections opened after the first (errors, or a server that closes them)
    elapsed_s: float = 0.0
    interrupted: bool = False
    gave_up: str | None = None  # why the producer stopped waiting for the server
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        """Events answered per second of the run."""
        return self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def ok(self) -> bool:
        return self.gave_up is None

    def summary(self) -> str:
        """One line for the end of a run.

        >>> ProduceStats(sent=1000, accepted=990, rejected=10, batches=20, elapsed_s=5.0).summary()
        'produced 1,000 events in 5.0 s (200.0/s): 990 accepted, 10 rejected, 0 dropped; 20 batches, 0 reconnects'
        """
        line = (
            f"produced {self.sent:,} events in {self.elapsed_s:.1f} s ({self.rate:.1f}/s): "
            f"{self.accepted:,} accepted, {self.rejected:,} rejected, {self.dropped:,} dropped; "
            f"{self.batches:,} batches, {self.reconnects:,} reconnects"
        )
        if self.interrupted:
            line += " (interrupted)"
        if self.gave_up:
            line += f" (gave up: {self.gave_up})"
        return line


_WAITING = "waiting for the server at %(what)s ... (%(problem)s)"
_LOST = "lost the server at %(what)s (%(problem)s); retrying for up to %(wait_s)g s"
_ANSWERING = "the server at %(what)s is answering"


class _Say:
    """The producer's messages (``livereco produce: ...`` on its output) as the log of a :class:`Backoff`."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self.say = say

    def warning(self, msg: str, /, *args: Any) -> None:
        self.say(msg % args[0] if args else msg)

    def info(self, msg: str, /, *args: Any) -> None:
        self.say(msg % args[0] if args else msg)


class _Retry(Exception):
    """The server is unreachable or unavailable; try the batch again later."""


class _Poster:
    """POSTs bodies to ``{base_url}/v1/events`` over one keep-alive connection, reopened when needed."""

    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{base_url!r}: expected http://host:port")
        self.https = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.https else 80)
        self.path = parts.path.rstrip("/") + "/v1/events"
        self.timeout = timeout
        self.conn: http.client.HTTPConnection | None = None
        self.used = False  # the open connection has answered before (a stale keep-alive may fail once)
        self.opened = 0

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def post(self, body: bytes) -> tuple[int, bytes]:
        for attempt in (0, 1):
            if self.conn is None:
                cls = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
                self.conn = cls(self.host, self.port, timeout=self.timeout)
                self.used = False
                self.opened += 1
            reused = self.used
            try:
                self.conn.request("POST", self.path, body=body, headers={"Content-Type": "application/json"})
                response = self.conn.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                if reused and attempt == 0:
                    continue  # the server closed an idle keep-alive connection: reopen once
                raise _Retry(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__) from exc
            self.used = True
            if response.will_close:
                self.close()
            return response.status, data
        raise AssertionError("unreachable")


_DIGITS = re.compile(r"\d+")


def _describe(status: int, data: bytes) -> str:
    text = data.decode("utf-8", "replace").strip() or http.client.responses.get(status, "")
    return f"HTTP {status}: {text[:500]}"


def produce(
    base_url: str,
    rate: float,
    *,
    seed: int = 7,
    n_users: int = 5000,
    n_items: int = 2000,
    duration_s: float | None = None,
    batch_size: int = 50,
    stop: threading.Event | None = None,
    max_events: int | None = None,
    wait_s: float = 60.0,
    linger_s: float = 0.5,
    run_id: str | None = None,
    log: TextIO | None = None,
) -> ProduceStats:
    """Stream the synthetic shop to ``{base_url}/v1/events`` at ``rate`` events/s on average.

    Events are batched (at most ``batch_size`` per POST, sent when full or
    ``linger_s`` after the first one was due) and stamped with the wall
    clock. While the server is unreachable or answers 429/5xx the batch is
    retried, with a message on ``log`` (default stderr), for up to
    ``wait_s`` seconds (at most until the duration ends, but at least
    0.5 s); then the run gives up (``stats.gave_up``). A 4xx
    answer counts its events as rejected and prints the body once per
    distinct error. Ends after ``duration_s`` seconds, ``max_events``
    events, when ``stop`` is set, or on Ctrl-C; never raises for those.
    Falling more than a second behind (a slow server) drops the backlog
    instead of bursting to catch up.
    """
    if rate <= 0:
        raise ValueError(f"rate={rate}: must be positive")
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size}: must be positive")
    out = sys.stderr if log is None else log
    poster = _Poster(base_url)
    url = base_url.rstrip("/")
    stats = ProduceStats()
    seen_errors: dict[str, str] = {}  # error kind -> its first message
    catalog = Catalog.generate(n_items=n_items, seed=seed)
    simulator = ShopSimulator(
        catalog, n_users=n_users, seed=seed, events_per_s=rate, run_id=run_id or uuid.uuid4().hex[:8]
    )
    stream = simulator.events(clock=time.time)
    start = time.monotonic()
    end = math.inf if duration_s is None else start + duration_s

    def say(message: str) -> None:
        print(f"livereco produce: {message}", file=out, flush=True)

    def stopped() -> bool:
        return stop is not None and stop.is_set()

    def pause(seconds: float) -> None:
        if seconds <= 0:
            return
        if stop is not None:
            stop.wait(seconds)
        else:
            time.sleep(seconds)

    def record(batch: list[dict[str, Any]], status: int, data: bytes) -> None:
        n = len(batch)
        accepted = n if 200 <= status < 300 else 0
        try:
            body = orjson.loads(data) if data else None
        except orjson.JSONDecodeError:
            body = None
        if isinstance(body, dict):
            value = body.get("accepted")
            if isinstance(value, int) and not isinstance(value, bool):
                accepted = max(0, min(value, n))
        stats.sent += n
        stats.batches += 1
        stats.accepted += accepted
        if accepted < n:
            stats.rejected += n - accepted
            message = _describe(status, data)
            kind = _DIGITS.sub("#", message)  # events[3] and events[7] are the same error
            if kind not in seen_errors:
                seen_errors[kind] = message
                say(f"the server rejected {n - accepted} of {n} events: {message}"
                    " (errors like this one are counted, not printed again)")
            first = seen_errors[kind]
            stats.errors[first] = stats.errors.get(first, 0) + n - accepted

    def deliver(batch: list[dict[str, Any]]) -> bool:
        """POST one batch, retrying while the server is away; False when giving up or stopped."""
        backoff = Backoff(url, _Say(say), first_s=0.05, max_s=0.25, began=_WAITING if stats.batches == 0 else _LOST,
                          ended=_ANSWERING, fields={"wait_s": wait_s})
        deadline = math.inf
        while True:
            try:
                status, data = poster.post(orjson.dumps(batch))
                if status == 429 or status >= 500:
                    raise _Retry(_describe(status, data)[:200])
            except _Retry as exc:
                first = not backoff.failing
                delay = backoff.failed(exc)
                now = time.monotonic()
                if first:
                    deadline = min(backoff.since + wait_s, max(end, backoff.since + 0.5))
                elif now >= deadline:
                    stats.gave_up = f"no answer from {url} for {now - backoff.since:.1f} s ({exc})"
                    say(stats.gave_up)
                    return False
                pause(min(delay, max(deadline - now, 0.0)))
                if stopped():
                    return False
                stamp = round(time.time(), 3)
                for event in batch:  # they are being sent now
                    event["ts"] = stamp
                continue
            backoff.succeeded()
            record(batch, status, data)
            return True

    t0 = start
    n = 0
    pending: list[dict[str, Any]] = []
    first_due = 0.0
    try:
        try:
            while not stopped() and stats.gave_up is None:
                now = time.monotonic()
                done = now >= end or (max_events is not None and n >= max_events)
                due = t0 + n / rate
                if pending and (done or len(pending) >= batch_size or due - first_due >= linger_s):
                    if not deliver(pending):
                        stats.dropped += len(pending)
                    pending = []
                    continue
                if done:
                    break
                if due > now:
                    pause(min(due, end) - now)
                    continue
                if now - due > 1.0:  # behind: do not burst to catch up
                    t0 = now - n / rate
                    due = now
                if not pending:
                    first_due = due
                pending.append(next(stream))
                n += 1
            if pending and stats.gave_up is None:  # stopped: send what is due already
                if not deliver(pending):
                    stats.dropped += len(pending)
                pending = []
        finally:
            poster.close()
    except KeyboardInterrupt:
        stats.interrupted = True
    stats.dropped += len(pending)  # not delivered (interrupted while generating or sending them)
    stats.reconnects = max(poster.opened - 1, 0)
    stats.elapsed_s = time.monotonic() - start
    return stats


# --------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``livereco produce`` flags."""
    parser.add_argument("--url", default=None,
                        help="server base URL (default: http://LIVERECO_HOST:LIVERECO_PORT)")
    parser.add_argument("--rate", type=float, default=200.0, help="events per second, on average (default: 200)")
    parser.add_argument("--users", type=int, default=5000, help="simulated shoppers (default: 5000)")
    parser.add_argument("--items", type=int, default=2000, help="catalog items (default: 2000)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the catalog and the shoppers (default: 7)")
    parser.add_argument("--duration", type=float, default=None,
                        help="stop after this many seconds (default: run until Ctrl-C)")
    parser.add_argument("--batch-size", type=int, default=50, help="events per POST (default: 50)")
    parser.add_argument("--wait", type=float, default=60.0,
                        help="seconds to wait for an unreachable server before giving up (default: 60)")


def default_url(settings: Settings) -> str:
    """The server URL from the settings; a wildcard bind address is reached on loopback.

    >>> default_url(Settings(host="0.0.0.0", port=8080))
    'http://127.0.0.1:8080'
    """
    host = settings.host
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.port}"


def run(args: argparse.Namespace, settings: Settings) -> int:
    """``livereco produce``: stream the synthetic shop until the duration ends or Ctrl-C; 1 if the server never answered."""
    url = args.url or default_url(settings)
    print(f"livereco produce: {args.rate:g} events/s to {url}/v1/events "
          f"({args.users} users, {args.items} items, seed {args.seed}); Ctrl-C stops", file=sys.stderr, flush=True)
    try:
        stats = produce(
            url,
            args.rate,
            seed=args.seed,
            n_users=args.users,
            n_items=args.items,
            duration_s=args.duration,
            batch_size=getattr(args, "batch_size", 50),
            wait_s=getattr(args, "wait", 60.0),
        )
    except KeyboardInterrupt:  # between setup steps; produce itself catches it
        print("livereco produce: interrupted", file=sys.stderr)
        return 0
    print(f"livereco produce: {stats.summary()}", file=sys.stderr, flush=True)
    return 0 if stats.ok else 1
