"""The messages stages send each other: the user-history stage's :class:`Touch`, :class:`Link` and
:class:`PurchaseLink` to items, the item stage's :class:`NeighbourReply` back to the user, and the
user-list stage's :class:`Outcome` (with the user's :class:`PersonalPool`) to the ranker.

>>> import pickle
>>> link = Link("a", "b", 0.5, 1.7e9)                   # b came after a: routed to a
>>> pickle.loads(pickle.dumps(link)) == link
True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from online.init_pickle import reduce_by_init
from online.item_facts import ItemFacts
from online.purchases import PurchaseWindow

__all__ = ["Link", "NeighbourReply", "NewItem", "Outcome", "PersonalPool", "PurchaseLink", "Touch"]


@dataclass(slots=True)
class Touch:
    """A user interacted with ``item_id`` (the key this is routed by)."""

    item_id: str
    user_id: str
    entry_id: str
    seq: int
    """The user's accepted-event count: replies may come back out of order across workers."""
    weight: float
    ts: float
    accepted_ms: int
    category: str | None
    previous: list[str]
    session_id: str
    recent: list[tuple[str, float, float]]
    exclude: list[str]
    life: int = 0
    """Which life of the user's history this is (its creation time in ns): a user evicted while idle
    comes back with a new one, and the user-list stage starts over with it."""
    previous_kinds: tuple[str | None, ...] = ()
    """The categories of ``previous`` (empty when this event has no category)."""
    window: PurchaseWindow | None = None
    """The user's purchases within ``LIVERECO_PURCHASE_WINDOW_S`` (``None``: none, the usual case)."""
    session_key: str = ""
    """The session's key among all users' (user and session id): what items remember sessions by."""
    segments: tuple[str, ...] = ()
    """The event's context segments, device and hour (:func:`online.context_popularity.context_segments`;
    empty while ``LIVERECO_CONTEXT_ITEMS`` is 0)."""
    facts: ItemFacts | None = None
    """What the catalog says about the item (``None``: not in the catalog; ``category`` is then the event's)."""

    def __init__(self, item_id: str, user_id: str, entry_id: str, seq: int, weight: float, ts: float,
                 accepted_ms: int, category: str | None, previous: list[str], session_id: str,
                 recent: list[tuple[str, float, float]], exclude: list[str], life: int = 0,
                 previous_kinds: tuple[str | None, ...] = (), window: PurchaseWindow | None = None,
                 session_key: str = "", segments: tuple[str, ...] = (), facts: ItemFacts | None = None) -> None:
        # Written out, not generated: mypyc compiles only the methods in the source (see online.init_pickle).
        self.item_id = item_id
        self.user_id = user_id
        self.entry_id = entry_id
        self.seq = seq
        self.weight = weight
        self.ts = ts
        self.accepted_ms = accepted_ms
        self.category = category
        self.previous = previous
        self.session_id = session_id
        self.recent = recent
        self.exclude = exclude
        self.life = life
        self.previous_kinds = previous_kinds
        self.window = window
        self.session_key = session_key
        self.segments = segments
        self.facts = facts

    def __reduce__(self) -> tuple[Any, ...]:
        return reduce_by_init(self)


@dataclass(slots=True)
class NeighbourReply:
    """The touched item's current neighbours, on their way back to the user."""

    item_id: str
    neighbours: Sequence[tuple[str, float]]
    """Best first, evidence relative to the first (from the flow: a :class:`~online.covisitation.TopNeighbours`)."""
    touch: Touch
    embedding: tuple[float, ...] = ()
    """The item's context embedding, for the user's session embedding, and its length."""
    embedding_norm: float = 0.0
    of_kind: tuple[tuple[str, str], ...] = ()
    """Inside a purchase window: the ``neighbours`` in a bought category, with their category."""
    bought_next: list[tuple[str, float]] | None = None
    """To a purchase: what buyers of the item bought next, evidence relative to the strongest."""
    sessions: dict[str, float] | None = None
    """What came after the item in its recent sessions, scored by their overlap with the user's session
    (:meth:`~online.session_neighbours.SessionNeighbours.scores`; ``None`` when turned off)."""

    def __init__(self, item_id: str, neighbours: Sequence[tuple[str, float]], touch: Touch,
                 embedding: tuple[float, ...] = (), embedding_norm: float = 0.0,
                 of_kind: tuple[tuple[str, str], ...] = (), bought_next: list[tuple[str, float]] | None = None,
                 sessions: dict[str, float] | None = None) -> None:
        # Written out, not generated: mypyc compiles only the methods in the source (see online.init_pickle).
        self.item_id = item_id
        self.neighbours = neighbours
        self.touch = touch
        self.embedding = embedding
        self.embedding_norm = embedding_norm
        self.of_kind = of_kind
        self.bought_next = bought_next
        self.sessions = sessions

    def __reduce__(self) -> tuple[Any, ...]:
        return reduce_by_init(self)

    @property
    def user_id(self) -> str:
        return self.touch.user_id


@dataclass(slots=True)  # never mutated, but not frozen: a frozen __init__ costs ~6x, per event
class Link:
    """Evidence that ``other`` goes after ``item_id`` (the key this is routed by)."""

    item_id: str
    other: str
    weight: float
    ts: float
    category: str | None = None
    """The category of ``other``, if its event had one."""
    session: str = ""
    """The key of the session both were in (:attr:`Touch.session_key`)."""

    def __init__(self, item_id: str, other: str, weight: float, ts: float, category: str | None = None,
                 session: str = "") -> None:
        # Written out, not generated: mypyc compiles only the methods in the source (see online.init_pickle).
        self.item_id = item_id
        self.other = other
        self.weight = weight
        self.ts = ts
        self.category = category
        self.session = session

    def __reduce__(self) -> tuple[Any, ...]:
        return reduce_by_init(self)


@dataclass(slots=True)  # never mutated, but not frozen: a frozen __init__ costs ~6x, per event
class PurchaseLink:
    """A buyer of ``item_id`` (the key this is routed by) went on to buy ``other`` within the purchase window."""

    item_id: str
    other: str
    weight: float
    ts: float

    def __init__(self, item_id: str, other: str, weight: float, ts: float) -> None:
        # Written out, not generated: mypyc compiles only the methods in the source (see online.init_pickle).
        self.item_id = item_id
        self.other = other
        self.weight = weight
        self.ts = ts

    def __reduce__(self) -> tuple[Any, ...]:
        return reduce_by_init(self)


@dataclass(slots=True)
class PersonalPool:
    """The personal part of a user's list, as stored for the server: candidates, repeats, exclusions, affinities."""

    ranked: list[tuple[str, float]]
    repeats: frozenset[str]
    exclude: frozenset[str]
    affinities: Sequence[tuple[str, float]] = ()
    """The user's strongest categories as the list's blob keeps them (``LIVERECO_AFFINITY_CATEGORIES``; empty: off)."""

    def __init__(self, ranked: list[tuple[str, float]], repeats: frozenset[str], exclude: frozenset[str],
                 affinities: Sequence[tuple[str, float]] = ()) -> None:
        # Written out, not generated: mypyc compiles only the methods in the source (see online.init_pickle).
        self.ranked = ranked
        self.repeats = repeats
        self.exclude = exclude
        self.affinities = affinities

    def __reduce__(self) -> tuple[Any, ...]:
        return reduce_by_init(self)


@dataclass(slots=True)
class Outcome:
    """The user went to ``item_id``; ``previous`` is what their list was made of just before."""

    user_id: str
    entry_id: str
    item_id: str
    ts: float
    previous: PersonalPool
    segments: tuple[str, ...] = ()
    """The event's context segments (:attr:`Touch.segments`)."""
    seq: int = 0
    """The user's accepted-event count (:attr:`Touch.seq`): which outcomes the ranker learns from."""

    def __init__(self, user_id: str, entry_id: str, item_id: str, ts: float, previous: PersonalPool,
                 segments: tuple[str, ...] = (), seq: int = 0) -> None:
        # Written out, not generated: mypyc compiles only the methods in the source (see online.init_pickle).
        self.user_id = user_id
        self.entry_id = entry_id
        self.item_id = item_id
        self.ts = ts
        self.previous = previous
        self.segments = segments
        self.seq = seq

    def __reduce__(self) -> tuple[Any, ...]:
        return reduce_by_init(self)


@dataclass(slots=True)  # never mutated, but not frozen: a frozen __init__ costs ~6x, per event
class NewItem:
    """The catalog created ``item_id`` (to every ranker replica: an exploration candidate before its first event)."""

    item_id: str
    category: str | None
    ts: float
    """When the catalog created it (epoch seconds, wall clock)."""

    def __init__(self, item_id: str, category: str | None, ts: float) -> None:
        # Written out, not generated: mypyc compiles only the methods in the source (see online.init_pickle).
        self.item_id = item_id
        self.category = category
        self.ts = ts

    def __reduce__(self) -> tuple[Any, ...]:
        return reduce_by_init(self)
