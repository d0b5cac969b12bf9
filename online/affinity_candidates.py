"""Attribute-affinity candidates: what is trending in the categories a user likes, in bounded memory.

A user's :class:`~online.affinity.CategoryAffinity` says which categories they
have been into lately (forward-decayed, relative to their favourite: 1.0).
This generator turns it into candidates: the trending items of the user's
``categories`` strongest categories, each scored by the user's affinity to the
category times the item's popularity *within* it (relative to the category's
top item: 1.0). An item proposed by two categories keeps its best score.

The flow's ranker stage and the HTTP server both build the list with
:func:`affinity_candidates`, from the same inputs: the user's affinities as
stored with their list (rounded as the blob keeps them,
:func:`online.contract.candidates.quantize_affinity`), and each category's
trending top, which the ranker replica keeps in a :class:`CategoryTrending`
and the server reads from Redis (``keys.trending(category)``, written by the
sink from the same popularity updates). So what is scored is what is served.

Memory is bounded twice: at most ``per_category`` items per category (the
top of a category with capacity k is its exact top k, because an item's log
score only grows: see :mod:`online.trending`), and at most ``max_categories``
categories per replica; a new category replaces the coldest one (the one whose
best item's log score is lowest: the category nobody has touched for longest)
if its first score beats it, a Space-Saving-like rule that only ever drops a
category no user is finding things in now.

This module imports only the standard library (it is not compiled; see
:mod:`online.compiled`).

Examples
--------
>>> trending = CategoryTrending(per_category=3, max_categories=2)
>>> for item, category, log_score in [("a", "drama", 10.0), ("b", "drama", 9.0), ("x", "horror", 8.0),
...                                   ("y", "horror", 11.0)]:
...     trending.learn_one(item, category, log_score)
>>> affinities = [("horror", 1.0), ("drama", 0.5), ("comedy", 0.25)]   # the user's, strongest first
>>> [(item, round(score, 3)) for item, score in affinity_candidates(affinities, trending.tops, categories=2)]
[('y', 1.0), ('a', 0.5), ('b', 0.184), ('x', 0.05)]
>>> affinity_candidates(affinities, trending.tops, categories=0)      # turned off
[]
>>> trending.learn_one("c", "comedy", 12.0)      # a third category: the coldest (drama, best 10.0) makes way
>>> sorted(trending), trending.tops("drama", 3)
(['comedy', 'horror'], [])
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from online.trending import TrendingTop

__all__ = ["CategoryTrending", "affinity_candidates", "affinity_categories"]


def affinity_categories(affinities: Sequence[tuple[str, float]], categories: int) -> list[str]:
    """The categories whose trending items become candidates: the ``categories`` strongest with a positive affinity.

    >>> affinity_categories([("a", 1.0), ("b", 0.0), ("c", 0.3)], 3)
    ['a', 'c']
    """
    return [category for category, score in affinities[:max(categories, 0)] if score > 0.0]


def affinity_candidates(affinities: Sequence[tuple[str, float]],
                        trending_of: Callable[[str, int], Sequence[tuple[str, float]]],
                        categories: int = 3, per_category: int = 20) -> list[tuple[str, float]]:
    """The trending items of the user's strongest categories, scored by affinity × popularity in the category.

    ``affinities``: the user's categories, strongest first, relative to the
    strongest (as :meth:`~online.affinity.CategoryAffinity.top` gives them).
    ``trending_of(category, k)``: that category's ``k`` most popular items,
    best first, popularity relative to its top item. Best first; ties keep
    the order they were proposed in (stronger category first, then the
    category's trending order), so the flow and the server break them alike.

    >>> tops = {"a": [("i", 1.0), ("j", 0.5)], "b": [("j", 1.0), ("k", 0.2)]}
    >>> affinity_candidates([("a", 1.0), ("b", 0.4)], lambda c, k: tops.get(c, [])[:k], per_category=2)
    [('i', 1.0), ('j', 0.5), ('k', 0.08000000000000002)]
    """
    scores: dict[str, float] = {}
    for category, affinity in affinities[:max(categories, 0)]:
        if affinity <= 0.0:  # as affinity_categories: the server reads the trending of these categories only
            continue
        for item, popularity in trending_of(category, per_category):
            score = affinity * popularity
            if score > scores.get(item, 0.0):
                scores[item] = score
    return sorted(scores.items(), key=_negative_score)  # stable: ties keep the order proposed


def _negative_score(pair: tuple[str, float]) -> float:
    return -pair[1]


class CategoryTrending:
    """Per-category trending tops: at most ``per_category`` items in each of at most ``max_categories`` categories.

    Fed the same popularity updates as the global trending replica (an
    item's absolute log score and its category), in event time. Reads are
    :meth:`tops`; an unknown category reads as empty. See the module
    docstring for the bound and the eviction rule.
    """

    __slots__ = ("_best", "_tops", "max_categories", "per_category")

    def __init__(self, per_category: int = 20, max_categories: int = 1000):
        if per_category < 1 or max_categories < 1:
            raise ValueError(f"per_category ({per_category}) and max_categories ({max_categories}) must be positive")
        self.per_category = per_category
        self.max_categories = max_categories
        self._tops: dict[str, TrendingTop] = {}
        self._best: dict[str, float] = {}
        """Each category's best log score so far: how recently anyone found something in it."""

    def learn_one(self, item: str, category: str, log_score: float) -> None:
        """Record ``item``'s latest log score in ``category``."""
        top = self._tops.get(category)
        if top is None:
            if len(self._tops) >= self.max_categories:
                best = self._best
                coldest = min(best, key=best.__getitem__)  # only when a category is new: rare
                if log_score <= best[coldest]:
                    return
                del self._tops[coldest], best[coldest]
            top = self._tops[category] = TrendingTop(self.per_category)
        top.learn_one(item, log_score)
        if log_score > self._best.get(category, float("-inf")):
            self._best[category] = log_score

    def tops(self, category: str, k: int) -> list[tuple[str, float]]:
        """The ``k`` most popular items of ``category``, popularity relative to its first (1.0)."""
        top = self._tops.get(category)
        return top.top(k) if top is not None else []

    def __len__(self) -> int:
        return len(self._tops)

    def __iter__(self) -> Iterator[str]:
        return iter(self._tops)

    def __getstate__(self) -> tuple[int, int, dict[str, TrendingTop], dict[str, float]]:
        return self.per_category, self.max_categories, self._tops, self._best

    def __setstate__(self, state: tuple[int, int, dict[str, TrendingTop], dict[str, float]]) -> None:
        self.per_category, self.max_categories, self._tops, self._best = state
