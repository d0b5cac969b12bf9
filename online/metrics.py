"""Prequential ranking metrics: HR@K, MRR@K, catalog coverage, popularity bias, paired standard errors.

Each scored event asks one question: where in the list the user had *just
before* the event does the item they went on to touch stand? The same
accumulator serves the offline evaluation (``livereco eval``) and the live
flow, so the two report the same numbers for the same log.

Examples
--------
>>> m = PrequentialMetrics(ks=(1, 5))
>>> m.update(["a", "b", "c"], "b")
>>> m.update(["a", "b", "c"], "z")
>>> m.update([], "a")   # no list yet: a miss
>>> r = m.report()
>>> r["HR@5"], r["MRR@5"], r["HR@1"], r["predictions"]
(0.333333, 0.166667, 0.0, 3)

Two models scored on the same predictions compare pairwise (:func:`paired_difference`):

>>> other = PrequentialMetrics(ks=(1, 5))
>>> for ranked, target in [(["b"], "b"), (["a"], "z"), (["a"], "a")]:
...     other.update(ranked, target)
>>> paired_difference(other, m, "HR", 5)   # other hits all three (1, 0, 1 vs 1, 0, 0): +1/3, SE 1/3
(0.333333, 0.333333)

**Coverage@K** is the share of the catalog that appears in at least one scored
top-K list: distinct items recommended / distinct items the log showed before
its last prediction (every item a model could have known). Models recommend
only items they have seen, so it is at most 1 (it used to divide by the
training part's items, and passed 1 when models learned test items).
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Sequence

__all__ = ["PrequentialMetrics", "paired_difference", "rank_of"]


def rank_of(items: Sequence[str], target: str, k: int) -> int | None:
    """1-based rank of ``target`` in the first ``k`` of ``items``, else ``None``.

    >>> rank_of(["a", "b"], "b", 20), rank_of(["a", "b"], "b", 1)
    (2, None)
    """
    for position, item in enumerate(items[:k]):
        if item == target:
            return position + 1
    return None


class PrequentialMetrics:
    """Accumulates hits and reciprocal ranks at several cut-offs, plus list statistics.

    ``popularity`` (optional, item → training count) gives the popularity
    bias: the mean popularity percentile of recommended items (1.0 = only
    the most popular item, 0.5 = as popular as a random catalog item).
    """

    def __init__(self, ks: Iterable[int] = (5, 10, 20)):
        self.ks = tuple(sorted(ks))
        self.predictions = 0
        self.hits = dict.fromkeys(self.ks, 0)
        self.reciprocal = dict.fromkeys(self.ks, 0.0)
        self.recommended: set[str] = set()
        self._popularity_sum = 0.0
        self._popularity_n = 0
        self.ranks = array("H")
        """Each prediction's rank of the target in the top ``max(ks)`` (0: absent), in order: for paired comparisons."""
        self.held_excluded = 0
        """Lists whose top ``max(ks)`` held an item the candidate rule excludes (removed before scoring)."""

    def update(self, ranked: Sequence[str], target: str, popularity_percentile: dict[str, float] | None = None,
               exclude: Sequence[str] | set[str] | frozenset[str] = ()) -> None:
        """Score one event: ``ranked`` is the list shown before it, ``target`` what the user touched.

        Items in ``exclude`` (the candidate rule: e.g. what the user already had) are removed first,
        and the first ``max(ks)`` of what remains are scored: a model asked for ``max(ks) + len(exclude)``
        items fills its list; a list of only ``max(ks)`` (livereco's) keeps fewer places.

        >>> m = PrequentialMetrics(ks=(2,))
        >>> m.update(["seen", "a", "b"], "b", exclude={"seen"})
        >>> m.report()["HR@2"], m.report()["excluded_in_top2"]
        (1.0, 1.0)
        """
        self.predictions += 1
        k = self.ks[-1]
        top: Sequence[str]
        if exclude:
            if any(item in exclude for item in ranked[:k]):
                self.held_excluded += 1
            top = [item for item in ranked if item not in exclude][:k]
        else:
            top = ranked[:k]
        self.recommended.update(top)
        if popularity_percentile is not None and top:
            self._popularity_sum += sum(popularity_percentile.get(i, 0.0) for i in top) / len(top)
            self._popularity_n += 1
        rank = rank_of(top, target, self.ks[-1])
        self.ranks.append(rank or 0)
        if rank is None:
            return
        for k in self.ks:
            if rank <= k:
                self.hits[k] += 1
                self.reciprocal[k] += 1.0 / rank

    def merge(self, other: PrequentialMetrics) -> None:
        self.predictions += other.predictions
        for k in self.ks:
            self.hits[k] += other.hits[k]
            self.reciprocal[k] += other.reciprocal[k]
        self.recommended |= other.recommended
        self._popularity_sum += other._popularity_sum
        self._popularity_n += other._popularity_n
        self.ranks.extend(other.ranks)
        self.held_excluded += other.held_excluded

    def report(self, catalog_size: int | None = None) -> dict[str, float]:
        n = max(self.predictions, 1)
        out: dict[str, float] = {"predictions": self.predictions}
        for k in self.ks:
            out[f"HR@{k}"] = round(self.hits[k] / n, 6)
            out[f"MRR@{k}"] = round(self.reciprocal[k] / n, 6)
        if catalog_size:
            out[f"coverage@{self.ks[-1]}"] = round(len(self.recommended) / catalog_size, 6)
        if self._popularity_n:
            out["popularity"] = round(self._popularity_sum / self._popularity_n, 6)
        if self.held_excluded:
            out[f"excluded_in_top{self.ks[-1]}"] = round(self.held_excluded / n, 6)
        return out


def _per_prediction(metrics: PrequentialMetrics, measure: str, k: int) -> list[float]:
    if measure == "HR":
        return [1.0 if 0 < rank <= k else 0.0 for rank in metrics.ranks]
    if measure == "MRR":
        return [1.0 / rank if 0 < rank <= k else 0.0 for rank in metrics.ranks]
    raise ValueError(f"measure {measure!r}: expected HR or MRR")


def paired_difference(a: PrequentialMetrics, b: PrequentialMetrics, measure: str, k: int) -> tuple[float, float]:
    """Mean of ``a - b`` in ``measure`` (``HR`` or ``MRR``) at ``k`` over the same predictions, and its standard error.

    The differences are taken per prediction (both models scored the same
    events in the same order), so the error is that of the paired difference,
    ``sd(d) / sqrt(n)``: far smaller than the two metrics' own errors when the
    models succeed and fail on the same predictions. Predictions of one user
    are not independent, so read it as a lower bound of the uncertainty.
    """
    if len(a.ranks) != len(b.ranks):
        raise ValueError(f"not the same predictions: {len(a.ranks)} against {len(b.ranks)}")
    n = len(a.ranks)
    if n < 2:
        return 0.0, math.inf
    d = [x - y for x, y in zip(_per_prediction(a, measure, k), _per_prediction(b, measure, k), strict=True)]
    mean = sum(d) / n
    variance = sum((x - mean) ** 2 for x in d) / (n - 1)
    return round(mean, 6), round(math.sqrt(variance / n), 6)
