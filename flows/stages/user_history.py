"""The user-history stage (keyed by user): :class:`UserHistoryLogic`.

It drops duplicate ``event_id``\\ s, segments sessions, keeps weighted recent
items, and sends the item a :class:`~flows.stages.messages.Touch` carrying the
session's previous items (and, within a purchase window, the
:class:`~online.purchases.PurchaseWindow`) and each previous item a
:class:`~flows.stages.messages.Link`; a purchase also sends each earlier
purchase of the window a :class:`~flows.stages.messages.PurchaseLink`.

>>> from online.contract import Event
>>> logic = UserHistoryLogic(Settings(), None, recoverable=False)
>>> out, _ = logic.on_batch([ParsedEvent(Event("ann", "a", "view", 1.7e9), "1-0", 1),
...                          ParsedEvent(Event("ann", "b", "view", 1.7e9 + 1), "2-0", 2)])
>>> [[f"{type(m).__name__} {m.item_id}" for m in messages] for messages in out]
[['Touch a'], ['Touch b', 'Link a']]
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from bytewax.operators import StatefulBatchLogic
from mypy_extensions import mypyc_attr
from typing_extensions import override

from flows.dead_letters import stage_failure
from flows.metrics import DUPLICATES
from flows.stages.common import _load, _StageLogic
from flows.stages.control import ParsedControl, UserErased, absorb
from flows.stages.messages import Link, PurchaseLink, Touch
from flows.stages.parse import ParsedEvent
from flows.writes import AttributionWrite, DeadLetter
from online.attribution import ATTRIBUTED_KINDS, AttributionMemory, ServedList
from online.context_popularity import context_segments
from online.contract import EventTypeWeights, RedisKeys, Settings
from online.init_pickle import reduce_by_init
from online.user_history import UserHistory

_LABELS_A_LIST = frozenset(("view", *ATTRIBUTED_KINDS))
"""The events that label the list a user was served last (prequential: the list shown before event t, by event t)."""

__all__ = ["UserHistoryConfig", "UserHistoryLogic", "UserHistoryState"]


def _event_raw(parsed: ParsedEvent) -> bytes:
    """A parsed event as its stream entry's JSON (what a dead letter keeps of an event a stage failed on)."""
    try:
        return orjson.dumps(parsed.event.to_dict())
    except Exception:
        return repr(parsed.event).encode("utf-8", "replace")


def _entry_order(parsed: ParsedEvent | ParsedControl) -> tuple[int, int]:
    """A user's events (and control messages) in stream order (all are in the user's one stream): entry ids."""
    millis, _, sequence = parsed.entry_id.partition("-")
    return int(millis), int(sequence or 0)


@dataclass(slots=True)
class UserHistoryState:
    """A user's history, which life of it this is (see :attr:`Touch.life`) and the lists they were served."""

    history: UserHistory
    life: int
    attribution: AttributionMemory | None = None
    """The user's last served lists (attribution), made at their first ``served`` message."""

    def __init__(self, history: UserHistory, life: int, attribution: AttributionMemory | None = None) -> None:
        # Written out, not generated: mypyc compiles only the methods in the source (see online.init_pickle).
        self.history = history
        self.life = life
        self.attribution = attribution

    def __reduce__(self) -> tuple[Any, ...]:
        return reduce_by_init(self)


class UserHistoryConfig:
    """The settings :class:`UserHistoryLogic` reads, made once per flow and shared by every user's logic.

    >>> config = UserHistoryConfig(Settings())
    >>> config.recent_items == Settings().recent_items, config.reorder, config.context_features
    (True, False, False)
    """

    def __init__(self, settings: Settings, reorder: bool = False) -> None:
        self.settings = settings
        self.reorder = reorder
        """Put each batch of the user's events back in stream order (behind the catalog stage)."""
        self.keys: RedisKeys = settings.keys
        self.weights: EventTypeWeights = settings.weights
        self.window_s: float = settings.purchase_window_s
        self.context_features: bool = settings.context_items > 0
        self.recent_items: int = settings.recent_items
        self.session_gap_s: float = settings.session_gap_s
        self.dedup_horizon_s: float = settings.dedup_horizon_s
        self.dedup_max_ids: int = settings.dedup_max_ids
        self.attribution_lists: int = settings.attribution_lists
        self.attribution_window_s: float = settings.attribution_window_s

    def __reduce__(self) -> tuple[Any, ...]:
        return UserHistoryConfig, (self.settings, self.reorder)  # a compiled class: rebuilt from its settings


@mypyc_attr(native_class=False)
class UserHistoryLogic(_StageLogic[ParsedEvent | ParsedControl, "list[Touch | Link | PurchaseLink] | DeadLetter | UserErased | AttributionWrite",
                                   "UserHistoryState"]):
    """User-keyed: de-duplication, sessions, recent items; emits the touch and the forward links.

    An evicted user's next event starts a new history (a new life) at seq 1.
    """

    stage = "user_history"

    distance_decay = 1.0
    """Evidence that item b follows a at distance d in a session: ``weight / (d + 1) ** distance_decay``."""

    def __init__(self, settings: Settings, resume: bytes | None, recoverable: bool = True, reorder: bool = False,
                 config: UserHistoryConfig | None = None):
        super().__init__(recoverable, settings.user_ttl_s)
        # One object per flow, not the settings copied into every new user's logic (build_flow passes it).
        self.config = UserHistoryConfig(settings, reorder) if config is None else config
        self._session_of = ""
        self._session_key = ""
        self.state: UserHistoryState = _load(resume) or self._new_state()

    def _new_state(self) -> UserHistoryState:
        config = self.config
        return UserHistoryState(
            UserHistory(config.recent_items, config.session_gap_s, dedup_horizon_s=config.dedup_horizon_s,
                        dedup_max_ids=config.dedup_max_ids), time.time_ns())

    @property
    def history(self) -> UserHistory:
        return self.state.history

    @override
    def process(self, values: list[ParsedEvent | ParsedControl]
                 ) -> tuple[Iterable[list[Touch | Link | PurchaseLink] | DeadLetter | UserErased | AttributionWrite],
                            bool]:
        self.last_active = time.time()
        out: list[list[Touch | Link | PurchaseLink] | DeadLetter | UserErased | AttributionWrite] = []
        erased = False
        if self.config.reorder and len(values) > 1:  # the catalog stage (keyed by item) hands them on grouped by item
            values = sorted(values, key=_entry_order)
        for parsed in values:
            if type(parsed) is ParsedControl:  # an erase or a merge, in order with the user's events
                erased = self._control(parsed, out)
                continue
            erased = False
            assert type(parsed) is ParsedEvent
            seq = self.state.history.events
            try:
                messages = self._learn(parsed)
            except Exception as exc:  # one event must not stop the flow: dead-lettered, the next goes on
                out.extend(self._failed(parsed, exc, seq))
                continue
            if messages is not None:
                out.append(messages)
                event = parsed.event
                memory = self.state.attribution
                if memory is not None and event.type in _LABELS_A_LIST and (scored := memory.score_next(
                        event.item_id, event.ts)) is not None:  # the live HR@10 of the list the user was served
                    out.append(AttributionWrite("prequential", "hit" if scored[1] else "miss", event.user_id, (), (),
                                                scored[0].experiment, scored[0].variant))
                if event.type in ATTRIBUTED_KINDS or (event.type == "view" and event.rec_id is not None):
                    out.append(self._attribute(parsed))
        return out, StatefulBatchLogic.DISCARD if erased else StatefulBatchLogic.RETAIN

    def _control(self, parsed: ParsedControl, out: list[Any]) -> bool:
        """Handle an erase (the history goes; ``True``) or a merge (absorbed items touched)."""
        control = parsed.control
        if control.kind == "erase":
            out.append(UserErased(control.user_id, self.state.life))
            self.state = self._new_state()  # a later event in this batch starts from nothing
            return True
        served = control.served
        if served is not None:  # a list the server answered: remembered for attribution, its impressions counted
            memory = self.state.attribution
            if memory is None:
                memory = self.state.attribution = AttributionMemory(self.config.attribution_lists,
                                                                    self.config.attribution_window_s)
            memory.record(ServedList(served.rec_id, served.ts, served.variant, served.items, served.sources,
                                     served.experiment))
            out.append(AttributionWrite("impression", "attributed", control.user_id, served.items, served.sources,
                                        served.experiment, served.variant))
            return False
        try:
            out.append(absorb(self, parsed))
        except Exception as exc:
            out.append(stage_failure(self.stage, exc, self.config.keys.stream_for_user(control.user_id), parsed.entry_id,
                                     control.encode()))
        return False

    def _attribute(self, parsed: ParsedEvent) -> AttributionWrite:
        """What the event is attributed to (a ``view`` carrying a ``rec_id`` counts as a click)."""
        event = parsed.event
        kind = "click" if event.type == "view" else event.type
        memory = self.state.attribution
        if memory is None:
            status = "unattributed" if event.rec_id is None else "unknown"
            return AttributionWrite(kind, status, event.user_id, (event.item_id,), (), "", "", event.value or 0.0)
        a = memory.attribute(kind, event.item_id, event.rec_id, event.ts, event.value)
        return AttributionWrite(kind, a.status, event.user_id, (event.item_id,), (a.source,) if a.source else (),
                                a.experiment, a.variant or "", a.value, a.position or 0)

    def _failed(self, parsed: ParsedEvent, exc: Exception, seq: int) -> list[list[Touch | Link | PurchaseLink] | DeadLetter]:
        """The dead letter for an event this stage failed on, and a touch standing in for it if it took a sequence
        number: the user-list stage takes replies in sequence order and would otherwise wait for it."""
        event = parsed.event
        out: list[list[Touch | Link | PurchaseLink] | DeadLetter] = [stage_failure(
            self.stage, exc, self.config.keys.stream_for_user(event.user_id), parsed.entry_id, _event_raw(parsed))]
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
        config = self.config
        window_s = config.window_s
        event = parsed.event
        weight = config.weights.weight_of(event)
        facts = parsed.facts
        observed = history.learn_one(event, weight, facts.kind if facts is not None else None)
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
            segments=context_segments(event.context, event.ts) if config.context_features else (),
            facts=facts,
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
