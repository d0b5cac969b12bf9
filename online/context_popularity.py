"""What is popular in a request's context (the device, the hour of the day), in bounded memory.

The ranker's context features (:data:`online.blend.FEATURES` ``device`` and
``hour``) are a candidate's popularity among the recent events of its
*segment*, relative to that segment's most popular item (1.0): users on
phones may go to other items than users on desktops, and evenings to other
items than mornings. A per-request constant cannot move a linear ranking (every
candidate would get the same value); a per-candidate popularity within the
segment can, and the ranker learns how much it is worth.

An event's segments (:func:`context_segments`): ``device=<context.device>``
when the event's context names a device, and ``hour=<h>`` with ``h`` its
``context.hour`` when that is a whole number from 0 to 23 (the producer's
local hour), else the UTC hour of its time.

:class:`ContextPopularity` keeps, per segment, the ``per_segment`` items with
the most forward-decayed events (half-life ``half_life_s``, event time), kept
as log scores so they never overflow. A full segment makes room with the
Space-Saving rule: the new item takes the place of the least popular one and
inherits its count, so an item that keeps coming is never under-counted and
the top is right for items well above the bound. At most ``max_segments``
segments are kept; a new one replaces the coldest (the one whose best item's
score is lowest) if it beats it. The flow's ranker replica learns it from its
users' events after scoring each (so no event sees itself) and publishes the
segments it changed; the server reads them back (:mod:`serving.ranker_weights`).

This module imports only the standard library and :mod:`online.forward_decay`.

Examples
--------
>>> popularity = ContextPopularity(per_segment=2, half_life_s=3600.0)
>>> for item, segment in [("a", "device=phone"), ("a", "device=phone"), ("b", "device=phone"), ("c", "device=desktop")]:
...     popularity.learn_one(segment, item, ts=0.0)
>>> {item: round(share, 2) for item, share in popularity.relative("device=phone").items()}
{'a': 1.0, 'b': 0.5}
>>> popularity.learn_one("device=phone", "z", ts=7200.0)   # two half-lives later (an event counts 4x): z takes b's place and count, 1 + 4 against 2
>>> popularity.top("device=phone", 5)
[('z', 1.0), ('a', 0.4)]
>>> popularity.relative("device=tv")                          # a segment never seen
{}
>>> context_segments({"device": "phone", "hour": 21}, ts=0.0), context_segments({}, ts=13 * 3600.0)
(('device=phone', 'hour=21'), ('', 'hour=13'))
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from online.forward_decay import log_add

__all__ = ["ContextPopularity", "context_segments", "device_segment", "hour_segment"]

_EMPTY: dict[str, float] = {}


def device_segment(device: str | float | None) -> str:
    """The segment of a device (``""``: none named, so no segment)."""
    return f"device={device}" if device is not None and device != "" else ""


def hour_segment(hour: int) -> str:
    """The segment of an hour of the day (0-23)."""
    return f"hour={hour}"


def context_segments(context: Mapping[str, str | float], ts: float) -> tuple[str, str]:
    """An event's (device segment or ``""``, hour segment): see the module's docstring."""
    hour = context.get("hour")
    if isinstance(hour, float | int) and not isinstance(hour, bool) and hour == int(hour) and 0 <= hour <= 23:
        of_day = int(hour)
    else:
        of_day = int(ts // 3600.0) % 24
    return device_segment(context.get("device")), hour_segment(of_day)


class ContextPopularity:
    """Per context segment, the ``per_segment`` items with the most decayed events; at most ``max_segments`` segments."""

    __slots__ = ("_best", "_changed", "_relative", "_segments", "decay", "max_segments", "per_segment")

    def __init__(self, per_segment: int = 50, max_segments: int = 64, half_life_s: float = 7 * 86400.0):
        if per_segment < 1 or max_segments < 1 or not half_life_s > 0.0:
            raise ValueError(f"per_segment and max_segments must be at least 1 and half_life_s positive, got "
                             f"{per_segment}, {max_segments}, {half_life_s}")
        self.per_segment = per_segment
        self.max_segments = max_segments
        self.decay = math.log(2.0) / half_life_s
        self._segments: dict[str, dict[str, float]] = {}
        """Segment -> item -> log of its forward-decayed event count."""
        self._relative: dict[str, dict[str, float]] = {}
        """Segment -> item -> its popularity relative to the segment's best, kept up to date as it learns."""
        self._best: dict[str, float] = {}
        """Segment -> its best log score (what :attr:`_relative` is relative to)."""
        self._changed: set[str] = set()
        """Segments changed since :meth:`changed_tops` last ran."""

    def __len__(self) -> int:
        return len(self._segments)

    def learn_one(self, segment: str, item: str, ts: float) -> None:
        """One event of ``segment`` went to ``item`` at event time ``ts``."""
        if not segment:
            return
        arrival = self.decay * ts
        scores = self._segments.get(segment)
        if scores is None:
            if len(self._segments) >= self.max_segments:
                coldest = min(self._segments, key=lambda name: max(self._segments[name].values()))
                if max(self._segments[coldest].values()) >= arrival:
                    return  # every kept segment is hotter than this event
                del self._segments[coldest], self._relative[coldest], self._best[coldest]
                self._changed.discard(coldest)
            scores = self._segments[segment] = {}
            self._relative[segment], self._best[segment] = {}, arrival
        relative = self._relative[segment]
        old = scores.get(item)
        if old is None and len(scores) >= self.per_segment:
            least = min(scores, key=scores.__getitem__)
            old = scores.pop(least)  # Space-Saving: the newcomer inherits the least popular item's count
            del relative[least]
        score = scores[item] = arrival if old is None else log_add(old, arrival)
        best = self._best[segment]
        if score > best:  # a new best: every share is relative to it (the top item's own events, mostly)
            self._best[segment] = score
            for other, value in scores.items():
                relative[other] = math.exp(value - score)
        else:
            relative[item] = math.exp(score - best)
        self._changed.add(segment)

    def relative(self, segment: str) -> Mapping[str, float]:
        """Each kept item's popularity in ``segment`` relative to its best (1.0); empty for an unknown segment.

        A live view, kept up to date as the segment learns (one ``exp`` per event, all of them
        only when the best item changes): read it before the next :meth:`learn_one`.
        """
        return self._relative.get(segment, _EMPTY)

    def top(self, segment: str, n: int) -> list[tuple[str, float]]:
        """The ``n`` most popular items of ``segment``, best first, relative to the best."""
        relative = self.relative(segment)
        return sorted(relative.items(), key=lambda pair: (-pair[1], pair[0]))[:max(n, 0)]

    def changed_tops(self) -> dict[str, list[tuple[str, float]]]:
        """The whole top of every segment changed since the last call (what the flow publishes)."""
        out = {segment: self.top(segment, self.per_segment) for segment in sorted(self._changed)}
        self._changed.clear()
        return out

    def __getstate__(self) -> tuple[int, int, float, dict[str, dict[str, float]]]:
        return self.per_segment, self.max_segments, self.decay, self._segments

    def __setstate__(self, state: tuple[int, int, float, dict[str, dict[str, float]]]) -> None:
        self.per_segment, self.max_segments, self.decay, self._segments = state
        self._best = {segment: max(scores.values()) for segment, scores in self._segments.items()}
        self._relative = {segment: {item: math.exp(value - self._best[segment]) for item, value in scores.items()}
                          for segment, scores in self._segments.items()}
        self._changed = set(self._segments)

