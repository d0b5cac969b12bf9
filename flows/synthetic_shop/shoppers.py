"""The synthetic shop's shoppers: users with latent category preferences whose interleaved sessions
yield contract event dicts (pure; timestamps come from a simulated clock, or from a clock you pass in,
e.g. ``time.time``).
"""

from __future__ import annotations

import bisect
import heapq
import math
import random
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

from flows.synthetic_shop.catalog import Catalog

__all__ = ["MAX_SESSION_EVENTS", "ListFetch", "Listing", "ShopBehaviour", "ShopSimulator"]

Listing = tuple[str, Sequence[str]]
"""A list a shopper was shown: its ``rec_id`` and its item ids, best first."""
ListFetch = Callable[[str], Listing | None]
"""What a responding shopper calls at a session's start: their list (``None``: no list, they browse on their own)."""


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
    # Responding to a list (``events(fetch=...)``): a cascade -- the shopper reads the list from the top,
    # reads on past each position with probability ``list_patience``, and clicks an item read with
    # probability ``list_click`` times its appeal (their hidden taste for its category, 0-1); one click at most.
    list_click: float = 0.25
    list_patience: float = 0.8


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

    def appeal(self, user_id: str, item_id: str) -> float:
        """How much ``user_id`` likes ``item_id``, 0-1: their hidden preference for its category relative to their
        favourite's (an item of a bundle they are about to look for after a purchase: 1; not in the catalog: 0).

        >>> sim = ShopSimulator(Catalog.generate(n_items=300, n_categories=20, seed=1), n_users=50, seed=1)
        >>> liked = [sim.appeal("user-00003", item_id) for item_id in sim.catalog.item_ids]
        >>> max(liked), round(sum(liked) / len(liked), 2) < 0.5, sim.appeal("user-00003", "no-such-item")
        (1.0, True, 0.0)
        """
        try:
            index = int(user_id.rpartition("-")[2])
            known = 0 <= index < self.n_users and self._user_ids[index] == user_id
        except ValueError:
            known = False
        if not known:
            raise KeyError(user_id)
        return self._appeal(self._user(index), item_id)  # a user met for the first time draws their tastes now

    def _appeal(self, user: _User, item_id: str) -> float:
        try:
            item = self.catalog.index_of(item_id)
        except (KeyError, ValueError):
            return 0.0
        if self._bundle_of[item] in user.followups:
            return 1.0
        return user.cat_weights[self._cat_of[item]] / max(user.cat_weights)

    def _look_at(self, user: _User, listing: Listing) -> int | None:
        """The position (0-based) of the item ``user`` clicks in ``listing`` (a cascade), or ``None``."""
        rng = self._rng
        beh = self.behaviour
        for position, item_id in enumerate(listing[1]):
            if position and rng.random() >= beh.list_patience:
                return None
            if rng.random() < beh.list_click * self._appeal(user, item_id):
                return position
        return None

    def _session(self, user: _User, start: float, listing: Listing | None = None) -> list[tuple[float, dict[str, Any]]]:
        """One session of ``user`` from ``start`` (simulated seconds): (time, event) pairs; with ``listing`` (the list
        they were shown as it began), a session that starts from the item they clicked in it, if they click one."""
        rng = self._rng
        beh = self.behaviour
        user.sessions += 1
        session_id = f"{self.run_id}-{user.user_id}-{user.sessions}"
        device = user.device if rng.random() < beh.primary_device else _DEVICES[self._pick(_DEVICE_CUM)]
        out: list[tuple[float, dict[str, Any]]] = []
        t = start

        clicked = self._look_at(user, listing) if listing is not None else None
        clicked_item = self.catalog.index_of(listing[1][clicked]) if listing is not None and clicked is not None else -1
        pending_click = clicked_item >= 0  # the first view of the clicked item is the click

        def emit(kind: str, item: int, value: float | None = None) -> None:
            nonlocal pending_click
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
            if item == clicked_item and listing is not None and (
                    kind in ("add_to_cart", "purchase") or (kind == "view" and pending_click)):
                event["rec_id"] = listing[0]  # sent back: the click, and the cart and purchase it led to
                pending_click = pending_click and kind != "view"
            event["context"] = {**self._context[item], "device": device}
            out.append((t, event))

        if user.unrated and rng.random() < beh.rate_after_purchase:
            item = user.unrated.pop(rng.randrange(len(user.unrated)))
            emit("rating", item, _RATING_VALUES[self._pick(_RATING_CUM)])
            t += self._gap()

        bundle = self._bundle_of[clicked_item] if clicked_item >= 0 else self._intent(user)  # what they clicked
        n_views = min(3 + int(rng.expovariate(1.0 / 3.5)), 12)
        cart: list[int] = []
        item = clicked_item if clicked_item >= 0 else self._item_in_bundle(bundle)
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
                emit("purchase", item, float(self.catalog.price[item]))  # the order's value: revenue per user
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
        fetch: ListFetch | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Contract event dicts of many interleaved sessions, in time order.

        Without ``clock``, ``ts`` is simulated time from ``start`` (seconds),
        so the whole stream is a function of the seed. With a clock (live
        runs: ``time.time``), each event's ``ts`` is read from it as the event
        is generated; pace the iteration (as :func:`produce` does) so that
        simulated gaps become real ones. ``limit`` ends the stream after that
        many events; by default it never ends. Event ids are the run id and a
        counter (``s7-0000002a``), unique within the simulator.

        With ``fetch`` the shop *responds*: as each session begins, the
        shopper fetches their list (``fetch(user_id)``, e.g. a GET of the
        server's recommendations), reads it and may click an item by their
        hidden taste (:meth:`appeal`, see :class:`ShopBehaviour`); the session
        then starts from that item, its first view and any cart or purchase
        of it carrying the list's ``rec_id``. Without a click (or a list),
        they browse on their own. One fetch per session: about
        ``events_per_s / 7`` a second.
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
                    listing = fetch(user.user_id) if fetch is not None else None
                    for t, event in self._session(user, arrival, listing):
                        heapq.heappush(heap, (t, self._seq, event))
                        self._seq += 1
                self._next_arrival = arrival + rng.expovariate(arrivals_per_s)
            now, _, event = heapq.heappop(heap)
            self._counter += 1
            event["ts"] = round(clock() if clock is not None else start + now, 3)
            event["event_id"] = f"{self.run_id}-{self._counter:08x}"
            emitted += 1
            yield event
