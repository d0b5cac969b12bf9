"""Prequential ranking metrics: HR@K, MRR@K, catalog coverage, popularity bias.

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
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = ["PrequentialMetrics", "rank_of"]


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

    def update(self, ranked: Sequence[str], target: str, popularity_percentile: dict[str, float] | None = None) -> None:
        """Score one event: ``ranked`` is the list shown before it, ``target`` what the user touched."""
        self.predictions += 1
        top = ranked[: self.ks[-1]]
        self.recommended.update(top)
        if popularity_percentile is not None and top:
            self._popularity_sum += sum(popularity_percentile.get(i, 0.0) for i in top) / len(top)
            self._popularity_n += 1
        rank = rank_of(top, target, self.ks[-1])
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
        return out
