"""After a purchase: items of the bought item's kind fall back, what its buyers bought next rises.

The "no second treadmill" rule. For ``LIVERECO_PURCHASE_WINDOW_S`` seconds
(event time) after a user buys an item, the user's personal candidates

* in the bought item's category (the event's ``context.category``) keep only
  ``demote`` of their score, so they fall behind the rest of the list, and
* gain the items that buyers of the bought item went on to buy (a bounded,
  forward-decayed list kept per item by the item stage, fed by purchase ->
  later purchase of the same user within the window). The list counts as one
  more neighbour list of the bought item in the merge of
  :mod:`online.neighbour_candidates`, at ``boost`` times the item's weight
  there, so it is strongest right after the purchase and fades as the user
  moves on to other items.

The stages split the work. The user history knows the user's purchases and
the categories of their recent items, and tells every touch inside a window
what was bought and in which categories (a :class:`PurchaseWindow`; ``None``
outside one, so an event of a user with no recent purchase costs nothing). The
item stage knows the categories of its neighbours and names those in a bought
category; a purchase's reply also carries what buyers of the item bought next.
The user-list stage keeps an :class:`AfterPurchase` for the window and
re-ranks the merged candidates with it.

Without categories nothing falls back: demoting the bought item's
co-visitation neighbours instead, as a proxy for its kind, predicted the
buyer's next view worse than doing nothing on the synthetic shop (they hold
its complements too; README, "After a purchase"). What its buyers bought next
still rises.

Examples
--------
>>> window = PurchaseWindow(purchases=("treadmill-1",), kinds=frozenset({"treadmills"}),
...                         of_kind=(("treadmill-2", "treadmills"),), bought="treadmill-1")
>>> rule = AfterPurchase(demote=0.1, boost=1.0)
>>> rule.learn_one(window, bought_next=[("mat-1", 1.0), ("shoes-1", 0.5)],
...                labels=[("treadmill-3", "treadmills")])
>>> recent = [("treadmill-1", 9.0, 1.7e9), ("treadmill-2", 1.0, 1.7e9 - 60)]  # (item, weight, ts), newest first
>>> ranked = [("treadmill-2", 3.0), ("treadmill-3", 2.0), ("shoes-1", 1.0), ("bottle", 0.5)]  # the merged list
>>> [(item, round(score, 2)) for item, score in rule.rerank(ranked, 4, recent)]
[('mat-1', 2.3), ('shoes-1', 2.15), ('bottle', 0.5), ('treadmill-2', 0.3)]
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from online.init_pickle import reduce_by_init
from online.neighbour_candidates import NeighbourCandidates

__all__ = ["AfterPurchase", "PurchaseWindow"]

_score = itemgetter(1)


@dataclass(frozen=True, slots=True)
class PurchaseWindow:
    """What the user history says about a user's purchases still inside the window, at one event."""

    purchases: tuple[str, ...]
    """Items bought within the window, newest first (at most :attr:`online.user_history.UserHistory.window_purchases`)."""
    kinds: frozenset[str]
    """Their categories (empty when the events carry none)."""
    of_kind: tuple[tuple[str, str], ...] = ()
    """The user's own recent items in one of ``kinds``, with their category."""
    bought: str | None = None
    """The item this very event bought (its reply carries what buyers of it bought next)."""

    def __reduce__(self) -> tuple[Any, ...]:  # a frozen dataclass compiled by mypyc needs it to unpickle
        return reduce_by_init(self)


class AfterPurchase:
    """One user's purchase window: what falls back, what rises, and the re-ranking.

    Parameters
    ----------
    demote
        Score multiplier of candidates in a bought category (1: no change, 0: to the back).
    boost
        What buyers of a purchased item bought next counts as one more of its
        neighbour lists in the merge, at this multiple of the item's weight
        there (0: nothing rises).
    max_labels
        Categories remembered for candidates (the oldest go first).

    State is bounded: the "bought next" lists of the purchases in the window
    (as their replies brought them) and at most ``max_labels`` candidates known
    to be in a bought category. It lives only while the window is open: the
    user-list stage drops it at the first event outside the window.
    """

    __slots__ = ("_kinds", "_labels", "_next", "boost", "demote", "max_labels")

    def __init__(self, demote: float = 0.1, boost: float = 0.25, max_labels: int = 256):
        self.demote = demote
        self.boost = boost
        self.max_labels = max_labels
        self._kinds: frozenset[str] = frozenset()
        self._next: dict[str, list[tuple[str, float]]] = {}
        """Purchased item -> what its buyers bought next (evidence relative to the strongest, 1.0)."""
        self._labels: dict[str, str] = {}
        """Candidate -> its category, for candidates in a bought category."""

    def learn_one(self, window: PurchaseWindow, bought_next: list[tuple[str, float]] | None = None,
                  labels: Iterable[tuple[str, str]] = ()) -> None:
        """Follow the window as of one event: its purchases and categories, and what the event's reply said.

        ``bought_next`` is the reply to a purchase (``window.bought``): what
        buyers of the item bought next. ``labels`` are ``(item, category)``
        pairs, for items in one of ``window.kinds``.
        """
        if window.kinds != self._kinds:
            self._kinds = kinds = window.kinds
            self._labels = {item: kind for item, kind in self._labels.items() if kind in kinds}
        if window.bought is not None:
            self._next[window.bought] = bought_next or []
        if len(self._next) > len(window.purchases) or window.bought is not None:
            self._next = {item: self._next[item] for item in reversed(window.purchases) if item in self._next}
        found = self._labels
        for item, kind in (*window.of_kind, *labels):
            found.pop(item, None)
            found[item] = kind
        while len(found) > self.max_labels:
            del found[next(iter(found))]

    @property
    def kinds(self) -> frozenset[str]:
        """The categories bought within the window."""
        return self._kinds

    def of_kind(self, item: str) -> bool:
        """Whether ``item`` is known to be in a bought category."""
        return item in self._labels

    def labelled(self, limit: int) -> list[str]:
        """The ``limit`` items most recently known to be in a bought category (newest first)."""
        labels = list(self._labels)
        return labels[: -limit - 1: -1] if limit > 0 else []

    def bought_next(self) -> dict[str, list[tuple[str, float]]]:
        """What buyers of each purchase in the window bought next, oldest purchase first."""
        return dict(self._next)

    def rerank(self, ranked: list[tuple[str, float]], n: int, recent: Sequence[tuple[str, float, float]] = (),
               exclude: Collection[str] = (), position_decay: float = 1.0) -> list[tuple[str, float]]:
        """The top ``n`` of ``ranked`` (best first) with the rule applied.

        What buyers of a purchase bought next counts as one more neighbour list
        of the purchased item in the merge of :mod:`online.neighbour_candidates`:
        at ``boost`` times the item's influence there (``log1p`` of its weight
        over ``(position + 1) ** position_decay`` in ``recent``, newest first),
        so it is strongest just after the purchase and fades as the user moves on.
        Items in ``exclude`` never rise. Pass more than ``n`` candidates: those
        below the first ``n`` move up as the bought kind falls back.
        """
        scores = dict(ranked)
        demote = self.demote
        for item in scores.keys() & self._labels.keys():
            scores[item] *= demote
        following = self._next
        if self.boost > 0.0 and following:
            for position, (item, weight, _) in enumerate(recent[: NeighbourCandidates.merge_depth]):
                bought_next = following.get(item)
                if not bought_next or weight <= 0.0:
                    continue
                scale = self.boost * math.log1p(weight) / math.pow(position + 1, position_decay)
                for other, evidence in bought_next:
                    if other not in exclude:
                        scores[other] = scores.get(other, 0.0) + scale * evidence
        return sorted(scores.items(), key=_score, reverse=True)[:n]
