"""A user's candidate list from the neighbours of the items they touched.

The user-keyed state of the dataflow's last stage: for each recent item it
caches that item's neighbour list as the item stage last reported it, and
merges them, newer and heavier interactions counting more. Bounded by the
user's recent items times the neighbours per item, and kept as a tuple of ids
and a tuple of scores per list (~1.1 KB for 25 neighbours instead of ~2 KB of
``(id, score)`` pairs; an ``array('d')`` would take 0.65 KB but makes a float
object per read, 3% of the flow's CPU).

Examples
--------
>>> b = NeighbourCandidates()
>>> b.learn_one("a", [("b", 4.0), ("c", 2.0)])
>>> b.learn_one("x", [("c", 1.0), ("y", 1.0)])
>>> recent = [("x", 1.0, 20.0), ("a", 1.0, 10.0)]   # newest first
>>> ranked = b.rank(recent, n=10)
>>> ranked[0][0], [item for item, _ in ranked]
('c', ['c', 'y', 'b'])
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from operator import itemgetter
from typing import ClassVar

from online.covisitation import TopNeighbours

__all__ = ["NeighbourCandidates"]

_score = itemgetter(1)


class NeighbourCandidates:
    """Caches neighbour lists of recent items and merges them into one ranking."""

    __slots__ = ("_neighbours",)

    merge_depth: ClassVar[int] = 10
    """Recent items whose neighbours are merged; older ones weigh under 1 % with position decay 2."""

    def __init__(self) -> None:
        self._neighbours: dict[str, tuple[tuple[str, ...], tuple[float, ...]]] = {}

    def learn_one(self, item: str, neighbours: Sequence[tuple[str, float]]) -> None:
        """Remember the latest neighbour list of ``item`` (best first)."""
        if isinstance(neighbours, TopNeighbours):  # what the flow's item stage sends
            self._neighbours[item] = neighbours.columns()
        else:
            self._neighbours[item] = tuple(zip(*neighbours, strict=True)) or ((), ())  # type: ignore[assignment]

    def forget_except(self, keep: Collection[str]) -> None:
        """Drop cached lists of items no longer among the user's recent items."""
        for item in [i for i in self._neighbours if i not in keep]:
            del self._neighbours[item]

    def rank(
        self,
        recent: Sequence[tuple[str, float, float]],
        n: int,
        exclude: Collection[str] = (),
        recent_weight: float = 0.0,
        position_decay: float = 1.0,
        sessions: Mapping[str, float] | None = None,
        session_weight: float = 0.0,
    ) -> list[tuple[str, float]]:
        """Merge neighbour lists of ``recent`` (newest first) into the top ``n``.

        The j-th newest item counts ``1 / (j + 1) ** position_decay`` (linear decay
        is what session kNN methods use; 2 puts more weight on the last items,
        which measured better on RSC15) times ``log1p`` of its interest weight, so a purchase
        counts more than a view without drowning it; items with negative weight
        (dislikes) are never recommended and contribute nothing. With
        ``recent_weight`` = 0 they are left out; > 0 they are candidates themselves, at
        that multiple of their own influence (people go back to what they just
        looked at: a quarter of next clicks in RSC15 repeat the current item).

        ``sessions`` scores candidates for the newest item from the sessions that
        went through it (:class:`~online.session_neighbours.SessionNeighbours`); they
        count as one more list of it, relative to its best, at ``session_weight``.
        """
        scores: dict[str, float] = {}
        # A list (what the flow's touches carry) is read by index, its rows unboxed natively when compiled; no slice.
        rows: list[tuple[str, float, float]] = recent if isinstance(recent, list) else list(recent)
        negative: set[str] = set()
        for row in rows:
            if row[1] < 0.0:
                negative.add(row[0])
        for position in range(min(len(rows), self.merge_depth)):
            item, weight, _ = rows[position]
            if weight <= 0.0:
                continue
            # math.pow of two floats is a native call when compiled (of an int, a Python call): the same value.
            influence = math.log1p(weight) / math.pow(float(position + 1), position_decay)
            if recent_weight > 0.0:
                scores[item] = scores.get(item, 0.0) + recent_weight * influence
            neighbours = self._neighbours.get(item)
            if neighbours is None or not neighbours[0]:
                continue
            others, evidence = neighbours
            scale = influence / (evidence[0] or 1.0)
            for i in range(len(others)):  # indexed (mypyc: faster than zip); one lookup to read, one to write
                other = others[i]
                known = scores.get(other)
                scores[other] = scale * evidence[i] if known is None else known + scale * evidence[i]
        if sessions and session_weight > 0.0 and rows and rows[0][1] > 0.0:
            scale = session_weight * math.log1p(rows[0][1]) / max(sessions.values())
            for other, value in sessions.items():
                scores[other] = scores.get(other, 0.0) + scale * value
        for item in negative:  # three loops, not one over a tuple of the three: no tuple built per event
            scores.pop(item, None)
        for item in exclude:
            scores.pop(item, None)
        if recent_weight <= 0.0:  # the user's own items are not candidates
            for row in rows:
                scores.pop(row[0], None)
        return _top(scores, n)


def _top(scores: dict[str, float], n: int) -> list[tuple[str, float]]:
    """The ``n`` best of ``scores``, best first, ties in insertion order (as a stable sort of all of them).

    Sorting the bare scores finds the ``n``-th best (floats compare fast, no key calls); only the
    items at or above it are paired and sorted (~12% faster than sorting every item; ~3x faster
    than ``heapq.nlargest``).

    >>> _top({"a": 1.0, "b": 3.0, "c": 3.0, "d": 2.0}, 2)
    [('b', 3.0), ('c', 3.0)]
    """
    if len(scores) > n > 0:
        threshold = sorted(scores.values(), reverse=True)[n - 1]
        kept = [(item, score) for item, score in scores.items() if score >= threshold]
    else:
        kept = list(scores.items())
    return sorted(kept, key=_score, reverse=True)[:n]
