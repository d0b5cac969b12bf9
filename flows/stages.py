"""The dataflow's steps as plain logic: parse, user history, item state, user list.

The path of one event (see the README's architecture section):

1. ``parse_entry``: a raw stream entry becomes a :class:`ParsedEvent`, or a
   :class:`~flows.writes.DeadLetter` naming the field and the reason.
2. :class:`UserHistoryLogic` (keyed by user): drops duplicate ``event_id``\\ s,
   segments sessions, keeps weighted recent items, and sends the item a
   :class:`Touch` carrying the session's previous items (and, within a
   purchase window, the :class:`~online.purchases.PurchaseWindow`); a purchase
   also sends each earlier purchase of the window a :class:`PurchaseLink`.
3. :class:`ItemLogic` (keyed by item): decayed popularity (trending), bounded
   co-visitation neighbours in both directions (with their categories), what
   buyers of the item bought next, optionally its last sessions
   (:class:`~online.session_neighbours.SessionNeighbours`), and a
   :class:`NeighbourReply` back to the user with the item's current neighbours
   (and the items of its sessions that overlap the user's, scored).
4. :class:`UserListLogic` (keyed by user): caches the neighbour lists of the
   user's recent items, merges them into the fresh personal candidates
   (re-ranked by :class:`~online.purchases.AfterPurchase` inside a purchase
   window), and hands them to the sink; each positive event becomes an
   :class:`Outcome`.
5. :class:`RankerLogic` (keyed by shard of users): a replica of trending and
   an online ranker. It rebuilds the list the server would have served before
   each outcome (personal candidates blended with trending and, with
   ``LIVERECO_AFFINITY_CATEGORIES``, the trending items of the user's favourite
   categories), scores the event against it, learns, and publishes the ranker's weights.

All state lives in these per-key logics, so Bytewax partitions it across
workers and processes and snapshots it for recovery. Snapshots are pickled
bytes: immutable, and cheap to take for keys that changed in an epoch.
"""

from __future__ import annotations

import contextlib
import heapq
import math
import pickle
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, ClassVar, Generic, TypeVar

import orjson
from bytewax.operators import StatefulBatchLogic
from mypy_extensions import mypyc_attr
from typing_extensions import override

from flows.dead_letters import RAW_LIMIT, stage_failure
from flows.metrics import DEAD_LETTERS, DUPLICATES, EVENTS, EVICTED, PREQUENTIAL_KS
from flows.redis_source import StreamEntry
from flows.writes import (
    DeadLetter,
    ItemSimilarWrite,
    PrequentialScore,
    RankerWrite,
    TrendingWrite,
    UserListWrite,
)
from online.affinity import CategoryAffinity
from online.affinity_candidates import CategoryTrending, affinity_candidates
from online.blend import explore_slot
from online.context_popularity import ContextPopularity, context_segments
from online.contract import (
    Event,
    EventError,
    EventTypeWeights,
    Settings,
    accepted_ms,
    decode_stream_fields,
    parse_event,
    quantize_affinity,
    stable_hash,
)
from online.covisitation import CoVisitationNeighbours
from online.exploration import ExplorationPool
from online.forward_decay import ForwardDecay
from online.init_pickle import reduce_by_init
from online.item_embedding import ContextEmbedding, SessionEmbedding
from online.neighbour_candidates import NeighbourCandidates
from online.purchases import AfterPurchase, PurchaseWindow
from online.ranker import BlendRanker, Pool
from online.session_neighbours import SessionNeighbours
from online.trending import TrendingTop
from online.user_history import UserHistory

__all__ = [
    "ItemLogic",
    "ItemState",
    "NeighbourReply",
    "Outcome",
    "ParsedEvent",
    "PersonalPool",
    "PurchaseLink",
    "RankerLogic",
    "Touch",
    "UserHistoryLogic",
    "UserHistoryState",
    "UserListLogic",
    "parse_entries",
    "parse_entry",
]



@dataclass(slots=True)  # never mutated, but not frozen: a frozen __init__ costs ~6x, per event
class ParsedEvent:
    event: Event
    entry_id: str
    accepted_ms: int

    def __init__(self, event: Event, entry_id: str, accepted_ms: int) -> None:
        # Written out, not generated: mypyc compiles only the methods in the source (see online.init_pickle).
        self.event = event
        self.entry_id = entry_id
        self.accepted_ms = accepted_ms

    def __reduce__(self) -> tuple[Any, ...]:
        return reduce_by_init(self)


def parse_entry(entry: StreamEntry, weights: EventTypeWeights) -> ParsedEvent | DeadLetter:
    """Validate one stream entry with the contract; failures become dead letters.

    >>> entry = StreamEntry("events", "1700000000000-0", {b"e": b'{"user_id":"u1","item_id":"i1","type":"add_to_cart","ts":1.7e9}'})
    >>> parsed = parse_entry(entry, EventTypeWeights())
    >>> parsed.event.item_id, parsed.event.type, parsed.accepted_ms
    ('i1', 'add_to_cart', 1700000000000)
    >>> parse_entry(StreamEntry("events", "1700000000001-0", {b"e": b'{"user_id":"u1","type":"add_to_cart"}'}), EventTypeWeights()).field
    'item_id'
    """
    parsed = _parse(entry, weights)
    if isinstance(parsed, ParsedEvent):
        _count_events({parsed.event.type: 1})
    return parsed


def parse_entries(entries: list[StreamEntry], weights: EventTypeWeights) -> list[tuple[str, ParsedEvent] | DeadLetter]:
    """:func:`parse_entry` for a batch, each event keyed by its user (the dataflow's first step).

    ``livereco_flow_events_total`` is incremented once per event type and batch, not per event.

    >>> fields = {b"e": b'{"user_id":"u1","item_id":"i1","type":"view","ts":1.7e9}'}
    >>> [type(p).__name__ for p in parse_entries([StreamEntry("events", "1-0", fields),
    ...                                           StreamEntry("events", "2-0", {b"e": b"{}"})], EventTypeWeights())]
    ['tuple', 'DeadLetter']
    """
    out: list[tuple[str, ParsedEvent] | DeadLetter] = []
    counts: dict[str, int] = {}
    for entry in entries:
        parsed = _parse(entry, weights)
        if isinstance(parsed, ParsedEvent):
            event_type = parsed.event.type
            counts[event_type] = counts.get(event_type, 0) + 1
            out.append((parsed.event.user_id, parsed))
        else:
            out.append(parsed)
    _count_events(counts)
    return out


def _parse(entry: StreamEntry, weights: EventTypeWeights) -> ParsedEvent | DeadLetter:
    try:
        event = parse_event(decode_stream_fields(entry.fields), weights=weights)
        return ParsedEvent(event, entry.entry_id, accepted_ms(entry.entry_id))
    except EventError as exc:
        field = exc.field.partition(".")[0]  # context.<key> counts as context: a closed set of labels
        DEAD_LETTERS.labels("parse", field if field in _REASON_FIELDS else "other").inc()
        return DeadLetter(entry.stream, entry.entry_id, exc.field, str(exc), _raw(entry))
    except Exception as exc:  # anything else about one entry (a malformed id, ...) must not stop the flow
        return stage_failure("parse", exc, entry.stream, entry.entry_id, _raw(entry), reason="other")


def _raw(entry: StreamEntry) -> bytes:
    """An entry's fields as stored, ``name=value`` per line (what a dead letter keeps of it)."""
    try:
        return b"\n".join(bytes(k) + b"=" + bytes(v) for k, v in entry.fields.items())[:RAW_LIMIT]
    except Exception:  # fields of unexpected types: their repr is all there is
        return repr(entry.fields).encode("utf-8", "replace")[:RAW_LIMIT]


def _event_raw(parsed: ParsedEvent) -> bytes:
    """A parsed event as its stream entry's JSON (what a dead letter keeps of an event a stage failed on)."""
    try:
        return orjson.dumps(parsed.event.to_dict())
    except Exception:
        return repr(parsed.event).encode("utf-8", "replace")


def _count_events(counts: dict[str, int]) -> None:
    for event_type, count in counts.items():
        counter = _EVENT_COUNTERS.get(event_type)
        if counter is None:
            counter = _EVENT_COUNTERS[event_type] = EVENTS.labels(event_type)
        counter.inc(count)


_EVENT_COUNTERS: dict[str, Any] = {}  # label children, looked up once per type (labels() is slow per event)

_REASON_FIELDS = frozenset(
    ("event", "e", "user_id", "item_id", "type", "ts", "session_id", "value", "event_id", "context")
)


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

    def __init__(self, item_id: str, user_id: str, entry_id: str, seq: int, weight: float, ts: float,
                 accepted_ms: int, category: str | None, previous: list[str], session_id: str,
                 recent: list[tuple[str, float, float]], exclude: list[str], life: int = 0,
                 previous_kinds: tuple[str | None, ...] = (), window: PurchaseWindow | None = None,
                 session_key: str = "", segments: tuple[str, ...] = ()) -> None:
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


def _dump(state: object, recoverable: bool = True) -> bytes | None:
    """A snapshot: the state pickled now, so later changes cannot alter it.

    ``None`` when the run keeps no recovery store: Bytewax still asks every
    key touched in an epoch for a snapshot, and pickling them all costs about
    a tenth of the flow's time for nothing.
    """
    return pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL) if recoverable else None


def _load(resume: bytes | None) -> Any:
    return pickle.loads(resume) if resume is not None else None


def _idle_deadline(last_active: float, idle_s: float) -> datetime:
    """When a key last active at ``last_active`` (wall clock) has been idle for ``idle_s``.

    User and item state leaves the flow when it is idle as long as its Redis
    keys live (``LIVERECO_USER_TTL_S``; items the longer item TTL), so flow
    memory follows the active users and items, not everyone ever seen. The
    clock is the wall clock, as for Redis TTLs: a replay runs through days of
    event time without evicting anyone. A restart gives every key a fresh TTL.

    Rounded up to the whole second: Bytewax asks every key it activates, so
    the keys active within one second share one cached ``datetime``.
    """
    return _deadline_at(math.ceil(last_active + idle_s))


@lru_cache(maxsize=256)
def _deadline_at(second: int) -> datetime:
    return datetime.fromtimestamp(second, tz=UTC)


@lru_cache(maxsize=16)
def _decay(half_life_s: float) -> ForwardDecay:
    """A shared :class:`ForwardDecay` (immutable): item logics are made per new item."""
    return ForwardDecay(half_life_s)


V = TypeVar("V")
W = TypeVar("W")
S = TypeVar("S")


@mypyc_attr(native_class=False)  # compiled methods, a plain Python class: pickled as one (LiverecoModel)
class _StageLogic(StatefulBatchLogic[V, W, "bytes | None"], Generic[V, W, S]):
    """One key's logic in a stage: ``state`` is what a snapshot pickles (nothing without a recovery
    store), and a key idle for ``idle_s`` seconds of wall clock leaves the flow (``None``: never).

    Subclasses set ``last_active`` in ``on_batch``.
    """

    stage: ClassVar[str]
    """The ``stage`` label of ``livereco_flow_evicted_keys_total``."""
    state: S

    def __init__(self, recoverable: bool, idle_s: float | None = None):
        self.recoverable = recoverable
        self.idle_s = idle_s
        self.last_active = time.time()

    @override
    def notify_at(self) -> datetime | None:
        return None if self.idle_s is None else _idle_deadline(self.last_active, self.idle_s)

    @override
    def on_notify(self) -> tuple[Iterable[W], bool]:
        EVICTED.labels(self.stage).inc()
        return (), StatefulBatchLogic.DISCARD

    @override
    def snapshot(self) -> bytes | None:
        return _dump(self.state, self.recoverable)


@dataclass(slots=True)
class UserHistoryState:
    """A user's history and which life of it this is (see :attr:`Touch.life`)."""

    history: UserHistory
    life: int

    def __init__(self, history: UserHistory, life: int) -> None:
        # Written out, not generated: mypyc compiles only the methods in the source (see online.init_pickle).
        self.history = history
        self.life = life

    def __reduce__(self) -> tuple[Any, ...]:
        return reduce_by_init(self)


@mypyc_attr(native_class=False)
class UserHistoryLogic(_StageLogic[ParsedEvent, "list[Touch | Link | PurchaseLink] | DeadLetter", "UserHistoryState"]):
    """User-keyed: de-duplication, sessions, recent items; emits the touch and the forward links.

    An evicted user's next event starts a new history (a new life) at seq 1.
    """

    stage = "user_history"

    distance_decay = 1.0
    """Evidence that item b follows a at distance d in a session: ``weight / (d + 1) ** distance_decay``."""

    def __init__(self, settings: Settings, resume: bytes | None, recoverable: bool = True):
        super().__init__(recoverable, settings.user_ttl_s)
        self.keys = settings.keys
        self.weights = settings.weights
        self.window_s = settings.purchase_window_s
        self.context_features = settings.context_items > 0
        self._session_of = ""
        self._session_key = ""
        self.state: UserHistoryState = _load(resume) or UserHistoryState(
            UserHistory(settings.recent_items, settings.session_gap_s, dedup_horizon_s=settings.dedup_horizon_s,
                        dedup_max_ids=settings.dedup_max_ids), time.time_ns())

    @property
    def history(self) -> UserHistory:
        return self.state.history

    @override
    def on_batch(self, values: list[ParsedEvent]) -> tuple[Iterable[list[Touch | Link | PurchaseLink] | DeadLetter], bool]:
        self.last_active = time.time()
        out: list[list[Touch | Link | PurchaseLink] | DeadLetter] = []
        for parsed in values:
            seq = self.state.history.events
            try:
                messages = self._learn(parsed)
            except Exception as exc:  # one event must not stop the flow: dead-lettered, the next goes on
                out.extend(self._failed(parsed, exc, seq))
                continue
            if messages is not None:
                out.append(messages)
        return out, StatefulBatchLogic.RETAIN

    def _failed(self, parsed: ParsedEvent, exc: Exception, seq: int) -> list[list[Touch | Link | PurchaseLink] | DeadLetter]:
        """The dead letter for an event this stage failed on, and a touch standing in for it if it took a sequence
        number: the user-list stage takes replies in sequence order and would otherwise wait for it."""
        event = parsed.event
        out: list[list[Touch | Link | PurchaseLink] | DeadLetter] = [stage_failure(
            self.stage, exc, self.keys.stream_for_user(event.user_id), parsed.entry_id, _event_raw(parsed))]
        history = self.state.history
        if history.events > seq:
            with contextlib.suppress(Exception):  # else the user's later replies go on once max_pending of them wait
                out.append([Touch(event.item_id, event.user_id, parsed.entry_id, history.events, 0.0, event.ts,
                                  parsed.accepted_ms, None, [], history.session_id, history.recent(),
                                  list(history.purchased), self.state.life)])
        return out

    def _learn(self, parsed: ParsedEvent) -> list[Touch | Link | PurchaseLink] | None:
        """One event: its touch and links (``None`` for a duplicate)."""
        history = self.state.history
        life = self.state.life
        window_s = self.window_s
        event = parsed.event
        weight = self.weights.weight_of(event)
        observed = history.learn_one(event, weight)
        if observed is None:
            DUPLICATES.inc()
            return None
        category = observed.category
        previous = observed.previous if weight > 0.0 else []
        bought = event.item_id if event.type == "purchase" and weight > 0.0 else None
        window = history.purchase_window(event.ts, window_s, bought) if window_s > 0.0 else None
        if observed.session_id != self._session_of:  # one key string per session, shared by its messages
            self._session_of = observed.session_id
            self._session_key = f"{event.user_id}\x1f{observed.session_id}"
        session_key = self._session_key
        touch = Touch(
            item_id=event.item_id,
            user_id=event.user_id,
            entry_id=parsed.entry_id,
            seq=history.events,
            weight=weight,
            ts=event.ts,
            accepted_ms=parsed.accepted_ms,
            category=category,
            previous=previous,
            session_id=observed.session_id,
            recent=history.recent(),
            exclude=list(history.purchased),
            life=life,
            previous_kinds=tuple(map(history.category_of, previous)) if category is not None else (),
            window=window,
            session_key=session_key,
            segments=context_segments(event.context, event.ts) if self.context_features else (),
        )
        messages: list[Touch | Link | PurchaseLink] = [touch]
        messages.extend(
            Link(other, event.item_id, weight / math.pow(distance + 1, self.distance_decay), event.ts, category,
                 session_key)
            for distance, other in enumerate(previous)
        )
        if window is not None and bought is not None:
            # What buyers of each earlier purchase of the window went on to buy: this item.
            messages.extend(
                PurchaseLink(earlier, bought, weight / (distance + 1), event.ts)
                for distance, earlier in enumerate(window.purchases[1:]) if earlier != bought
            )
        return messages


@dataclass(slots=True)
class ItemState:
    """Everything the flow knows about one item."""

    item_id: str
    neighbours: CoVisitationNeighbours
    popularity: float | None = None
    category: str | None = None
    events: int = 0
    popularity_ts: float = float("-inf")
    """Event time of the newest event counted in ``popularity``: touches can arrive out of event-time order
    (users are keys of their own), and an update stamped with the touch's own time could then undo a newer one."""
    context: ContextEmbedding = field(default_factory=ContextEmbedding)
    """What the item is seen with (random indexing): its embedding."""
    kinds: dict[str, str] | None = None
    """Categories of neighbours in another category than this item's own (a neighbour not here shares it).

    ``None`` until events carry categories; at most :attr:`ItemLogic.max_kinds`
    entries (under 1 KB), those of weaker neighbours dropped first."""
    bought_next: CoVisitationNeighbours | None = None
    """What buyers of this item went on to buy (within a purchase window); ``None`` until someone did."""
    sessions: SessionNeighbours | None = None
    """The last sessions that touched the item (``None`` while session neighbours are off)."""

    def __init__(self, item_id: str, neighbours: CoVisitationNeighbours, popularity: float | None = None,
                 category: str | None = None, events: int = 0, popularity_ts: float = float("-inf"),
                 context: ContextEmbedding | None = None, kinds: dict[str, str] | None = None,
                 bought_next: CoVisitationNeighbours | None = None, sessions: SessionNeighbours | None = None) -> None:
        # Written out, not generated: mypyc compiles only the methods in the source (see online.init_pickle).
        self.item_id = item_id
        self.neighbours = neighbours
        self.popularity = popularity
        self.category = category
        self.events = events
        self.popularity_ts = popularity_ts
        self.context = ContextEmbedding() if context is None else context
        self.kinds = kinds
        self.bought_next = bought_next
        self.sessions = sessions

    def __reduce__(self) -> tuple[Any, ...]:
        return reduce_by_init(self)


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


def _event_time(touch: tuple[float, float, int, str | None]) -> float:
    return touch[0]


@mypyc_attr(native_class=False)
class ItemLogic(_StageLogic[Touch | Link | PurchaseLink, Any, "ItemState | None"]):
    """Item-keyed: trending popularity, co-visitation neighbours, what buyers bought next, replies to users.

    A touch of item ``b`` after items ``a1, a2, ...`` of the same session adds
    ``a_i -> b`` evidence (sent as :class:`Link` to each ``a_i``: the forward,
    "what comes next" direction) and ``b -> a_i`` at ``backward_weight``.
    Evidence falls off with the distance in the session: ``1 / (d + 1)``.
    Links and touches carry the categories of the items they pair, so the item
    knows its neighbours' kinds (:attr:`ItemState.kinds`). A
    :class:`PurchaseLink` adds to what buyers of the item bought next
    (:attr:`ItemState.bought_next`, bounded and decayed as the neighbours).

    Inside a purchase window (:attr:`Touch.window`) the reply names its
    neighbours in a bought category; the reply to a purchase carries what
    buyers of the item bought next. Outside one, replies are as before.
    """

    stage = "items"
    backward_weight = 0.5
    reply_neighbours = 25
    """Neighbours sent back to the user stage per touch (the similar list keeps ``LIVERECO_NEIGHBOURS``)."""
    reply_bought_next = 10
    """Items bought next sent back to a purchase."""
    session_length = 10
    """Items kept per session an item remembers (itself, up to 5 before it, those after it)."""
    max_kinds = 40
    """Neighbour categories kept per item (:attr:`ItemState.kinds`): beyond this, only those of the neighbours
    a reply sends stay (a neighbour rises into them only with new evidence, which carries its category)."""

    def __init__(self, settings: Settings, resume: bytes | None, learn_until_ts: float | None = None,
                 recoverable: bool = True):
        super().__init__(recoverable, settings.item_ttl_s)
        self.keys = settings.keys
        self.k = settings.neighbours
        self.reply_k = min(self.k, self.reply_neighbours)
        self.learn_until_ts = float("inf") if learn_until_ts is None else learn_until_ts
        self.capacity = 2 * settings.neighbours
        self.half_life_s = settings.covisit_half_life_s
        self.popularity = _decay(settings.trending_half_life_s)  # one per flow, not one per item
        self.sessions_kept = settings.sessions_per_item if settings.session_neighbours > 0.0 else 0
        self.state: ItemState | None = _load(resume)

    def _state_for(self, item_id: str) -> ItemState:
        if self.state is None:
            self.state = ItemState(item_id, CoVisitationNeighbours(self.capacity, self.half_life_s))
        if self.sessions_kept and self.state.sessions is None:
            self.state.sessions = SessionNeighbours(self.sessions_kept, self.session_length)
        return self.state

    @override
    def on_batch(self, values: list[Touch | Link | PurchaseLink]) -> tuple[Iterable[Any], bool]:
        self.last_active = time.time()
        state = self._state_for(values[0].item_id)
        out: list[Any] = []
        popular: list[tuple[float, float, int, str | None]] = []
        neighbours_changed = False
        latest_ts = 0.0
        for msg in values:
            try:
                latest_ts = max(latest_ts, msg.ts)
                learn = msg.ts < self.learn_until_ts
                if isinstance(msg, Link):
                    if not learn:
                        continue
                    state.neighbours.learn_one(msg.other, msg.weight, msg.ts)
                    state.context.learn_one(msg.other, msg.weight)
                    if state.sessions is not None:
                        state.sessions.learn_next(msg.session, msg.other)
                    if msg.category is not None:
                        self._label(state, msg.other, msg.category)
                    neighbours_changed = True
                    continue
                if isinstance(msg, PurchaseLink):
                    if learn:
                        if state.bought_next is None:
                            state.bought_next = CoVisitationNeighbours(self.capacity, self.half_life_s)
                        state.bought_next.learn_one(msg.other, msg.weight, msg.ts)
                    continue
                state.events += 1
                if msg.category:
                    state.category = msg.category
                if msg.weight > 0.0 and learn:
                    popular.append((msg.ts, msg.weight, state.events, state.category))
                    for distance, other in enumerate(msg.previous):
                        evidence = self.backward_weight * msg.weight / (distance + 1)
                        state.neighbours.learn_one(other, evidence, msg.ts)
                        state.context.learn_one(other, evidence)
                        neighbours_changed = True
                    if msg.previous_kinds:
                        for other, kind in zip(msg.previous, msg.previous_kinds, strict=True):
                            if kind is not None:
                                self._label(state, other, kind)
                sessions = None
                if state.sessions is not None and msg.weight > 0.0:
                    sessions = state.sessions.scores(state.item_id, msg.previous, msg.session_key)
                    if learn:
                        state.sessions.learn_touch(msg.session_key, state.item_id, msg.previous)
                top = state.neighbours.snapshot(self.reply_k)  # its values are computed by the user-list stage
                if msg.window is None:
                    out.append(NeighbourReply(state.item_id, top, msg, *state.context.raw(), sessions=sessions))
                else:
                    out.append(self._window_reply(state, top, msg, msg.window, sessions))
            except Exception as exc:  # one message must not stop the flow: dead-lettered, the next goes on
                out.extend(self._failed(msg, exc))
        try:
            if popular:
                out += self._popularity(state, popular)
            if neighbours_changed:  # computed only if the sink writes it (most are replaced within a batch)
                out.append(ItemSimilarWrite(state.item_id, state.neighbours.snapshot(self.k), latest_ts))
        except Exception as exc:
            out.append(stage_failure(self.stage, exc, "", "", f"item {state.item_id}: popularity and similar list"
                                     .encode()))
        return out, StatefulBatchLogic.RETAIN

    def _failed(self, msg: Touch | Link | PurchaseLink, exc: Exception) -> list[Any]:
        """The dead letter for a message this stage failed on; a failed touch still gets a reply (with no
        neighbours), as the user-list stage waits for every touch's reply in sequence order."""
        if isinstance(msg, Touch):
            stream, entry_id = self.keys.stream_for_user(msg.user_id), msg.entry_id
            raw = f"touch of item {msg.item_id} by user {msg.user_id} (event {msg.entry_id})"
            return [stage_failure(self.stage, exc, stream, entry_id, raw.encode()), NeighbourReply(msg.item_id, [], msg)]
        kind = type(msg).__name__
        return [stage_failure(self.stage, exc, "", "", f"{kind} {msg.item_id} -> {msg.other}".encode())]

    def _popularity(self, state: ItemState, touches: list[tuple[float, float, int, str | None]]) -> list[TrendingWrite]:
        """One popularity update per positive touch ``(ts, weight, events, category)``, in event-time order.

        Users are keys of their own, so a batch's touches of this item can
        come out of event-time order. Ranker replicas apply updates in event
        time, and each update's score must count exactly the events up to its
        time: an update stamped with an early touch's time but counting a
        later one leaked that later event into earlier scores (and, applied
        after it, undid the newer score).
        """
        if len(touches) > 1:
            touches.sort(key=_event_time)
        writes = []
        events = 0
        for ts, weight, count, category in touches:
            state.popularity = self.popularity.add(state.popularity, weight, ts)
            state.popularity_ts = max(state.popularity_ts, ts)  # a touch older than an earlier batch's: no going back
            events = max(events, count)
            writes.append(TrendingWrite(state.item_id, category, state.popularity, state.popularity_ts, events))
        return writes

    def _label(self, state: ItemState, other: str, kind: str) -> None:
        """Remember that neighbour ``other`` is in category ``kind`` (only if that is not this item's own)."""
        kinds = state.kinds
        if kind == state.category:
            if kinds:
                kinds.pop(other, None)
            return
        if kinds is None:
            kinds = state.kinds = {}
        kinds[other] = kind
        if len(kinds) > self.max_kinds:  # keep those of the neighbours a reply sends
            replied = {item for item, _ in state.neighbours.top(self.reply_k)}
            state.kinds = {item: k for item, k in kinds.items() if item in replied}

    def _window_reply(self, state: ItemState, top: Sequence[tuple[str, float]], touch: Touch,
                      window: PurchaseWindow, sessions: dict[str, float] | None) -> NeighbourReply:
        """The reply inside a purchase window: which neighbours are of a bought kind, and (to a purchase) what
        buyers of this item bought next."""
        of_kind: tuple[tuple[str, str], ...] = ()
        if window.kinds:
            own, known = state.category, state.kinds or {}
            of_kind = tuple((item, kind) for item, _ in top
                            if (kind := known.get(item, own)) is not None and kind in window.kinds)
        bought_next = None
        if window.bought is not None:
            bought_next = state.bought_next.top(self.reply_bought_next) if state.bought_next is not None else []
        return NeighbourReply(state.item_id, top, touch, *state.context.raw(), of_kind=of_kind,
                              bought_next=bought_next, sessions=sessions)


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

    def __init__(self, user_id: str, entry_id: str, item_id: str, ts: float, previous: PersonalPool,
                 segments: tuple[str, ...] = ()) -> None:
        # Written out, not generated: mypyc compiles only the methods in the source (see online.init_pickle).
        self.user_id = user_id
        self.entry_id = entry_id
        self.item_id = item_id
        self.ts = ts
        self.previous = previous
        self.segments = segments

    def __reduce__(self) -> tuple[Any, ...]:
        return reduce_by_init(self)


@dataclass(slots=True)
class UserListState:
    candidates: NeighbourCandidates
    latest: Touch | None = None
    previous: PersonalPool | None = None
    pending: dict[int, NeighbourReply] = field(default_factory=dict)
    """Replies that overtook an earlier one of the same user (several workers), by sequence number."""
    life: int = 0
    """The life of the user's history this state follows (see :attr:`Touch.life`)."""
    session_id: str = ""
    session: SessionEmbedding = field(default_factory=SessionEmbedding)
    affinity: CategoryAffinity = field(default_factory=CategoryAffinity)
    after_purchase: AfterPurchase | None = None
    """The purchase window's rule while one is open (``None`` otherwise)."""

    def __init__(self, candidates: NeighbourCandidates, latest: Touch | None = None,
                 previous: PersonalPool | None = None, pending: dict[int, NeighbourReply] | None = None,
                 life: int = 0, session_id: str = "", session: SessionEmbedding | None = None,
                 affinity: CategoryAffinity | None = None, after_purchase: AfterPurchase | None = None) -> None:
        # Written out, not generated: mypyc compiles only the methods in the source (see online.init_pickle).
        self.candidates = candidates
        self.latest = latest
        self.previous = previous
        self.pending = {} if pending is None else pending
        self.life = life
        self.session_id = session_id
        self.session = SessionEmbedding() if session is None else session
        self.affinity = CategoryAffinity() if affinity is None else affinity
        self.after_purchase = after_purchase

    def __reduce__(self) -> tuple[Any, ...]:
        return reduce_by_init(self)


@mypyc_attr(native_class=False)
class UserListLogic(_StageLogic[NeighbourReply, Any, "UserListState"]):
    """User-keyed: merges the neighbours of the user's recent items into the personal candidates.

    Every positive event also becomes an :class:`Outcome` carrying the
    personal pool the user had just before it; the ranker stage blends that
    pool with trending exactly as the server does, scores the event against
    the result (prequential evaluation) and learns from it.

    With several workers, replies of one user's consecutive events come back
    from different item workers and may arrive out of order. Replies are
    taken in sequence order: one that overtook an earlier reply waits for it,
    so every event is scored against the list just before it, whatever the
    number of workers.
    """

    stage = "user_lists"

    def __init__(self, settings: Settings, resume: bytes | None, recoverable: bool = True):
        super().__init__(recoverable, settings.user_ttl_s + self.eviction_grace_s)
        self.keys = settings.keys
        self.n = settings.candidates
        self.recent_weight = settings.recent_weight
        self.position_decay = settings.position_decay
        self.purchase_demote = settings.purchase_demote
        self.purchase_boost = settings.purchase_boost
        self.session_weight = settings.session_neighbours
        self.affinity_categories = settings.affinity_categories
        self.state: UserListState = _load(resume) or UserListState(NeighbourCandidates())

    max_pending = 256
    """Replies held back waiting for an earlier one; beyond this the oldest is taken without it."""
    profile_affinities = 5
    """Categories shown in the user's profile."""
    eviction_grace_s = 60.0
    """This stage keeps an idle user this much longer than the history stage does, so a user's
    history is dropped first and a returning user's new life resets this state (not the reverse)."""
    rerank_depth = 2
    """Inside a purchase window the merge keeps this many times ``LIVERECO_CANDIDATES`` for the rule to
    re-rank: candidates below the cut move up as the bought kind falls back."""

    def _first_seq(self, life: int) -> int:
        """The sequence number a new state starts from: 1, unless the user's history outlived this state.

        That happens only if this state was dropped while the history was
        not (a reply delayed past the grace): then the first reply is one of a
        life older than :attr:`eviction_grace_s`, and the lowest pending one starts.
        """
        pending = self.state.pending
        if 1 in pending or not life or time.time_ns() - life < self.eviction_grace_s * 1e9:
            return 1  # a young (or unknown) life: its first reply may still be on its way from another worker
        return min(pending)

    @override
    def on_batch(self, values: list[NeighbourReply]) -> tuple[Iterable[Any], bool]:
        self.last_active = time.time()
        state = self.state
        for reply in values:
            life = reply.touch.life
            if life != state.life:
                if life < state.life:
                    continue  # a straggler from a life of the user's history that has since ended
                # The history was evicted while idle and the user is back (or this state is new).
                self.state = state = UserListState(NeighbourCandidates(), life=life)
            if state.latest is None or reply.touch.seq > state.latest.seq:
                state.pending[reply.touch.seq] = reply  # its neighbours are learned when its turn comes
            else:  # a duplicate after a restart: its neighbours are still news
                state.candidates.learn_one(reply.item_id, reply.neighbours)
        pending = state.pending
        out: list[Any] = []
        touch: Touch | None = None
        sessions: dict[str, float] | None = None
        while pending:
            expected = state.latest.seq + 1 if state.latest is not None else self._first_seq(state.life)
            ready = pending.pop(expected, None)
            if ready is None:
                if len(pending) <= self.max_pending:
                    break  # wait for the missing reply: every touch sends exactly one
                ready = pending.pop(min(pending))
            touch = ready.touch
            try:
                # Learned only now: ranking an earlier touch forgets lists of items outside its recent items.
                state.candidates.learn_one(ready.item_id, ready.neighbours)
                if touch.session_id != state.session_id:
                    state.session_id = touch.session_id
                    state.session.reset()
                state.session.learn_one(ready.embedding, touch.weight, ready.embedding_norm)
                if touch.category:
                    state.affinity.learn_one(touch.category, touch.weight, touch.ts)
                window = touch.window
                if window is not None:
                    after = state.after_purchase
                    if after is None:
                        after = state.after_purchase = AfterPurchase(self.purchase_demote, self.purchase_boost)
                    after.learn_one(window, ready.bought_next, ready.of_kind)
                elif state.after_purchase is not None:
                    state.after_purchase = None  # the window has closed
                if touch.weight > 0.0 and state.previous is not None:
                    out.append(Outcome(touch.user_id, touch.entry_id, touch.item_id, touch.ts, state.previous,
                                       touch.segments))
            except Exception as exc:  # one event must not stop the flow: dead-lettered, its user goes on
                out.append(stage_failure(self.stage, exc, self.keys.stream_for_user(touch.user_id), touch.entry_id,
                                         f"reply of item {ready.item_id} to user {touch.user_id}".encode()))
            state.latest = touch
            sessions = ready.sessions
            if pending:  # the next outcome needs this list; only the newest one is written
                self._guarded_rank(touch, sessions, out, written=False)
        if touch is not None:
            self._guarded_rank(touch, sessions, out)
        return out, StatefulBatchLogic.RETAIN

    def _guarded_rank(self, last: Touch, sessions: dict[str, float] | None, out: list[Any], written: bool = True) -> None:
        """:meth:`_rank`, its write appended to ``out``; a failure is dead-lettered (the previous list stays)."""
        try:
            write = self._rank(last, sessions, written)
        except Exception as exc:
            out.append(stage_failure(self.stage, exc, self.keys.stream_for_user(last.user_id), last.entry_id,
                                     f"ranking the list of user {last.user_id}".encode()))
            return
        if written:
            out.append(write)

    def _rank(self, last: Touch, sessions: dict[str, float] | None, written: bool = True) -> UserListWrite:
        state = self.state
        recent_items = [item for item, _, _ in last.recent]
        # Only the lists the merge reads: an older item gets a fresh list when it is touched again.
        state.candidates.forget_except(set(recent_items[: NeighbourCandidates.merge_depth]))
        exclude = set(last.exclude)
        exclude.update(item for item, weight, _ in last.recent if weight < 0.0)
        if self.recent_weight <= 0.0:
            exclude.update(recent_items)
        after = state.after_purchase
        if after is None:
            ranked = state.candidates.rank(last.recent, self.n, exclude, recent_weight=self.recent_weight,
                                           position_decay=self.position_decay, sessions=sessions,
                                           session_weight=self.session_weight)
        else:
            merged = state.candidates.rank(last.recent, self.rerank_depth * self.n, exclude,
                                           recent_weight=self.recent_weight, position_decay=self.position_decay,
                                           sessions=sessions, session_weight=self.session_weight)
            ranked = after.rerank(merged, self.n, last.recent, exclude, self.position_decay)
        repeat_rows: list[int] = []
        if self.recent_weight > 0.0:  # the user's own recent items among the candidates
            recent = set(recent_items)
            repeat_rows = [row for row, (item, _) in enumerate(ranked) if item in recent]
        repeats = frozenset([ranked[row][0] for row in repeat_rows])
        # The affinity candidates' input, rounded as the list's blob keeps it: the server scores the same values.
        affinities = [(category, quantize_affinity(score))
                      for category, score in state.affinity.top(self.affinity_categories)] \
            if self.affinity_categories and len(state.affinity) else []
        state.previous = PersonalPool(ranked, repeats, frozenset(exclude), affinities)
        return UserListWrite(last.user_id, ranked, last.ts, last.accepted_ms, last.session_id, last.recent,
                             repeats=repeat_rows,
                             exclude=sorted(exclude), session_embedding=state.session.raw(),
                             affinities=state.affinity.top(self.profile_affinities) if written else [],
                             list_affinities=affinities)

@dataclass(slots=True)
class RankerState:
    trending: TrendingTop
    ranker: BlendRanker
    shard: int = -1
    pending: list[tuple[float, int, str, float, int, str | None]] = field(default_factory=list)
    """Trending updates newer than the latest outcome seen (a heap by event time):
    ``(ts, sequence, item, log_score, events, category)``."""
    sequence: int = 0
    now: float = float("-inf")
    """Event time of the newest outcome: trending updates up to it are applied."""
    exploration: ExplorationPool = field(default_factory=ExplorationPool)
    """New items competing for the exploration slot (idle while ``LIVERECO_EXPLORE_POSITION`` is 0)."""
    categories: CategoryTrending | None = None
    """Each category's trending top, for affinity candidates (``None`` while ``LIVERECO_AFFINITY_CATEGORIES`` is 0)."""
    context: ContextPopularity | None = None
    """Each context segment's popular items, for the context features (``None`` while ``LIVERECO_CONTEXT_ITEMS`` is 0)."""

    def pool(self, personal: PersonalPool, depth: int, affinity_categories: int, affinity_items: int,
             segments: Sequence[str] = ()) -> Pool:
        """What the server blends for a user whose personal part is ``personal``, from this replica's trending,
        category tops and context popularity (``segments``: the request's device and hour, see
        :func:`online.context_popularity.context_segments`). The ranker stage scores it, the server builds its twin."""
        categories, context = self.categories, self.context
        affinity = affinity_candidates(personal.affinities, categories.tops, affinity_categories, affinity_items) \
            if personal.affinities and categories else ()
        device, hour = (context.relative(segments[0]), context.relative(segments[1])) \
            if context is not None and segments else (None, None)
        return Pool(personal.ranked, self.trending.top(depth + len(personal.exclude)), personal.repeats,
                    personal.exclude, affinity, device, hour)


@mypyc_attr(native_class=False)
class RankerLogic(_StageLogic[TrendingWrite | Outcome, Any, "RankerState"]):
    """Shard-keyed: a replica of trending and an online ranker, scoring and learning from outcomes.

    Every popularity update reaches every replica; a user's outcomes reach
    the replica of their shard. For each outcome the replica rebuilds the list
    the server would have served just before the event (:func:`online.blend.blend`
    over the user's previous personal pool and trending as of the event's time),
    records where the item stood in it (:class:`PrequentialScore`), and learns
    from it. Trending updates are applied in event time, up to the outcome
    being scored, so no popularity from later events leaks into a score even
    when they overtake it across stages. The weights go to Redis
    (:class:`RankerWrite`) for the server. This is how a global model lives in
    a partitioned dataflow: replicas keyed by shard, not a module-level object.

    Exploration (``LIVERECO_EXPLORE_POSITION`` > 0): the same popularity
    updates tell the replica's :class:`~online.exploration.ExplorationPool`
    which items are new; the rebuilt list gets the exploration slot as the
    server fills it (:func:`online.blend.explore_slot`), the outcome is that
    slot's success or failure, and the pool's order goes to Redis with the weights.

    Affinity candidates (``LIVERECO_AFFINITY_CATEGORIES`` > 0): the same
    updates also feed each category's trending top
    (:class:`~online.affinity_candidates.CategoryTrending`), and the rebuilt
    list takes the trending items of the user's strongest categories, from the
    affinities stored with their list, as the server does
    (:func:`~online.affinity_candidates.affinity_candidates`).
    """

    stage = "ranker"
    max_pending = 100_000
    """Trending updates held back waiting for event time to reach them; beyond this the oldest apply."""

    def __init__(self, settings: Settings, resume: bytes | None, recoverable: bool = True):
        super().__init__(recoverable)  # shards are few and always in use: never evicted
        self.keys = settings.keys
        self.n = settings.candidates
        self.score_k = max(PREQUENTIAL_KS)  # the prequential metrics read the top 20 of each list
        self.shards = settings.ranker_shards
        self.explore_at = settings.explore_position
        self.affinity_categories = settings.affinity_categories
        self.affinity_items = settings.affinity_items
        self.state: RankerState = _load(resume) or RankerState(
            TrendingTop(capacity=4 * settings.candidates),
            BlendRanker(settings.ranker_learning_rate, settings.ranker_negatives, list_length=settings.ranker_list_length,
                        negative_depth=settings.ranker_negative_depth),
            exploration=ExplorationPool(settings.explore_candidates, settings.explore_new_events),
        )
        if self.affinity_categories and self.state.categories is None:
            self.state.categories = CategoryTrending(settings.affinity_items, settings.affinity_max_categories)
        if settings.context_items and self.state.context is None:
            self.state.context = ContextPopularity(settings.context_items)
        elif not settings.context_items:
            self.state.context = None  # turned off: nothing learned or published

    def _advance(self, until: float) -> None:
        state = self.state
        pending = state.pending
        learn_trending = state.trending.learn_one
        observe = state.exploration.observe if self.explore_at > 0 else None
        categories = state.categories if self.affinity_categories else None
        while pending and (pending[0][0] < until or len(pending) > self.max_pending):
            _, _, item, log_score, events, category = heapq.heappop(pending)
            learn_trending(item, log_score)
            if observe is not None:
                observe(item, events, category)
            if categories is not None and category:
                categories.learn_one(item, category, log_score)

    @override
    def on_batch(self, values: list[TrendingWrite | Outcome]) -> tuple[Iterable[Any], bool]:
        state = self.state
        out: list[Any] = []
        learned = state.ranker.learned
        explored = state.exploration.version
        outcomes: list[Outcome] = []
        for value in values:
            if isinstance(value, TrendingWrite):
                state.sequence += 1
                heapq.heappush(state.pending, (value.ts, state.sequence, value.item_id, value.log_score,
                                               value.events, value.category))
            else:
                outcomes.append(value)
        explore_at, score_k = self.explore_at, self.score_k
        for outcome in sorted(outcomes, key=lambda o: o.ts):
            try:
                if state.shard < 0:
                    state.shard = stable_hash(outcome.user_id) % self.shards
                state.now = max(state.now, outcome.ts)
                self._advance(state.now)
                segments = outcome.segments
                pool = state.pool(outcome.previous, self.n, self.affinity_categories, self.affinity_items, segments)
                listed = state.ranker.learn_one(pool, outcome.item_id, score_k)  # ranked before learning
                context = state.context
                if context is not None:  # counted after scoring: no event sees itself
                    for segment in segments:
                        context.learn_one(segment, outcome.item_id, outcome.ts)
                if explore_at > 0:  # the slot as the server fills it (blend), then what the user did with it
                    exploration = state.exploration
                    incumbent = listed[explore_at - 1] if len(listed) >= explore_at else None
                    slot = explore_slot(pool, exploration.order, len(listed), explore_at, score_k)
                    if slot is not None:
                        listed.insert(slot[0], slot[1])
                        del listed[score_k:]
                    exploration.learn_one(slot[1] if slot is not None else None, incumbent, outcome.item_id)
                rank = next((p + 1 for p, item in enumerate(listed) if item == outcome.item_id), None)
                out.append(PrequentialScore(outcome.entry_id, outcome.user_id, outcome.item_id, rank, tuple(listed)))
            except Exception as exc:  # one outcome must not stop the flow: dead-lettered, the next goes on
                out.append(stage_failure(self.stage, exc, self.keys.stream_for_user(outcome.user_id), outcome.entry_id,
                                         f"outcome of user {outcome.user_id} on item {outcome.item_id}".encode()))
        try:
            self._advance(state.now)
            contexts = state.context.changed_tops() if state.context is not None and outcomes else {}
            if (state.ranker.learned != learned or state.exploration.version != explored or contexts) and state.shard >= 0:
                out.append(RankerWrite(state.shard, state.ranker.weights, state.ranker.learned,
                                       state.exploration.published(), contexts))
        except Exception as exc:  # the weights are published with the next batch
            out.append(stage_failure(self.stage, exc, "", "", f"ranker shard {state.shard}: publishing".encode()))
        return out, StatefulBatchLogic.RETAIN
