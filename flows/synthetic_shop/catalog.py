"""The synthetic shop's catalog: items, categories, brands, prices, popularity, bundles and
complementary categories, generated from a seed (pure, numpy).

>>> catalog = Catalog.generate(n_items=300, n_categories=20, seed=1)
>>> len(catalog), catalog.complements_of("treadmills")
(300, ('treadmill-mats', 'running-shoes', 'heart-rate-monitors'))
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["CATEGORY_SPECS", "Catalog", "CategorySpec", "Item"]


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
