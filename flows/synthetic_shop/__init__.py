"""A synthetic sports shop: a seeded catalog, simulated shoppers, and a producer that POSTs their events.

``make run`` streams this shop into the server so that recommendation lists
mean something within a minute: popularity is skewed (Zipf), sessions stay on
one intent (a small *bundle* of items that go together, plus its companions in
complementary categories), so co-visitation is learnable, and purchases steer
later sessions towards complementary categories (after a treadmill come mats
and running shoes, not a second treadmill).

Three layers, a module each:

* :class:`Catalog` (:mod:`~flows.synthetic_shop.catalog`) -- items, categories, brands, prices, popularity, bundles
  and complementary categories, generated from a seed (pure, numpy).
* :class:`ShopSimulator` (:mod:`~flows.synthetic_shop.shoppers`) -- users with latent category preferences whose
  interleaved sessions yield contract event dicts (pure; timestamps come from
  a simulated clock, or from a clock you pass in, e.g. ``time.time``).
* :func:`produce` (:mod:`~flows.synthetic_shop.producer`) -- paces the simulator to ``rate`` events/s and POSTs JSON
  arrays to ``{base_url}/v1/events`` over one keep-alive ``http.client``
  connection; :func:`add_arguments` and :func:`run` make it a CLI command. With ``respond=True``
  (``livereco produce --respond``) the shop responds to its lists: each session begins with the
  shopper fetching their list from the server (:class:`ListFetcher`) and maybe clicking an item
  of it by their hidden taste, sending its ``rec_id`` back.

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

from flows.synthetic_shop.catalog import CATEGORY_SPECS, Catalog, CategorySpec, Item
from flows.synthetic_shop.producer import ListFetcher, ProduceStats, add_arguments, default_url, produce, run
from flows.synthetic_shop.shoppers import MAX_SESSION_EVENTS, ListFetch, Listing, ShopBehaviour, ShopSimulator

__all__ = [
    "CATEGORY_SPECS",
    "MAX_SESSION_EVENTS",
    "Catalog",
    "CategorySpec",
    "Item",
    "ListFetch",
    "ListFetcher",
    "Listing",
    "ProduceStats",
    "ShopBehaviour",
    "ShopSimulator",
    "add_arguments",
    "default_url",
    "produce",
    "run",
]
