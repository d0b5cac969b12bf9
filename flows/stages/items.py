"""The item stage (keyed by item): :class:`ItemLogic`.

Decayed popularity (trending), bounded co-visitation neighbours in both
directions (with their categories), what buyers of the item bought next,
optionally its last sessions (:class:`~online.session_neighbours.SessionNeighbours`),
and a :class:`~flows.stages.messages.NeighbourReply` back to the user with the
item's current neighbours (and the items of its sessions that overlap the
user's, scored).

>>> logic = ItemLogic(Settings(), None, recoverable=False)
>>> touch = Touch("b", "ann", "2-0", 2, 1.0, 1.7e9, 2, None, ["a"], "s", [("b", 1.0, 1.7e9), ("a", 1.0, 1.7e9)], [])
>>> out, _ = logic.on_batch([touch])                   # ann saw a, then b
>>> [type(m).__name__ for m in out], list(out[0].neighbours)
(['NeighbourReply', 'TrendingWrite', 'ItemSimilarWrite'], [('a', 1.0)])
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from bytewax.operators import StatefulBatchLogic
from mypy_extensions import mypyc_attr
from typing_extensions import override

from flows.dead_letters import stage_failure
from flows.stage_time import timed
from flows.stages.common import _load, _StageLogic
from flows.stages.messages import Link, NeighbourReply, PurchaseLink, Touch
from flows.writes import ItemSimilarWrite, TrendingWrite
from online.contract import RedisKeys, Settings
from online.covisitation import CoVisitationNeighbours
from online.forward_decay import ForwardDecay
from online.init_pickle import reduce_by_init
from online.item_embedding import ContextEmbedding
from online.purchases import PurchaseWindow
from online.session_neighbours import SessionNeighbours

__all__ = ["ItemConfig", "ItemListedLogic", "ItemLogic", "ItemState"]


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


@lru_cache(maxsize=16)
def _decay(half_life_s: float) -> ForwardDecay:
    """A shared :class:`ForwardDecay` (immutable): item logics are made per new item."""
    return ForwardDecay(half_life_s)


def _event_time(touch: tuple[float, float, int, str | None]) -> float:
    return touch[0]


class ItemConfig:
    """The settings :class:`ItemLogic` reads, made once per flow and shared by every item's logic.

    >>> config = ItemConfig(Settings())
    >>> config.k == Settings().neighbours, config.capacity == 2 * config.k, config.learn_until_ts
    (True, True, inf)
    """

    def __init__(self, settings: Settings, learn_until_ts: float | None = None) -> None:
        self.settings = settings
        self.keys: RedisKeys = settings.keys
        self.k: int = settings.neighbours
        self.reply_k: int = min(self.k, ItemLogic.reply_neighbours)
        self.learn_until_ts: float = float("inf") if learn_until_ts is None else learn_until_ts
        self.capacity: int = 2 * settings.neighbours
        self.half_life_s: float = settings.covisit_half_life_s
        self.popularity: ForwardDecay = _decay(settings.trending_half_life_s)  # one per flow, not one per item
        self.sessions_kept: int = settings.sessions_per_item if settings.session_neighbours > 0.0 else 0

    def __reduce__(self) -> tuple[Any, ...]:
        return ItemConfig, (self.settings, self.learn_until_ts)  # a compiled class: rebuilt from its settings


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
                 recoverable: bool = True, config: ItemConfig | None = None):
        super().__init__(recoverable, settings.item_ttl_s)
        # One object per flow, not the settings copied into every new item's logic (build_flow passes it).
        self.config = ItemConfig(settings, learn_until_ts) if config is None else config
        self.state: ItemState | None = _load(resume)

    def _state_for(self, item_id: str) -> ItemState:
        config = self.config
        if self.state is None:
            self.state = ItemState(item_id, CoVisitationNeighbours(config.capacity, config.half_life_s))
        if config.sessions_kept and self.state.sessions is None:
            self.state.sessions = SessionNeighbours(config.sessions_kept, self.session_length)
        return self.state

    @override
    def process(self, values: list[Touch | Link | PurchaseLink]) -> tuple[Iterable[Any], bool]:
        self.last_active = time.time()
        state = self._state_for(values[0].item_id)
        config = self.config
        out: list[Any] = []
        popular: list[tuple[float, float, int, str | None]] = []
        neighbours_changed = False
        latest_ts = 0.0
        also: tuple[str, ...] = ()
        for msg in values:
            try:
                latest_ts = max(latest_ts, msg.ts)
                learn = msg.ts < config.learn_until_ts
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
                            state.bought_next = CoVisitationNeighbours(config.capacity, config.half_life_s)
                        state.bought_next.learn_one(msg.other, msg.weight, msg.ts)
                    continue
                state.events += 1
                if msg.category:
                    state.category = msg.category
                if msg.facts is not None:  # the catalog's trending categories besides the kind
                    also = msg.facts.trending[1:] if msg.facts.kind == state.category else msg.facts.trending
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
                top = state.neighbours.snapshot(config.reply_k)  # its values are computed by the user-list stage
                if msg.window is None:
                    out.append(NeighbourReply(state.item_id, top, msg, *state.context.raw(), sessions=sessions))
                else:
                    out.append(self._window_reply(state, top, msg, msg.window, sessions))
            except Exception as exc:  # one message must not stop the flow: dead-lettered, the next goes on
                out.extend(self._failed(msg, exc))
        try:
            if popular:
                out += self._popularity(state, popular, also)
            if neighbours_changed:  # computed only if the sink writes it (most are replaced within a batch)
                out.append(ItemSimilarWrite(state.item_id, state.neighbours.snapshot(config.k), latest_ts))
        except Exception as exc:
            out.append(stage_failure(self.stage, exc, "", "", f"item {state.item_id}: popularity and similar list"
                                     .encode()))
        return out, StatefulBatchLogic.RETAIN

    def _failed(self, msg: Touch | Link | PurchaseLink, exc: Exception) -> list[Any]:
        """The dead letter for a message this stage failed on; a failed touch still gets a reply (with no
        neighbours), as the user-list stage waits for every touch's reply in sequence order."""
        if isinstance(msg, Touch):
            stream, entry_id = self.config.keys.stream_for_user(msg.user_id), msg.entry_id
            raw = f"touch of item {msg.item_id} by user {msg.user_id} (event {msg.entry_id})"
            return [stage_failure(self.stage, exc, stream, entry_id, raw.encode()), NeighbourReply(msg.item_id, [], msg)]
        kind = type(msg).__name__
        return [stage_failure(self.stage, exc, "", "", f"{kind} {msg.item_id} -> {msg.other}".encode())]

    def _popularity(self, state: ItemState, touches: list[tuple[float, float, int, str | None]],
                    also: tuple[str, ...] = ()) -> list[TrendingWrite]:
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
            state.popularity = self.config.popularity.add(state.popularity, weight, ts)
            state.popularity_ts = max(state.popularity_ts, ts)  # a touch older than an earlier batch's: no going back
            events = max(events, count)
            writes.append(TrendingWrite(state.item_id, category, state.popularity, state.popularity_ts, events, also))
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
            replied = {item for item, _ in state.neighbours.top(self.config.reply_k)}
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


@mypyc_attr(native_class=False)
class ItemListedLogic(ItemLogic):
    """:class:`ItemLogic` whose key batch's outputs leave as one list (the dataflow splits it in its next steps)."""

    @override
    def on_batch(self, values: list[Any]) -> tuple[Iterable[Any], bool]:
        out, retain = timed(self.stage, len(values), self.process, values)  # as the base's, one emit
        return [out], retain
