"""What one user did lately: de-duplication, sessions, weighted recent items, purchases.

This is the user-keyed state of the dataflow's first stage. Everything is
bounded: ``recent_items`` distinct items (with their category, when events
carry one), the event ids of the last ``dedup_horizon_s`` of event time (at
most ``dedup_max_ids``: :class:`~online.event_dedup.EventDedup`), the last
``link_window`` items of the current session, the last ``window_purchases``
purchases.

Examples
--------
>>> from online.contract import Event
>>> h = UserHistory(recent_items=3, session_gap_s=1800.0)
>>> o = h.learn_one(Event("u", "a", "view", 0.0, event_id="e1"), 1.0)
>>> o.new_session, o.previous
(True, [])
>>> o = h.learn_one(Event("u", "b", "add_to_cart", 60.0, event_id="e2"), 3.0)
>>> o.previous
['a']
>>> h.learn_one(Event("u", "b", "add_to_cart", 60.0, event_id="e2"), 3.0) is None  # a retry
True
>>> o = h.learn_one(Event("u", "c", "view", 60.0 + 3600.0), 1.0)   # an hour later
>>> o.new_session, o.previous
(True, [])
>>> [(item, weight) for item, weight, _ in h.recent()]
[('c', 1.0), ('b', 3.0), ('a', 1.0)]

Purchases open a window (see :mod:`online.purchases`): what was bought in it,
in which categories, and which of the user's recent items share them.

>>> o = h.learn_one(Event("u", "t1", "view", 4000.0, context={"category": "treadmills"}), 1.0)
>>> o = h.learn_one(Event("u", "t2", "purchase", 4060.0, context={"category": "treadmills"}), 5.0)
>>> o.category
'treadmills'
>>> w = h.purchase_window(4100.0, window_s=3600.0)
>>> w.purchases, sorted(w.kinds), w.of_kind
(('t2',), ['treadmills'], (('t2', 'treadmills'), ('t1', 'treadmills')))
>>> h.purchase_window(4060.0 + 3600.0, window_s=3600.0) is None   # the window has closed
True
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from online.contract import Event
from online.event_dedup import EventDedup
from online.init_pickle import reduce_by_init
from online.purchases import PurchaseWindow

__all__ = ["Observation", "UserHistory"]


@dataclass(slots=True)
class Observation:
    """What one accepted event means for the user: its session and the items before it."""

    session_id: str
    new_session: bool
    previous: list[str]
    """Distinct items earlier in the same session, newest first (co-visitation pairs)."""
    category: str | None = None
    """The event's ``context.category`` as a string (interned: items and lists keep it), if any."""

    def __init__(self, session_id: str, new_session: bool, previous: list[str], category: str | None = None) -> None:
        # Written out, not generated: mypyc compiles only the methods in the source (see online.init_pickle).
        self.session_id = session_id
        self.new_session = new_session
        self.previous = previous
        self.category = category

    def __reduce__(self) -> tuple[Any, ...]:
        return reduce_by_init(self)


class UserHistory:
    """Bounded per-user history.

    Parameters
    ----------
    recent_items
        Distinct items remembered, newest first; weights add up per item.
    session_gap_s
        Inactivity that ends a session when events carry no ``session_id``.
    link_window
        Items of the current session that the next item is paired with.
    dedup_horizon_s, dedup_max_ids
        A retried ``event_id`` counts once within this much event time of the
        first, among the user's latest ``dedup_max_ids`` ids
        (:class:`~online.event_dedup.EventDedup`: 64-bit hashes, 24 bytes an id,
        made at the user's first event with an id). Events without an
        ``event_id`` are never de-duplicated.
    """

    window_purchases: ClassVar[int] = 8
    """Latest purchases remembered with their category and time (a purchase window counts at most these)."""

    __slots__ = (
        "_bought",
        "_last_ts",
        "_recent",
        "_session_items",
        "_sessions",
        "dedup",
        "dedup_horizon_s",
        "dedup_max_ids",
        "events",
        "link_window",
        "purchased",
        "recent_items",
        "session_gap_s",
        "session_id",
    )

    def __init__(self, recent_items: int = 20, session_gap_s: float = 1800.0, link_window: int = 5,
                 dedup_horizon_s: float = 86400.0, dedup_max_ids: int = 2000):
        self.recent_items = recent_items
        self.session_gap_s = session_gap_s
        self.link_window = link_window
        self.dedup_horizon_s = dedup_horizon_s
        self.dedup_max_ids = dedup_max_ids
        self.dedup: EventDedup | None = None
        """The user's recent event ids (retries of them count once); ``None`` until an event has one."""
        # Plain dicts (insertion order: re-inserting moves an item last) and lists bounded by hand, not OrderedDict
        # and deque(maxlen): made natively for every new user, read natively, and ~2.4 KB smaller per user.
        self._recent: dict[str, list[Any]] = {}  # item -> [weight, ts, category], oldest first
        self._session_items: list[str] = []  # the session's last link_window items, oldest first
        self._sessions = 0
        self._last_ts: float | None = None
        self.events = 0
        self.session_id = ""
        self.purchased: dict[str, float] = {}  # item -> ts, oldest first
        self._bought: list[tuple[str, str | None, float]] = []  # the last window_purchases purchases, oldest first

    def learn_one(self, event: Event, weight: float, kind: str | None = None) -> Observation | None:
        """Record ``event`` with its interest ``weight``; ``None`` when it is a duplicate.

        ``kind`` is the item's category as the catalog knows it (:attr:`online.item_facts.ItemFacts.kind`);
        without one, the event's ``context.category`` stands in.
        """
        event_id = event.event_id
        if event_id is not None:
            dedup = self.dedup
            if dedup is None:  # most users of a log without ids never pay for one
                dedup = self.dedup = EventDedup(self.dedup_horizon_s, self.dedup_max_ids)
            if dedup.is_duplicate(event_id, event.ts):
                return None
        self.events += 1
        if event.session_id is not None:
            new_session = event.session_id != self.session_id
            session_id = event.session_id
        else:
            new_session = self._last_ts is None or event.ts - self._last_ts > self.session_gap_s
            session_id = f"s{self._sessions + 1}" if new_session else self.session_id
        if new_session:
            self._sessions += 1
            self._session_items.clear()
            self.session_id = session_id
        self._last_ts = event.ts if self._last_ts is None else max(self._last_ts, event.ts)

        previous = [item for item in reversed(self._session_items) if item != event.item_id]
        if weight > 0.0:
            session_items = self._session_items
            if event.item_id in session_items:
                session_items.remove(event.item_id)
            session_items.append(event.item_id)
            if len(session_items) > self.link_window:
                del session_items[0]
        if kind is not None:
            category: str | None = kind  # interned by the catalog stage
        else:
            raw_category = event.context.get("category")
            category = None if raw_category is None else sys.intern(str(raw_category))
        slot = self._recent.pop(event.item_id, None)
        if slot is None:
            self._recent[event.item_id] = [weight, event.ts, category]
        else:
            self._recent[event.item_id] = [weight + slot[0], event.ts, category or slot[2]]
        if len(self._recent) > self.recent_items:
            _drop_oldest(self._recent)
        if event.type == "purchase":
            self.purchased.pop(event.item_id, None)
            self.purchased[event.item_id] = event.ts
            if len(self.purchased) > self.recent_items:
                _drop_oldest(self.purchased)
            self._bought.append((event.item_id, self._recent[event.item_id][2], event.ts))  # the latest category known
            if len(self._bought) > self.window_purchases:
                del self._bought[0]
        return Observation(session_id=session_id, new_session=new_session, previous=previous, category=category)

    def recent(self) -> list[tuple[str, float, float]]:
        """``(item, summed weight, last ts)``, newest first."""
        return [(item, w, ts) for item, (w, ts, _) in reversed(self._recent.items())]

    def category_of(self, item: str) -> str | None:
        """The last category a recent item was seen with (``None``: none, or not a recent item)."""
        slot = self._recent.get(item)
        return None if slot is None else slot[2]

    def purchase_window(self, now: float, window_s: float, bought: str | None = None) -> PurchaseWindow | None:
        """The purchases of the last ``window_s`` seconds before ``now`` (event time); ``None`` if there are none.

        ``bought`` names the item the current event bought, if it is a purchase.
        """
        opened = now - window_s
        if not self._bought or self._bought[-1][2] <= opened:
            return None
        inside = [(item, kind) for item, kind, ts in reversed(self._bought) if ts > opened]
        kinds = frozenset(kind for _, kind in inside if kind is not None)
        of_kind = tuple((item, slot[2]) for item, slot in reversed(self._recent.items()) if slot[2] in kinds) \
            if kinds else ()
        return PurchaseWindow(tuple(item for item, _ in inside), kinds, of_kind, bought)

    @property
    def last_ts(self) -> float | None:
        return self._last_ts

    def absorb(self, recent: Sequence[tuple[str, float, float]], exclude: Sequence[str]) -> None:
        """Fold another user's recent items (``(item, weight, ts)``, newest first) and exclusions into this history
        (an identity merge), in event-time order with this user's own; the newest ``recent_items`` stay.

        >>> h = UserHistory(recent_items=3)
        >>> h.absorb([("b", 2.0, 20.0), ("a", 1.0, 10.0)], ["z"])
        >>> [item for item, _, _ in h.recent()], list(h.purchased)
        (['b', 'a'], ['z'])
        """
        merged = {item: [w, ts, cat] for item, (w, ts, cat) in self._recent.items()}
        for item, weight, ts in recent:
            slot = merged.get(item)
            merged[item] = [weight, ts, None] if slot is None else [slot[0] + weight, max(slot[1], ts), slot[2]]
        ordered = sorted(merged.items(), key=lambda pair: pair[1][1])[-self.recent_items:]
        self._recent = dict(ordered)
        for item in exclude:
            self.purchased.pop(item, None)
            self.purchased[item] = 0.0
            if len(self.purchased) > self.recent_items:
                _drop_oldest(self.purchased)


def _drop_oldest(table: dict[str, Any]) -> None:
    """Remove the first-inserted entry of ``table`` (``OrderedDict.popitem(last=False)`` of a plain dict)."""
    for key in table:
        del table[key]
        return
