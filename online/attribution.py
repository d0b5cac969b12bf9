"""Attribution: which served list earned a click, a cart or a purchase — its position, source and variant.

Every list the server answers carries a ``rec_id``; the server records the
impression (the items shown, their sources, the variant) as a ``served``
message in the user's event stream, so the flow sees it in order with the
user's own events. A user's :class:`AttributionMemory` (part of their state,
bounded) keeps their last served lists and the clicks made from them:

* an event carrying a ``rec_id`` is attributed to that list, at the item's
  position (``not_listed`` if the item was not in it, ``unknown`` if no such
  list is remembered or the id was malformed — the event itself always counts);
* a cart or purchase without a ``rec_id`` is attributed to the list the item
  was last clicked from, within ``window_s`` of event time (the conversion
  window), so a purchase made later through the cart still counts.

It also scores each served list prequentially (:meth:`AttributionMemory.score_next`):
the user's next event after a list labels it, a hit when that event's item is
in the list's top 10 -- the live HR@10 of what each variant actually showed.

>>> memory = AttributionMemory(max_lists=4, window_s=3600.0)
>>> memory.record(ServedList("r1", 100.0, "livereco", ("a", "b", "c"), ("personal", "trending", "explore")))
>>> memory.attribute("click", "b", "r1", 110.0, None)
Attribution(kind='click', status='attributed', rec_id='r1', position=2, source='trending', variant='livereco', value=0.0, experiment='')
>>> memory.attribute("click", "a", "r9", 120.0, None).status, memory.attribute("click", "z", "r1", 120.0, None).status
('unknown', 'not_listed')
>>> memory.attribute("purchase", "b", None, 200.0, 19.9).status  # clicked from r1 at 110: within the window
'attributed'
>>> memory.attribute("purchase", "b", None, 9000.0, 5.0).status  # the click is older than the window
'unattributed'
>>> memory.record(ServedList("r2", 9100.0, "control", ("x", "y"), ("trending", "trending")))
>>> scored = memory.score_next("y", 9110.0)
>>> scored[0].rec_id, scored[1], memory.score_next("x", 9120.0)  # a list is labelled by the next event only
('r2', True, None)
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

__all__ = ["ATTRIBUTED_KINDS", "HIT_AT", "SOURCES", "STATUSES", "Attribution", "AttributionMemory", "ServedList"]

ATTRIBUTED_KINDS = ("click", "add_to_cart", "purchase")
"""Event types attributed to lists (``view`` of a listed item counts as a click when it carries the ``rec_id``)."""
SOURCES = ("personal", "trending", "explore", "affinity", "rule", "promotion", "pinned", "similar", "other")
"""The ``source`` label: a closed set (anything else is ``other``)."""
STATUSES = ("attributed", "not_listed", "unknown", "unattributed")
HIT_AT = 10
"""A served list scores a hit when the user's next event is on an item of its top ``HIT_AT`` (live HR@10)."""


@dataclass(frozen=True, slots=True)
class ServedList:
    """One answer the server gave: its id, when (event-time seconds), its variant, items and their sources."""

    rec_id: str
    ts: float
    variant: str
    items: tuple[str, ...]
    sources: tuple[str, ...]
    experiment: str = ""


@dataclass(frozen=True, slots=True)
class Attribution:
    """What an event was attributed to (``status`` says whether it was)."""

    kind: str
    status: str
    rec_id: str | None = None
    position: int | None = None
    """1-based position of the item in the list."""
    source: str | None = None
    variant: str | None = None
    value: float = 0.0
    experiment: str = ""


class AttributionMemory:
    """A user's last ``max_lists`` served lists and the clicks made from them, forgotten after ``window_s``."""

    __slots__ = ("_clicks", "_lists", "_unscored", "max_lists", "window_s")

    def __init__(self, max_lists: int = 20, window_s: float = 7 * 86400.0):
        self.max_lists = max_lists
        self.window_s = window_s
        self._lists: OrderedDict[str, ServedList] = OrderedDict()
        self._clicks: OrderedDict[str, tuple[str, float]] = OrderedDict()
        """Item -> (rec_id it was clicked from, when), for conversions without a rec_id."""
        self._unscored: str | None = None
        """The newest served list, until the user's next event labels it (:meth:`score_next`)."""

    def __len__(self) -> int:
        return len(self._lists)

    def __getstate__(self) -> tuple[Any, ...]:
        return self.max_lists, self.window_s, list(self._lists.values()), list(self._clicks.items()), self._unscored

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        self.max_lists, self.window_s, lists, clicks = state[:4]
        self._lists = OrderedDict((s.rec_id, s) for s in lists)
        self._clicks = OrderedDict(clicks)
        self._unscored = state[4] if len(state) > 4 else None  # a snapshot from before the scoring: nothing pending

    def record(self, served: ServedList) -> None:
        """Remember a served list (the oldest goes beyond ``max_lists``)."""
        self._lists[served.rec_id] = served
        self._lists.move_to_end(served.rec_id)
        while len(self._lists) > self.max_lists:
            self._lists.popitem(last=False)
        self._unscored = served.rec_id  # an older list not yet labelled never will be: this one was shown last

    def score_next(self, item_id: str, ts: float) -> tuple[ServedList, bool] | None:
        """Label the newest served list with the user's next event (on ``item_id`` at ``ts``): ``(the list, hit)``,
        a hit when the item is in its top :data:`HIT_AT`; ``None`` when no list waits (or it is older than the
        window)."""
        rec_id, self._unscored = self._unscored, None
        served = self._lists.get(rec_id) if rec_id is not None else None
        if served is None or served.ts < ts - self.window_s:
            return None
        return served, item_id in served.items[:HIT_AT]

    def attribute(self, kind: str, item_id: str, rec_id: str | None, ts: float, value: float | None) -> Attribution:
        """Attribute an event of type ``kind`` on ``item_id`` (``rec_id``: what it carried, ``""`` if malformed)."""
        self._forget_before(ts - self.window_s)
        amount = value or 0.0
        if rec_id is None:
            if kind == "click":
                return Attribution(kind, "unattributed", value=amount)
            clicked = self._clicks.get(item_id)
            if clicked is None or clicked[0] not in self._lists:
                return Attribution(kind, "unattributed", value=amount)
            rec_id = clicked[0]
        served = self._lists.get(rec_id) if rec_id else None
        if served is None:
            return Attribution(kind, "unknown", rec_id or None, value=amount)
        try:
            row = served.items.index(item_id)
        except ValueError:
            return Attribution(kind, "not_listed", rec_id, variant=served.variant, value=amount,
                               experiment=served.experiment)
        if kind == "click":
            self._clicks[item_id] = (rec_id, ts)
            self._clicks.move_to_end(item_id)
            while len(self._clicks) > 4 * self.max_lists:
                self._clicks.popitem(last=False)
        source = served.sources[row] if row < len(served.sources) else "other"
        return Attribution(kind, "attributed", rec_id, row + 1, source if source in SOURCES else "other",
                           served.variant, amount, served.experiment)

    def _forget_before(self, cutoff: float) -> None:
        while self._lists and next(iter(self._lists.values())).ts < cutoff:
            self._lists.popitem(last=False)
        while self._clicks and next(iter(self._clicks.values()))[1] < cutoff:
            self._clicks.popitem(last=False)
