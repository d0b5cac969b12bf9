"""Item-based kNN over users' whole histories, learned one event at a time.

Two items are similar when the same users touched both, at any distance in
their histories (not only within a session): each time a user touches an item
new to them, every item already in their history co-occurs with it once. The
co-occurrence and each item's count are decayed in event time (forward decay,
half-life ``half_life_s``; ``math.inf``: plain counts), and similarity is their
*asymmetric* cosine, ``C(i, j) / (N(i) ** alpha * N(j) ** (1 - alpha))``
(Aiolli 2013): ``alpha = 0.5`` is the plain cosine of Sarwar et al. 2001 and
Deshpande & Karypis 2004, ``alpha = 1`` the conditional probability of ``j``
given ``i``, which no longer damps popular neighbours. A user's list scores
every neighbour ``j`` of the items ``i`` of their history by ``sum_i sim(i, j)``.
When that gives fewer items than asked for, the list is filled with the most
popular items (the same decayed counts ``N``) not already in it, so a user
whose items have few neighbours still gets a full list, as from every other
model. ``GRID`` holds the (half-life, alpha) pairs ``livereco eval`` tries on
the validation part.

Each item ranks its ``neighbours`` most similar items and keeps that list until
its own count has grown by a tenth (``refresh``): between two refreshes an
item's list does not see its neighbours' new events. The list of a user with a
long history is scored from their ``max_history`` latest items.

>>> from online.contract import Event
>>> knn = ItemKNN()
>>> for user, items in [("ann", "abc"), ("bob", "ab"), ("cy", "cd"), ("dee", "a")]:
...     for item in items:
...         knn.learn_one(Event(user, item, "rating", 1.0e9, value=8.0))
>>> knn.recommend("dee", 2)   # b co-occurs with a twice (cosine 2/sqrt(3*2)), c once (1/sqrt(3*2))
['b', 'c']
>>> knn.recommend("dee", 4)   # a's neighbours give two: popularity fills the rest (a is dee's own: excluded by the driver)
['b', 'c', 'a', 'd']
>>> knn.recommend("someone new", 2)
['a', 'b']
>>> cosine, conditional = ItemKNN(), ItemKNN(alpha=1.0)   # c: twice with a, and popular; d: once with a
>>> for user, items in [("ann", "ac"), ("bob", "ac"), ("cy", "ad"), ("eve", "c"), ("fay", "c"),
...                     ("gus", "c"), ("dee", "a")]:
...     for item in items:
...         cosine.learn_one(Event(user, item, "rating", 1.0e9, value=8.0))
...         conditional.learn_one(Event(user, item, "rating", 1.0e9, value=8.0))
>>> cosine.recommend("dee", 2), conditional.recommend("dee", 2)   # the plain cosine damps c's popularity away
(['d', 'c'], ['c', 'd'])
"""

from __future__ import annotations

import heapq
import math

from online.contract import Event

__all__ = ["ItemKNN"]

_RESCALE_AT = 500.0
"""Move the forward-decay landmark after this many half-lives (2 ** 500 is far from overflow, 2 ** 1024 is not)."""
DAY = 86400.0


class ItemKNN:
    """Asymmetric-cosine item-kNN on decayed co-occurrence in users' whole histories, filled with popularity.

    ``GRID``: (half-life, alpha) pairs tuned on the validation part.
    """

    GRID: tuple[tuple[float, float], ...] = tuple(
        (half_life, alpha) for half_life in (3 * DAY, 30 * DAY, 365 * DAY, math.inf) for alpha in (0.5, 0.75, 1.0))

    def __init__(self, half_life_s: float = math.inf, alpha: float = 0.5, neighbours: int = 100,
                 max_history: int = 200, refresh: float = 0.1, fill: bool = True) -> None:
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], not {alpha}")
        self.half_life_s = half_life_s
        self.alpha = alpha
        self.neighbours = neighbours
        self.max_history = max_history
        self.refresh = refresh
        self.fill = fill
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
        """Move the landmark to ``ts``: every stored weight shrinks alike, so every similarity's order stays."""
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
        """``item``'s most similar items, best first (cached until its count grows by ``refresh``)."""
        events = self.events.get(item, 0)
        cached = self._lists.get(item)
        if cached is not None and events <= cached[0] * (1.0 + self.refresh):
            return cached[1]
        row = self.co.get(item, {})
        counts = self.counts
        own = math.pow(counts.get(item, 0.0), self.alpha)
        damp = 1.0 - self.alpha
        scored = [(other, c / (own * math.pow(counts[other], damp))) for other, c in row.items() if c > 0.0]
        best = heapq.nlargest(self.neighbours, scored, key=lambda pair: pair[1])
        self._lists[item] = (max(events, 1), best)
        return best

    def recommend(self, user_id: str, n: int) -> list[str]:
        if n <= 0:
            return []
        history = self.histories.get(user_id)
        scores: dict[str, float] = {}
        for item in list(history or ())[-self.max_history:]:
            for other, similarity in self.similar(item):
                scores[other] = scores.get(other, 0.0) + similarity
        listed = heapq.nlargest(n, scores, key=scores.__getitem__)
        if self.fill and len(listed) < n:
            counts = self.counts
            popular = heapq.nlargest(n, counts, key=counts.__getitem__)
            listed += [item for item in popular if item not in scores][: n - len(listed)]
        return listed
