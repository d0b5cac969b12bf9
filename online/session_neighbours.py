"""Sessions similar to the current one (the idea behind V-SKNN and STAN), kept per item, one event at a time.

Session-based kNN (Jannach and Ludewig 2017; STAN, Garg et al. 2019) finds
past sessions that share items with the current one, weights each by that
overlap (the current session's recent items counting more), and scores the
items of the most similar sessions. It needs no global model, only "which
sessions contained this item", so it fits the item-keyed stage:

* each item keeps its last ``capacity`` sessions, newest first, each as a
  tuple of that session's items around it, in session order: the items
  before it (from the :class:`~flows.stages.Touch`, which carries them) and
  those after it (from the links later items send back to it), at most
  ``length`` in all;
* a touch asks the touched item for :meth:`SessionNeighbours.scores`: every
  kept session that shares more than the item with the current session is
  weighted by its overlap with the current session's context (the touched
  item, which all share, and the items before it, newest counting most,
  ``1 / (j + 1)`` as V-SKNN's ``div`` weighting), and
  every item after the touched one in that session scores that weight, less
  the further after it it came (``1 / d``: what comes next, as sequence-aware
  V-SKNN and STAN weigh it); items before it count half as much.

Only the touched item's sessions are read, with the context the touch
carries, so a reply carries one scored dict rather than the sessions, and
the work is a C-level overlap test per kept session and one pass over the
ids of those that overlap. Sessions that share more than the touched item
with the current one are what this adds to co-visitation; those sharing only
the touched item are plain co-visits, already counted, and are skipped
(scoring them too measured no better on RSC15 and cost twice as much).

Memory is bounded by ``capacity`` tuples of at most ``length`` ids per item
(ids are shared strings, so a tuple is 40 bytes plus 8 per id) and one
session-key list.

Examples
--------
Two earlier sessions went a → b; one of them had seen x first and went on to y,
the other had seen z first and went on to w. A session at x → a now favours y:

>>> s = SessionNeighbours(capacity=10, length=8)
>>> s.learn_touch("s1", "a", ["x"]); s.learn_next("s1", "b"); s.learn_next("s1", "y")
>>> s.learn_touch("s2", "a", ["z"]); s.learn_next("s2", "b"); s.learn_next("s2", "w")
>>> scores = s.scores("a", ["x"], session="now")
>>> {item: round(score, 2) for item, score in sorted(scores.items())}     # s1 shares x and a
{'b': 1.5, 'x': 0.75, 'y': 0.75}
>>> s.scores("a", ["q"], session="now")   # no kept session shares more than a with q, a
{}
>>> len(s), s.sessions()[0]
(2, ('z', 'a', 'b', 'w'))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["SessionNeighbours"]

_AFTER = tuple(1.0 / (d + 1) for d in range(64))
"""Weight of the item ``d + 1`` places after the shared one."""
_CONTEXT = tuple(1.0 / (j + 1) for j in range(64))
"""Weight of the current session's ``j``-th newest item in the overlap (the touched item is j = 0)."""


class SessionNeighbours:
    """The last ``capacity`` sessions that touched one item, each with up to ``length`` of its items.

    Parameters
    ----------
    capacity
        Sessions kept; the oldest is dropped when a new one touches the item.
    length
        Items kept per session, the item itself included: at most half of them
        before it (the nearest), so there is room for what came after it; later
        items are dropped once full.
    """

    __slots__ = ("_keys", "_sessions", "capacity", "length")

    backward_weight = 0.5
    """Items before the shared one count this much of those as far after it (as co-visitation's backward links)."""

    def __init__(self, capacity: int = 10, length: int = 10):
        if capacity < 1 or length < 2:
            raise ValueError(f"capacity must be at least 1 and length at least 2, got {capacity}, {length}")
        self.capacity = capacity
        self.length = length
        self._keys: list[str] = []
        """Session keys, newest first (a link mostly names one of the newest)."""
        self._sessions: list[tuple[str, ...]] = []
        """Their items in session order, beside ``_keys``."""

    def __len__(self) -> int:
        return len(self._keys)

    def sessions(self) -> list[tuple[str, ...]]:
        """The kept sessions' items, newest session first."""
        return list(self._sessions)

    def learn_touch(self, session: str, item: str, previous: Sequence[str]) -> None:
        """``session`` touched ``item`` after ``previous`` (distinct, newest first); a session already kept stays."""
        if session in self._keys:
            return
        before = previous[: self.length // 2]  # room after it for what comes next
        self._keys.insert(0, session)
        self._sessions.insert(0, (*before[::-1], item))
        if len(self._keys) > self.capacity:
            self._keys.pop()
            self._sessions.pop()

    def learn_next(self, session: str, other: str) -> None:
        """``other`` came later in ``session`` (ignored if the session is no longer kept, or is full)."""
        keys = self._keys
        if session not in keys:
            return
        at = keys.index(session)
        items = self._sessions[at]
        if len(items) < self.length and other not in items:
            self._sessions[at] = (*items, other)

    def scores(self, item: str, previous: Sequence[str], session: str = "") -> dict[str, float]:
        """Items of ``item``'s sessions, each scored by the sessions' overlap with the current one.

        ``previous`` are the current session's items before ``item``, newest
        first; the current ``session`` itself is left out. A kept session's
        weight is the sum of ``1 / (j + 1)`` over the current session's items
        it holds (``item`` is j = 0); an item ``d`` places after ``item`` in it
        scores that weight times ``1 / d``, one ``d`` places before it
        :attr:`backward_weight` times that, summed over the sessions. Only
        sessions that share more than ``item`` count: one that shares just it
        is a plain co-visit, which co-visitation counts already.
        """
        out: dict[str, float] = {}
        if not self._sessions or not previous:
            return out
        context = dict(zip(previous, _CONTEXT[1:], strict=False))
        shared = context.keys()
        unrelated = shared.isdisjoint
        get = out.get
        backward = self.backward_weight
        for key, items in zip(self._keys, self._sessions, strict=True):
            if unrelated(items) or key == session:
                continue  # a session sharing only the item itself is a plain co-visit, which the flow counts already
            at = items.index(item) + 1
            weight = 1.0
            for other in shared & items:
                weight += context[other]
            for other, after in zip(items[at:], _AFTER, strict=False):
                out[other] = get(other, 0.0) + weight * after
            if at > 1 and backward:  # what came before it, nearest first
                weight *= backward
                for other, after in zip(items[at - 2::-1], _AFTER, strict=False):
                    out[other] = get(other, 0.0) + weight * after
        return out

    def __getstate__(self) -> tuple[int, int, list[str], list[tuple[str, ...]]]:
        return self.capacity, self.length, self._keys, self._sessions

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        self.capacity, self.length, self._keys, self._sessions = state
