"""The user-list stage (keyed by user): :class:`UserListLogic`.

It caches the neighbour lists of the user's recent items, merges them into the
fresh personal candidates (re-ranked by :class:`~online.purchases.AfterPurchase`
inside a purchase window), and hands them to the sink; each positive event
becomes an :class:`~flows.stages.messages.Outcome`.

>>> logic = UserListLogic(Settings(), None, recoverable=False)
>>> first = Touch("a", "ann", "1-0", 1, 1.0, 1.7e9, 1, None, [], "s", [("a", 1.0, 1.7e9)], [])
>>> second = Touch("b", "ann", "2-0", 2, 1.0, 1.7e9, 2, None, ["a"], "s", [("b", 1.0, 1.7e9), ("a", 1.0, 1.7e9)], [])
>>> out, _ = logic.on_batch([NeighbourReply("a", [("c", 1.0)], first), NeighbourReply("b", [("a", 1.0), ("d", 0.5)], second)])
>>> [type(m).__name__ for m in out], [item for item, _ in out[1].ranked]   # only the newest list is written
(['Outcome', 'UserListWrite'], ['b', 'a', 'd', 'c'])
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from bytewax.operators import StatefulBatchLogic
from mypy_extensions import mypyc_attr
from typing_extensions import override

from flows.dead_letters import stage_failure
from flows.stage_time import timed
from flows.stages.common import _load, _StageLogic
from flows.stages.control import TOMBSTONE_S, UserErased
from flows.stages.messages import NeighbourReply, Outcome, PersonalPool, Touch
from flows.writes import UserErasedWrite, UserListWrite
from online.affinity import CategoryAffinity
from online.contract import RedisKeys, Settings, quantize_affinity
from online.excluded_items import ExcludedItems
from online.init_pickle import reduce_by_init
from online.item_embedding import SessionEmbedding
from online.neighbour_candidates import NeighbourCandidates
from online.purchases import AfterPurchase
from online.returning import ReturnRate

__all__ = ["UserListConfig", "UserListListedLogic", "UserListLogic", "UserListState"]


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
    excluded: ExcludedItems | None = None
    """What the user bought, disliked or consumed over their whole retained history (``None``: nothing yet)."""
    returning: ReturnRate | None = None
    """How often the user goes back to their recent items (``None``: no second positive event yet)."""

    def __init__(self, candidates: NeighbourCandidates, latest: Touch | None = None,
                 previous: PersonalPool | None = None, pending: dict[int, NeighbourReply] | None = None,
                 life: int = 0, session_id: str = "", session: SessionEmbedding | None = None,
                 affinity: CategoryAffinity | None = None, after_purchase: AfterPurchase | None = None,
                 excluded: ExcludedItems | None = None, returning: ReturnRate | None = None) -> None:
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
        self.excluded = excluded
        self.returning = returning

    def __reduce__(self) -> tuple[Any, ...]:
        return reduce_by_init(self)


class UserListConfig:
    """The settings :class:`UserListLogic` reads, made once per flow and shared by every user's logic.

    >>> config = UserListConfig(Settings())
    >>> config.n, config.recent_weight, config.adaptive_recent
    (50, 3.0, True)
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.keys: RedisKeys = settings.keys
        self.n: int = settings.candidates
        self.recent_weight: float = settings.recent_weight
        self.adaptive_recent: bool = bool(settings.recent_adaptive) and settings.recent_weight > 0.0  # 0: never, no state
        self.position_decay: float = settings.position_decay
        self.purchase_demote: float = settings.purchase_demote
        self.purchase_boost: float = settings.purchase_boost
        self.session_weight: float = settings.session_neighbours
        self.affinity_categories: int = settings.affinity_categories

    def __reduce__(self) -> tuple[Any, ...]:
        return UserListConfig, (self.settings,)  # a compiled class: rebuilt from its settings


@mypyc_attr(native_class=False)
class UserListLogic(_StageLogic["NeighbourReply | UserErased", Any, "UserListState"]):
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

    def __init__(self, settings: Settings, resume: bytes | None, recoverable: bool = True,
                 config: UserListConfig | None = None):
        super().__init__(recoverable, settings.user_ttl_s + self.eviction_grace_s)
        # One object per flow, not ~10 settings copied into every new user's logic (build_flow passes it).
        self.config = UserListConfig(settings) if config is None else config
        self.state: UserListState = _load(resume) or UserListState(NeighbourCandidates())

    max_pending = 256
    """Replies held back waiting for an earlier one; beyond this the oldest is taken without it."""
    profile_affinities = 5
    """Categories shown in the user's profile."""
    eviction_grace_s = 60.0
    """This stage keeps an idle user this much longer than the history stage does, so a user's
    history is dropped first and a returning user's new life resets this state (not the reverse)."""
    rerank_depth = 2
    excluded_max = 1000
    """Items remembered as excluded per user over their whole history (:class:`~online.excluded_items.ExcludedItems`,
    8 bytes each); beyond, the oldest may come back."""
    kind_exclude_max = 40
    """Inside a purchase window, at most this many items known to be of a bought kind are excluded from the list
    (the stored list names them, so the server leaves them out of trending too); the rest are demoted."""
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
    def process(self, values: list[NeighbourReply | UserErased]) -> tuple[Iterable[Any], bool]:
        self.last_active = time.time()
        state = self.state
        config = self.config
        if any(type(v) is UserErased for v in values):
            return self._erase(values)
        for reply in values:
            assert type(reply) is NeighbourReply
            life = reply.touch.life
            if life != state.life:
                if life < state.life:
                    continue  # a straggler from a life of the user's history that has since ended
                # The history was evicted while idle and the user is back (or this state is new).
                if state.life == 0 and state.latest is None and not state.pending:
                    state.life = life  # never used (a new key's): as a new state, without making one (~4k instructions)
                else:
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
                if touch.facts is not None:  # brand and price band join the categories (brand:acme, price:64-128)
                    for key in touch.facts.affinity_keys:
                        state.affinity.learn_one(key, touch.weight, touch.ts)
                if config.adaptive_recent and touch.weight > 0.0:
                    self._learn_return(state.latest, touch.item_id)
                if touch.weight < 0.0 or self._recent_weight() <= 0.0 or touch.item_id in touch.exclude:
                    self._exclude(touch.item_id)  # disliked, consumed (never recommended back) or bought
                window = touch.window
                if window is not None:
                    after = state.after_purchase
                    if after is None:
                        after = state.after_purchase = AfterPurchase(config.purchase_demote, config.purchase_boost)
                    after.learn_one(window, ready.bought_next, ready.of_kind)
                elif state.after_purchase is not None:
                    state.after_purchase = None  # the window has closed
                if touch.weight > 0.0 and state.previous is not None:
                    out.append(Outcome(touch.user_id, touch.entry_id, touch.item_id, touch.ts, state.previous,
                                       touch.segments, touch.seq))
            except Exception as exc:  # one event must not stop the flow: dead-lettered, its user goes on
                out.append(stage_failure(self.stage, exc, config.keys.stream_for_user(touch.user_id), touch.entry_id,
                                         f"reply of item {ready.item_id} to user {touch.user_id}".encode()))
            state.latest = touch
            sessions = ready.sessions
            if pending:  # the next outcome needs this list; only the newest one is written
                self._guarded_rank(touch, sessions, out, written=False)
        if touch is not None:
            self._guarded_rank(touch, sessions, out)
        return out, StatefulBatchLogic.RETAIN

    def _erase(self, values: list[Any]) -> tuple[Iterable[Any], bool]:
        """A batch holding an erase of the user's life L (it comes straight from the user's history, so replies of
        either life may arrive before or after it). Replies of lives up to L are dropped; unless this state already
        belongs to a newer life, it goes (a tombstone of L stays :data:`~flows.stages.control.TOMBSTONE_S`) and
        the sink deletes the user's keys; replies of a newer life are then handled on a fresh state."""
        erased = max(v.life for v in values if type(v) is UserErased)
        user_id = next(v.user_id for v in values if type(v) is UserErased)
        newer: list[NeighbourReply | UserErased] = [v for v in values if type(v) is NeighbourReply
                                                    and v.touch.life > erased]
        out: list[Any] = []
        if self.state.life <= erased:
            self.state = UserListState(NeighbourCandidates(), life=erased + 1)  # older lives' replies: stragglers
            out.append(UserErasedWrite(user_id))
            self.last_active = time.time() - self.idle_s + TOMBSTONE_S if self.idle_s is not None else time.time()
        if newer:
            rest, retain = self.process(newer)
            return [*out, *rest], retain
        return out, StatefulBatchLogic.RETAIN

    def _guarded_rank(self, last: Touch, sessions: dict[str, float] | None, out: list[Any], written: bool = True) -> None:
        """:meth:`_rank`, its write appended to ``out``; a failure is dead-lettered (the previous list stays)."""
        try:
            write = self._rank(last, sessions, written)
        except Exception as exc:
            out.append(stage_failure(self.stage, exc, self.config.keys.stream_for_user(last.user_id), last.entry_id,
                                     f"ranking the list of user {last.user_id}".encode()))
            return
        if written:
            out.append(write)

    def _exclude(self, item: str) -> None:
        excluded = self.state.excluded
        if excluded is None:
            excluded = self.state.excluded = ExcludedItems(self.excluded_max)
        excluded.add(item)

    def _learn_return(self, before: Touch | None, item_id: str) -> None:
        """A positive touch of ``item_id``: after the user's first, a chance to return (:mod:`online.returning`);
        a user no longer recommended their own items back has those consumed meanwhile excluded from now on."""
        if before is None:
            return
        returning = self.state.returning
        if returning is None:
            returning = self.state.returning = ReturnRate()
        config = self.config
        weight = returning.weight(config.recent_weight)
        returning.learn_one(_among_recent(item_id, before.recent))
        if weight > 0.0 and returning.weight(config.recent_weight) <= 0.0:
            for item, _, _ in before.recent:
                self._exclude(item)

    def _recent_weight(self) -> float:
        """``LIVERECO_RECENT_WEIGHT``, or with ``LIVERECO_RECENT_ADAPTIVE`` this user's (:mod:`online.returning`)."""
        returning = self.state.returning
        config = self.config
        if not config.adaptive_recent or returning is None:
            return config.recent_weight
        return returning.weight(config.recent_weight)

    def _rank(self, last: Touch, sessions: dict[str, float] | None, written: bool = True) -> UserListWrite:
        state = self.state
        config = self.config
        recent_weight = self._recent_weight()
        recent_items = [item for item, _, _ in last.recent]
        # Only the lists the merge reads: an older item gets a fresh list when it is touched again.
        state.candidates.forget_except(set(recent_items[: NeighbourCandidates.merge_depth]))
        exclude = set(last.exclude)
        for item, weight, _ in last.recent:  # a loop, not update() of a generator (an object and a call per item)
            if weight < 0.0:
                exclude.add(item)
        if recent_weight <= 0.0:
            exclude.update(recent_items)
        # Exclusions older than the recent ones are known by their hashes only: the list is cut from a deeper one.
        excluded = state.excluded
        hidden = excluded is not None and len(excluded) > len(exclude)
        after = state.after_purchase
        if after is not None:  # the bought kind leaves the list: the server's blend would bring it back otherwise
            exclude.update(after.labelled(self.kind_exclude_max))
        n = 2 * config.n if hidden else config.n
        if after is None:
            ranked = state.candidates.rank(last.recent, n, exclude, recent_weight=recent_weight,
                                           position_decay=config.position_decay, sessions=sessions,
                                           session_weight=config.session_weight)
        else:
            merged = state.candidates.rank(last.recent, self.rerank_depth * n, exclude,
                                           recent_weight=recent_weight, position_decay=config.position_decay,
                                           sessions=sessions, session_weight=config.session_weight)
            ranked = after.rerank(merged, n, last.recent, exclude, config.position_decay)
        if hidden and excluded is not None:
            ranked = _without(ranked, excluded, config.n)
        repeat_rows: list[int] = []
        if recent_weight > 0.0:  # the user's own recent items among the candidates
            recent = set(recent_items)
            repeat_rows = [row for row, (item, _) in enumerate(ranked) if item in recent]
        repeats = frozenset([ranked[row][0] for row in repeat_rows])
        # The affinity candidates' input, rounded as the list's blob keeps it: the server scores the same values.
        # Brand and price-band affinities have no trending list of their own: only categories are candidates' input.
        affinities = [(category, quantize_affinity(score))
                      for category, score in state.affinity.top(3 * config.affinity_categories)
                      if not category.startswith(("brand:", "price:"))][: config.affinity_categories] \
            if config.affinity_categories and len(state.affinity) else []
        state.previous = PersonalPool(ranked, repeats, frozenset(exclude), affinities)
        return UserListWrite(last.user_id, ranked, last.ts, last.accepted_ms, last.session_id, last.recent,
                             repeats=repeat_rows,
                             exclude=sorted(exclude), session_embedding=state.session.raw(),
                             affinities=state.affinity.top(self.profile_affinities) if written else [],
                             list_affinities=affinities)


def _among_recent(item: str, recent: list[tuple[str, float, float]]) -> bool:
    """Whether ``item`` is one of ``recent`` (a touch's recent items, newest first)."""
    for other, _, _ in recent:  # noqa: SIM110 (a loop: mypyc compiles any() over a generator to a slower one)
        if other == item:
            return True
    return False


def _without(ranked: list[tuple[str, float]], excluded: ExcludedItems, n: int) -> list[tuple[str, float]]:
    """The first ``n`` of ``ranked`` that are not ``excluded`` (each candidate tested only until ``n`` are found)."""
    kept: list[tuple[str, float]] = []
    for pair in ranked:
        if pair[0] not in excluded:
            kept.append(pair)
            if len(kept) == n:
                break
    return kept


@mypyc_attr(native_class=False)
class UserListListedLogic(UserListLogic):
    """:class:`UserListLogic` whose key batch's outputs leave as one list (the dataflow splits it in its next steps)."""

    @override
    def on_batch(self, values: list[Any]) -> tuple[Iterable[Any], bool]:
        out, retain = timed(self.stage, len(values), self.process, values)  # as the base's, one emit
        return [out], retain
