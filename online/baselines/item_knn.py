"""Item-based kNN over users' whole histories, learned one event at a time.

Two items are similar when the same users touched both, at any distance in
their histories (not only within a session): each time a user touches an item
new to them, every item already in their history co-occurs with it once. The
co-occurrence and each item's count are decayed in event time (forward decay,
half-life ``half_life_s``; ``math.inf``: plain counts), and similarity is their
cosine, ``C(i, j) / sqrt(N(i) N(j))`` (Sarwar et al. 2001; Deshpande & Karypis
2004, on binary implicit data). A user's list scores every neighbour ``j`` of
the items ``i`` of their history by ``sum_i sim(i, j)``.

Each item ranks its ``neighbours`` most similar items and keeps that list until
its own count has grown by a tenth (``refresh``): between two refreshes an
item's list does not see its neighbours' new events. The list of a user with a
long history is scored from their ``max_history`` latest items.

>>> from online.contract import Event
>>> knn = ItemKNN()
>>> for user, items in [("ann", "abc"), ("bob", "ab"), ("cy", "cd"), ("dee", "a")]:
...     for item in items:
...         knn.learn_one(Event(user, item, "rating", 1.0e9, value=8.0))
>>> knn.recommend("dee", 3)   # b co-occurs with a twice (cosine 2/sqrt(3*2)), c once (1/sqrt(3*2))
['b', 'c']
>>> knn.recommend("someone new", 3)
[]
"""

from __future__ import annotations

import heapq
import math

from online.contract import Event

__all__ = ["ItemKNN"]

_RESCALE_AT = 500.0
"""Move the forward-decay landmark after this many half-lives (2 ** 500 is far from overflow, 2 ** 1024 is not)."""


class ItemKNN:
    """Cosine item-kNN on decayed co-occurrence in users' whole histories (``GRID``: half-lives tuned on validation)."""

    GRID: tuple[float, ...] = (30 * 86400.0, 365 * 86400.0, math.inf)

    def __init__(self, half_life_s: float = math.inf, neighbours: int = 100, max_history: int = 200,
                 refresh: float = 0.1) -> None:
        self.half_life_s = half_life_s
        self.neighbours = neighbours
        self.max_history = max_history
        self.refresh = refresh
        self.histories: dict[str, dict[str, float]] = {}
        """Each user's items, oldest first (a touch again moves an item to the end), with its last time."""
        self.co: dict[str, dict[str, float]] = {}
        self.counts: dict[str, float] = {}
        self.events: dict[str, int] = {}
        """Users who touched each item (undecayed): when its neighbour list is due for a refresh."""
        self._lists: dict[str, tuple[int, list[tuple[str, float]]]] = {}
        self._landmark: float | None = None

    def _weight(self, ts: float) -> float:
        if math.isinf(self.half_life_s):
            return 1.0
        if self._landmark is None:
            self._landmark = ts
        exponent = (ts - self._landmark) / self.half_life_s
        if exponent > _RESCALE_AT:
            self._rescale(ts)
            exponent = 0.0
        return math.pow(2.0, exponent)

    def _rescale(self, ts: float) -> None:
        """Move the landmark to ``ts``: every stored weight shrinks alike, so every cosine stays."""
        assert self._landmark is not None
        factor = math.pow(2.0, -(ts - self._landmark) / self.half_life_s)
        self._landmark = ts
        for item in self.counts:
            self.counts[item] *= factor
        for row in self.co.values():
            for other in row:
                row[other] *= factor

    def learn_one(self, event: Event) -> None:
        user, item = event.user_id, event.item_id
        history = self.histories.get(user)
        if history is None:
            history = self.histories[user] = {}
        if item in history:  # a repeat: its co-occurrences with this user's items are already counted
            del history[item]
            history[item] = event.ts
            return
        weight = self._weight(event.ts)
        self.counts[item] = self.counts.get(item, 0.0) + weight
        self.events[item] = self.events.get(item, 0) + 1
        row = self.co.get(item)
        if row is None:
            row = self.co[item] = {}
        for other in history:
            row[other] = row.get(other, 0.0) + weight
            other_row = self.co[other]
            other_row[item] = other_row.get(item, 0.0) + weight
        history[item] = event.ts

    def similar(self, item: str) -> list[tuple[str, float]]:
        """``item``'s most similar items by cosine, best first (cached until its count grows by ``refresh``)."""
        events = self.events.get(item, 0)
        cached = self._lists.get(item)
        if cached is not None and events <= cached[0] * (1.0 + self.refresh):
            return cached[1]
        row = self.co.get(item, {})
        counts = self.counts
        own = counts.get(item, 0.0)
        scored = [(other, c / math.sqrt(own * counts[other])) for other, c in row.items() if c > 0.0]
        best = heapq.nlargest(self.neighbours, scored, key=lambda pair: pair[1])
        self._lists[item] = (max(events, 1), best)
        return best

    def recommend(self, user_id: str, n: int) -> list[str]:
        history = self.histories.get(user_id)
        if not history or n <= 0:
            return []
        scores: dict[str, float] = {}
        for item in list(history)[-self.max_history:]:
            for other, similarity in self.similar(item):
                scores[other] = scores.get(other, 0.0) + similarity
        return heapq.nlargest(n, scores, key=scores.__getitem__)
