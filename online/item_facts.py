"""What the flow knows about a catalog item: its kind, the categories it trends in, its brand and price band.

The catalog (:mod:`online.catalog`) says much more about an item; the models
need little of it, and the flow keeps it per item in bounded, shared memory:
one :class:`ItemFacts` per distinct combination of categories, brand and price
band (:func:`item_facts` caches them), so a million items of a few thousand
kinds hold a few thousand of these, and each item a reference.

* ``kind``: the item's first category path (``sports/fitness/treadmills``): what
  the purchase rule demotes after a purchase and what the user's affinities
  count, in place of the event's ``context.category`` (which stays the fallback
  for items the catalog does not know).
* ``trending``: every path of the item and each of its ancestors, so a
  ``category=sports/fitness`` trending list exists for an item in
  ``sports/fitness/treadmills``; the kind first.
* ``brand``, ``band``: the brand and the price band (a power-of-two bucket of
  the price, :func:`price_band`), as affinity keys ``brand:<brand>`` and
  ``price:<band>`` (:attr:`ItemFacts.affinity_keys`).

Examples
--------
>>> from online.catalog.item import parse_item
>>> facts = facts_of(parse_item({"item_id": "t1", "categories": ["sports/fitness/treadmills", "sale"],
...                              "brand": "acme", "price": 499.0}))
>>> facts.kind, facts.trending
('sports/fitness/treadmills', ('sports/fitness/treadmills', 'sports/fitness', 'sports', 'sale'))
>>> facts.affinity_keys
('brand:acme', 'price:256-512')
>>> facts is facts_of(parse_item({"item_id": "t2", "categories": ["sports/fitness/treadmills", "sale"],
...                               "brand": "acme", "price": 300.0}))       # shared: same kind, brand and band
True
>>> facts_of(parse_item({"item_id": "x"})) is None                          # nothing the models use
True
>>> price_band(0.0), price_band(0.6), price_band(1.0), price_band(15.0)
('0-1', '0-1', '1-2', '8-16')
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from online.catalog.item import Item
from online.init_pickle import reduce_by_init

__all__ = ["ItemFacts", "facts_of", "item_facts", "price_band"]


@dataclass(frozen=True, slots=True)
class ItemFacts:
    """The catalog's facts about an item that the flow's models use (shared between items: never mutate)."""

    kind: str | None
    trending: tuple[str, ...]
    brand: str | None = None
    band: str | None = None

    def __reduce__(self) -> tuple[Any, ...]:  # a frozen dataclass compiled by mypyc needs it to unpickle
        return reduce_by_init(self)

    @property
    def affinity_keys(self) -> tuple[str, ...]:
        """The brand and price band as affinity keys (they join the categories in a user's affinities)."""
        return _affinity_keys(self.brand, self.band)


@lru_cache(maxsize=4096)
def _affinity_keys(brand: str | None, band: str | None) -> tuple[str, ...]:
    keys = []
    if brand:
        keys.append(sys.intern(f"brand:{brand}"))
    if band:
        keys.append(sys.intern(f"price:{band}"))
    return tuple(keys)


def price_band(price: float) -> str:
    """The price's power-of-two band, ``"<low>-<high>"`` (below 1: ``"0-1"``)."""
    if price < 1.0:
        return "0-1"
    low = 2 ** math.floor(math.log2(price))
    return f"{low}-{2 * low}"


def _trending(categories: tuple[str, ...]) -> tuple[str, ...]:
    """Each path and its ancestors, most specific first per path, each once."""
    out: dict[str, None] = {}
    for path in categories:
        parts = path.split("/")
        for depth in range(len(parts), 0, -1):
            out.setdefault(sys.intern("/".join(parts[:depth])), None)
    return tuple(out)


@lru_cache(maxsize=65536)
def item_facts(categories: tuple[str, ...], brand: str | None, band: str | None) -> ItemFacts | None:
    """The shared :class:`ItemFacts` for these properties (``None`` when there is nothing to know)."""
    if not categories and not brand and not band:
        return None
    return ItemFacts(sys.intern(categories[0]) if categories else None, _trending(categories),
                     sys.intern(brand) if brand else None, band)


def facts_of(item: Item) -> ItemFacts | None:
    """What the flow keeps of a catalog item."""
    return item_facts(tuple(item.categories), item.brand, None if item.price is None else price_band(item.price))
