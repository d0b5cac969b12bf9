"""What the dataflow's stages hand the sink: one message per Redis write, encoded only if the sink keeps it.

The stages make one or more of these per event, so the module is compiled
with them (``online.compiled.COMPILED_MODULES``), and each class writes its
``__init__`` out: mypyc compiles only the methods in the source, and a
dataclass-generated one runs interpreted (see :mod:`online.init_pickle`,
which they pickle through). :mod:`flows.redis_sink` writes them.

>>> write = TrendingWrite("sku-1", "shoes", 3.5, ts=1.7e9, events=2)
>>> write.item_id, write.log_score
('sku-1', 3.5)
>>> import pickle; pickle.loads(pickle.dumps(write)) == write
True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from online.contract import CandidateList, encode_candidates, encode_profile
from online.contract.blob_writer import write_list_3, write_profile_3
from online.covisitation import TopNeighbours
from online.init_pickle import reduce_by_init
from online.item_embedding import weighted_mean

__all__ = [
    "BLOB_VERSION",
    "DEAD_LETTER_STAGES",
    "AttributionWrite",
    "DeadLetter",
    "ItemSimilarWrite",
    "PrequentialScore",
    "RankerWrite",
    "TrendingWrite",
    "UserErasedWrite",
    "UserListWrite",
    "Write",
]

BLOB_VERSION = 3
"""The encoding of lists and profiles the sink writes (:mod:`online.contract.candidates`, :mod:`online.contract.profile`):
3 (2 where the ids do not pack). Servers from before version 3 read only 2 and 1, from before version 2 only 1:
upgrade them first, or run the flow with ``LIVERECO_BLOB_VERSION=2`` until they are (:class:`flows.redis_sink.SinkOptions`)."""


@dataclass(slots=True)  # never mutated, but not frozen: a frozen __init__ costs ~6x, per event
class UserListWrite:
    """A user's fresh candidate list (and profile), produced by an event accepted at ``accepted_ms``.

    Encoded by the sink, after writes to the same key in a batch are coalesced.
    """

    user_id: str
    ranked: list[tuple[str, float]]
    event_ts: float
    accepted_ms: int
    session_id: str
    recent: list[tuple[str, float, float]]
    repeats: list[int] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    session_embedding: tuple[tuple[float, ...], float] = ((), 0.0)
    """The session embedding as a weighted sum and its weight (divided when encoded: only written lists pay)."""
    affinities: list[tuple[str, float]] = field(default_factory=list)
    """The profile's top categories."""
    list_affinities: list[tuple[str, float]] = field(default_factory=list)
    """The categories the list carries for the server's affinity candidates (empty while they are off)."""

    def __init__(self, user_id: str, ranked: list[tuple[str, float]], event_ts: float, accepted_ms: int,
                 session_id: str, recent: list[tuple[str, float, float]], repeats: list[int] | None = None,
                 exclude: list[str] | None = None, session_embedding: tuple[tuple[float, ...], float] = ((), 0.0),
                 affinities: list[tuple[str, float]] | None = None,
                 list_affinities: list[tuple[str, float]] | None = None) -> None:
        self.user_id = user_id
        self.ranked = ranked
        self.event_ts = event_ts
        self.accepted_ms = accepted_ms
        self.session_id = session_id
        self.recent = recent
        self.repeats = [] if repeats is None else repeats
        self.exclude = [] if exclude is None else exclude
        self.session_embedding = session_embedding
        self.affinities = [] if affinities is None else affinities
        self.list_affinities = [] if list_affinities is None else list_affinities

    def __reduce__(self) -> tuple[Any, ...]:
        return reduce_by_init(self)

    def recs_blob(self, version: int = BLOB_VERSION) -> bytes:
        if version == 3:  # one compiled call, no CandidateList (None: version 2 or an error, as encode_candidates says)
            blob = write_list_3([i for i, _ in self.ranked], [s for _, s in self.ranked], self.event_ts,
                                self.accepted_ms, self.repeats, self.exclude, [], self.list_affinities, "candidate list")
            if blob is not None:
                return blob
        return encode_candidates(CandidateList([i for i, _ in self.ranked], [s for _, s in self.ranked],
                                               event_ts=self.event_ts, accepted_ms=self.accepted_ms,
                                               repeats=self.repeats, exclude=self.exclude,
                                               affinities=self.list_affinities), version)

    def profile_blob(self, version: int = BLOB_VERSION) -> bytes:
        if version == 3:  # the session embedding divided as it is written, no tuple of the mean
            total, weight = self.session_embedding
            blob = write_profile_3(self.session_id, self.recent, total, weight, self.affinities, "profile")
            if blob is not None:
                return blob
        return encode_profile(self.session_id, self.recent, weighted_mean(*self.session_embedding), self.affinities,
                              version)


@dataclass(slots=True)  # never mutated, but not frozen: a frozen __init__ costs ~6x, per event
class ItemSimilarWrite:
    """An item's similar list: its strongest neighbours (a :class:`~online.covisitation.TopNeighbours`
    from the flow, computed only if this write is the one the sink keeps)."""

    item_id: str
    neighbours: Sequence[tuple[str, float]]
    event_ts: float

    def __init__(self, item_id: str, neighbours: Sequence[tuple[str, float]], event_ts: float) -> None:
        self.item_id = item_id
        self.neighbours = neighbours
        self.event_ts = event_ts

    def __reduce__(self) -> tuple[Any, ...]:
        return reduce_by_init(self)

    def blob(self, version: int = BLOB_VERSION) -> bytes:
        if version == 3:
            neighbours = self.neighbours
            if isinstance(neighbours, TopNeighbours):  # the flow's: its two columns, no pair per neighbour
                ids, values = neighbours.columns()
                blob = write_list_3(list(ids), list(values), self.event_ts, 0, [], [], [], [], "candidate list")
            else:
                blob = write_list_3([i for i, _ in neighbours], [s for _, s in neighbours], self.event_ts, 0, [], [],
                                    [], [], "candidate list")
            if blob is not None:
                return blob
        pairs = list(self.neighbours)
        return encode_candidates(CandidateList([i for i, _ in pairs], [s for _, s in pairs],
                                               event_ts=self.event_ts), version)


@dataclass(slots=True)  # never mutated, but not frozen: a frozen __init__ costs ~6x, per event
class TrendingWrite:
    """An item's forward-decayed popularity (log score), globally and in its category."""

    item_id: str
    category: str | None
    log_score: float
    ts: float = 0.0
    """Event time of the newest event counted in ``log_score``."""
    events: int = 0
    """The item's events so far (its flow state's count): while few, it is new (exploration)."""
    also: tuple[str, ...] = ()
    """Other trending categories of the item: its catalog paths and their ancestors besides ``category``."""

    def __init__(self, item_id: str, category: str | None, log_score: float, ts: float = 0.0, events: int = 0,
                 also: tuple[str, ...] = ()) -> None:
        self.item_id = item_id
        self.category = category
        self.log_score = log_score
        self.ts = ts
        self.events = events
        self.also = also

    def __reduce__(self) -> tuple[Any, ...]:
        return reduce_by_init(self)


@dataclass(slots=True)  # never mutated, but not frozen: a frozen __init__ costs ~6x, per event
class RankerWrite:
    """One ranker replica's current blend weights and exploration order, for the server to apply at request time."""

    shard: int
    weights: dict[str, float]
    pairs: int
    explore: list[tuple[str, str | None]] = field(default_factory=list)
    """The exploration slot's candidates in preference order, with their categories
    (:attr:`online.exploration.ExplorationPool.order`)."""
    contexts: dict[str, list[tuple[str, float]]] = field(default_factory=dict)
    """Context segments whose popular items changed, with their whole new top
    (:meth:`online.context_popularity.ContextPopularity.changed_tops`)."""

    def __init__(self, shard: int, weights: dict[str, float], pairs: int,
                 explore: list[tuple[str, str | None]] | None = None,
                 contexts: dict[str, list[tuple[str, float]]] | None = None) -> None:
        self.shard = shard
        self.weights = weights
        self.pairs = pairs
        self.explore = [] if explore is None else explore
        self.contexts = {} if contexts is None else contexts

    def __reduce__(self) -> tuple[Any, ...]:
        return reduce_by_init(self)

    def blob(self) -> bytes:
        return orjson.dumps({"weights": self.weights, "pairs": self.pairs, "explore": self.explore})


@dataclass(slots=True)  # never mutated, but not frozen: a frozen __init__ costs ~6x, per event
class DeadLetter:
    """An event (or one write) the flow could not use, kept with where it failed, why, and its raw bytes.

    ``stage`` is the step that failed (:data:`DEAD_LETTER_STAGES`); ``field`` names the event's offending
    field when validation failed (empty otherwise); ``reason`` is the message.
    """

    stream: str
    entry_id: str
    field: str
    reason: str
    raw: bytes
    stage: str

    def __init__(self, stream: str, entry_id: str, field: str, reason: str, raw: bytes, stage: str = "parse") -> None:
        self.stream = stream
        self.entry_id = entry_id
        self.field = field
        self.reason = reason
        self.raw = raw
        self.stage = stage

    def __reduce__(self) -> tuple[Any, ...]:
        return reduce_by_init(self)

    def fields(self) -> dict[str, str | bytes]:
        """The dead-letter stream entry."""
        return {"stream": self.stream, "id": self.entry_id, "stage": self.stage, "field": self.field,
                "reason": self.reason, "raw": self.raw}


@dataclass(slots=True)
class UserErasedWrite:
    """Delete a user's keys: the user was erased (after any list written for their earlier events)."""

    user_id: str

    def __init__(self, user_id: str) -> None:
        self.user_id = user_id

    def __reduce__(self) -> tuple[Any, ...]:
        return reduce_by_init(self)


DEAD_LETTER_STAGES = ("parse", "user_history", "items", "user_lists", "ranker", "sink")
"""Where an event or a write can fail: the ``stage`` of a dead letter and of ``livereco_flow_dead_letters_total``."""


@dataclass(slots=True)  # never mutated, but not frozen: a frozen __init__ costs ~6x, per event
class PrequentialScore:
    """Where the touched item stood in the list the user had just before the event (``None``: absent)."""

    entry_id: str
    user_id: str
    item_id: str
    rank: int | None
    listed: tuple[str, ...]

    def __init__(self, entry_id: str, user_id: str, item_id: str, rank: int | None, listed: tuple[str, ...]) -> None:
        self.entry_id = entry_id
        self.user_id = user_id
        self.item_id = item_id
        self.rank = rank
        self.listed = listed

    def __reduce__(self) -> tuple[Any, ...]:
        return reduce_by_init(self)


@dataclass(slots=True)  # never mutated, but not frozen: a frozen __init__ costs ~6x, per event
class AttributionWrite:
    """Counters to add: a served list's impressions (``kind`` ``impression``, ``items``) or one attributed event.

    ``status`` is :data:`online.attribution.STATUSES`' (``attributed`` for impressions); ``experiment`` and
    ``variant`` name what made the list (empty for an event attributed to nothing).
    """

    kind: str
    status: str
    user_id: str
    items: tuple[str, ...]
    """An impression's items; an event's one item."""
    sources: tuple[str, ...]
    experiment: str
    variant: str
    value: float
    position: int
    """An attributed event's 1-based place in its list (0: none)."""

    def __init__(self, kind: str, status: str, user_id: str, items: tuple[str, ...], sources: tuple[str, ...],
                 experiment: str, variant: str, value: float = 0.0, position: int = 0) -> None:
        self.kind = kind
        self.status = status
        self.user_id = user_id
        self.items = items
        self.sources = sources
        self.experiment = experiment
        self.variant = variant
        self.value = value
        self.position = position

    def __reduce__(self) -> tuple[Any, ...]:
        return reduce_by_init(self)


Write = (UserListWrite | ItemSimilarWrite | TrendingWrite | DeadLetter | PrequentialScore | RankerWrite | UserErasedWrite
         | AttributionWrite)
