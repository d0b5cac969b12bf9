"""The ranker stage (keyed by shard of users): :class:`RankerLogic`.

A replica of trending and an online ranker. It rebuilds the list the server
would have served before each outcome (personal candidates blended with
trending and, with ``LIVERECO_AFFINITY_CATEGORIES``, the trending items of the
user's favourite categories), scores the event against it, learns, and
publishes the ranker's weights.

>>> logic = RankerLogic(Settings(), None, recoverable=False)
>>> pool = PersonalPool([("a", 2.0), ("c", 0.7)], frozenset({"a"}), frozenset())
>>> out, _ = logic.on_batch([TrendingWrite("c", None, 1.0, 1.7e9 - 1, 1), Outcome("ann", "2-0", "c", 1.7e9, pool)])
>>> [(type(w).__name__, w.rank, w.listed) for w in out]   # c stood second in the list served before
[('PrequentialScore', 2, ('a', 'c'))]
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from zlib import crc32

from bytewax.operators import StatefulBatchLogic
from mypy_extensions import mypyc_attr
from typing_extensions import override

from flows.dead_letters import stage_failure
from flows.metrics import PREQUENTIAL_KS
from flows.stage_time import timed
from flows.stages.common import _load, _StageLogic
from flows.stages.messages import NewItem, Outcome, PersonalPool
from flows.writes import PrequentialScore, RankerWrite, TrendingWrite
from online.affinity_candidates import CategoryTrending, affinity_candidates
from online.blend import explore_slot
from online.context_popularity import ContextPopularity
from online.contract import Settings, stable_hash
from online.exploration import ExplorationPool
from online.logistic_sgd import LogisticSGD
from online.ranker import BlendRanker, Pool
from online.trending import TrendingTop

__all__ = ["RankerListedLogic", "RankerLogic", "RankerState"]


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
        trending, trending_at = self.trending.top_positions(depth + len(personal.exclude))
        return Pool(personal.ranked, trending, personal.repeats, personal.exclude, affinity, device, hour, trending_at)


@mypyc_attr(native_class=False)
class RankerLogic(_StageLogic[TrendingWrite | Outcome | NewItem, Any, "RankerState"]):
    """Shard-keyed: a replica of trending and an online ranker, scoring and learning from outcomes.

    Every popularity update reaches every replica; a user's outcomes reach
    the replica of their shard. For each outcome the replica rebuilds the list
    the server would have served just before the event (:func:`online.blend.blend`
    over the user's previous personal pool and trending as of the event's time),
    records where the item stood in it (:class:`PrequentialScore`), and learns
    from it if it is one of the sampled outcomes (``LIVERECO_RANKER_LEARN_EVERY``: every
    4th event of each user, by the user's event count, so a replay, another batching or
    the evaluation of the same log learns from the same ones; learning from all of them
    measured no better, see docs/performance.md). Trending updates are applied in event time, up to the outcome
    being scored, so no popularity from later events leaks into a score even
    when they overtake it across stages. The weights go to Redis
    (:class:`RankerWrite`) for the server. This is how a global model lives in
    a partitioned dataflow: replicas keyed by shard, not a module-level object.

    Exploration (``LIVERECO_EXPLORE_POSITION`` > 0): the same popularity
    updates tell the replica's :class:`~online.exploration.ExplorationPool`
    which items are new; the rebuilt list gets the exploration slot as the
    server fills it (:func:`online.blend.explore_slot`), the outcome is that
    slot's success or failure, and the pool's order goes to Redis with the weights.
    A :class:`~flows.stages.messages.NewItem` (the catalog created an item) joins the
    pool at once, with a new round of draws: a brand-new item can take the slot
    before anyone has touched it.

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
        self.learn_every = settings.ranker_learn_every
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
        ranker = self.state.ranker
        if not isinstance(ranker.model, LogisticSGD):  # a snapshot from before: River's model, the same arithmetic
            ranker.model = LogisticSGD(ranker.learning_rate, ranker.weights)
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
    def process(self, values: list[TrendingWrite | Outcome | NewItem]) -> tuple[Iterable[Any], bool]:
        state = self.state
        out: list[Any] = []
        learned = state.ranker.learned
        explored = state.exploration.version
        outcomes: list[Outcome] = []
        news = False
        for value in values:
            if isinstance(value, TrendingWrite):
                state.sequence += 1
                heapq.heappush(state.pending, (value.ts, state.sequence, value.item_id, value.log_score,
                                               value.events, value.category))
            elif isinstance(value, Outcome):
                outcomes.append(value)
            elif self.explore_at > 0:  # a NewItem: the catalog created it, a candidate before its first event
                state.exploration.observe(value.item_id, 0, value.category, launched=True)
                news = True
        if news:
            state.exploration.draw()  # a new round now: the new items may take the slot at once
        explore_at, score_k, learn_every = self.explore_at, self.score_k, self.learn_every
        for outcome in sorted(outcomes, key=lambda o: o.ts):
            try:
                if state.shard < 0:
                    state.shard = stable_hash(outcome.user_id) % self.shards
                state.now = max(state.now, outcome.ts)
                self._advance(state.now)
                segments = outcome.segments
                pool = state.pool(outcome.previous, self.n, self.affinity_categories, self.affinity_items, segments)
                learn = learn_every == 1 or _sampled(outcome.user_id, outcome.seq, learn_every)
                listed = state.ranker.learn_one(pool, outcome.item_id, score_k, learn)  # ranked before learning
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


def _sampled(user_id: str, seq: int, every: int) -> bool:
    """Whether the user's ``seq``-th event is one the ranker learns from: one in ``every``, by a hash of both
    (not by position: a systematic every-n-th event would tie the sample to places in sessions).

    >>> sum(_sampled("ann", seq, 4) for seq in range(1, 4001))
    961
    """
    h = (crc32(user_id.encode()) + seq * 0x9E3779B1) & 0xFFFFFFFF
    h = ((h ^ (h >> 16)) * 0x45D9F3B) & 0xFFFFFFFF
    h = ((h ^ (h >> 16)) * 0x45D9F3B) & 0xFFFFFFFF
    return (h ^ (h >> 16)) % every == 0


@mypyc_attr(native_class=False)
class RankerListedLogic(RankerLogic):
    """:class:`RankerLogic` whose key batch's outputs leave as one list (the dataflow's ``ranker_out`` step splits
    it): a shard's batch holds many outcomes, so one emit instead of one per score and weights write."""

    @override
    def on_batch(self, values: list[Any]) -> tuple[Iterable[Any], bool]:
        out, retain = timed(self.stage, len(values), self.process, values)  # as the base's, one emit
        return [out], retain
