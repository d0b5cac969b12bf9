"""livereco as one in-process model: the dataflow's stage logic, run synchronously, one event at a time.

:class:`LiverecoModel` follows the :class:`~online.protocol.Recommender`
protocol, so the evaluation driver, the shared model checks and a notebook can
use livereco like any baseline, without Bytewax or Redis. It runs the *same*
stage classes as :mod:`flows.dataflow`, routed by hand exactly as the
dataflow wires them:

* :class:`~flows.stages.UserHistoryLogic`, one per user: the event becomes a
  :class:`~flows.stages.Touch` of its item and :class:`~flows.stages.Link`\\ s
  to the session's previous items;
* :class:`~flows.stages.ItemLogic`, one per item: each message goes to the
  item it names; trending updates go to every ranker replica, the touched
  item's :class:`~flows.stages.NeighbourReply` back to the user;
* :class:`~flows.stages.UserListLogic`, one per user: the user's personal pool;
  each positive event's :class:`~flows.stages.Outcome` goes to the ranker
  replica of the user's shard (``stable_hash(user_id) % ranker_shards``);
* :class:`~flows.stages.RankerLogic`, one per shard: trending (and, with
  ``LIVERECO_AFFINITY_CATEGORIES``, each category's) and the online ranker that
  blends it with personal (and affinity) candidates.

:meth:`LiverecoModel.recommend` answers what the HTTP server would serve:
:func:`online.blend.blend` over the user's latest personal pool and the
trending top of their replica, with that replica's weights and exploration
order (a user never seen gets trending). The similar list, the stored candidate list, prequential
scores and published weights (sink writes) are not kept: the state they come
from is.

One difference from the dataflow, by design: the flow's ranker replicas apply
trending updates in event time up to the outcome being scored, while this
model applies them as soon as an event has been processed, as the Redis
trending set the server reads is updated. For a time-ordered stream the two
agree except for events that share a timestamp. No state is evicted (the flow
drops idle keys on wall-clock timers).

Examples
--------
>>> from online.contract import Event
>>> model = LiverecoModel(Settings())
>>> sessions = [("ann", "abc"), ("bob", "abd"), ("cat", "abc"), ("dan", "ab")]
>>> for number, (user, items) in enumerate(sessions):
...     for step, item in enumerate(items):
...         model.learn_one(Event(user, item, "view", 1.7e9 + 60 * number + step))
>>> model.recommend("dan", 4)             # dan's own recent items, then what followed a, b for ann, cat and bob
['b', 'a', 'c', 'd']
>>> model.recommend("someone new", 3)     # trending
['b', 'a', 'c']
>>> model.similar("b", 3)                 # came before b (a), went after it (c, d)
['a', 'c', 'd']
>>> model.recommend("dan", 0)
[]
"""

from __future__ import annotations

from collections.abc import Iterable

from flows.redis_sink import TrendingWrite
from flows.stages import (
    ItemLogic,
    Link,
    NeighbourReply,
    NewItem,
    Outcome,
    ParsedEvent,
    PersonalPool,
    PurchaseLink,
    RankerLogic,
    Touch,
    UserHistoryLogic,
    UserListLogic,
)
from flows.stages.control import UserErased
from flows.stages.items import ItemConfig
from flows.stages.user_history import UserHistoryConfig
from flows.stages.user_lists import UserListConfig
from online.blend import blend
from online.context_popularity import device_segment, hour_segment
from online.contract import Event, Settings, stable_hash

__all__ = ["LiverecoModel"]

_NO_POOL = PersonalPool([], frozenset(), frozenset())


class LiverecoModel:
    """The dataflow's stages in one process: ``learn_one(event)``, ``recommend(user_id, n)``, ``similar(item_id, n)``.

    State is the stage logics' own, keyed as in the dataflow: per user
    (history and list), per item, per ranker shard. It pickles, and a copy
    goes on exactly as the original.
    """

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings if settings is not None else Settings()
        self.histories: dict[str, UserHistoryLogic] = {}
        self.items: dict[str, ItemLogic] = {}
        self.user_lists: dict[str, UserListLogic] = {}
        self.rankers = [RankerLogic(self.settings, None, recoverable=False)
                        for _ in range(self.settings.ranker_shards)]
        # Each stage's settings as one object shared by its keys' logics, as in the dataflow
        self._history_config = UserHistoryConfig(self.settings)
        self._item_config = ItemConfig(self.settings)
        self._list_config = UserListConfig(self.settings)
        self.events = 0
        """Events learned (duplicates included): numbers each event's entry id, as a stream would."""

    def learn_one(self, event: Event) -> None:
        """Run ``event`` through every stage it reaches, in the dataflow's order."""
        self.events += 1
        millis = int(event.ts * 1000)
        parsed = ParsedEvent(event, f"{millis}-{self.events}", millis)
        touched = self._history_of(event.user_id).on_batch([parsed])[0]
        trending: list[TrendingWrite] = []
        replies: list[NeighbourReply] = []
        for messages in touched:
            if isinstance(messages, list):  # else a dead letter: the stage failed on this event
                self._to_items(messages, trending, replies)
        outcomes = self._to_user_list(replies)
        self._to_rankers(trending, outcomes)

    def recommend(self, user_id: str, n: int, device: str | None = None, hour: int | None = None) -> list[str]:
        """The ``n`` items the server would serve ``user_id`` now: personal pool blended with trending.

        ``device`` and ``hour`` (0-23) are the request's context, as the server's query parameters
        (they matter only with ``LIVERECO_CONTEXT_ITEMS`` on).
        """
        if n <= 0:
            return []
        replica = self.rankers[self._shard(user_id)].state
        lists = self.user_lists.get(user_id)
        personal = lists.state.previous if lists is not None else None
        personal = personal or _NO_POOL
        depth = max(n, self.settings.candidates)  # the server's pool size, as the ranker stage's
        segments = (device_segment(device), hour_segment(hour) if hour is not None else "")
        pool = replica.pool(personal, depth, self.settings.affinity_categories, self.settings.affinity_items, segments)
        explore = replica.exploration.order if self.settings.explore_position > 0 else ()
        return [item for item, _, _ in blend(pool, replica.ranker.weights, n, explore, self.settings.explore_position)]

    def similar(self, item_id: str, n: int) -> list[str]:
        """The item's ``n`` strongest co-visitation neighbours (at most ``LIVERECO_NEIGHBOURS``; [] if unknown).

        The server pads this list with trending; this is the item's own part.
        """
        logic = self.items.get(item_id)
        if n <= 0 or logic is None or logic.state is None:
            return []
        return [item for item, _ in logic.state.neighbours.top(min(n, self.settings.neighbours))]

    def _shard(self, user_id: str) -> int:
        return stable_hash(user_id) % self.settings.ranker_shards

    def _history_of(self, user_id: str) -> UserHistoryLogic:
        logic = self.histories.get(user_id)
        if logic is None:
            logic = self.histories[user_id] = UserHistoryLogic(self.settings, None, recoverable=False,
                                                                    config=self._history_config)
        return logic

    def _to_items(self, messages: Iterable[Touch | Link | PurchaseLink], trending: list[TrendingWrite],
                  replies: list[NeighbourReply]) -> None:
        """One event's touch and links, each to the item it names (in order, one batch per item)."""
        by_item: dict[str, list[Touch | Link | PurchaseLink]] = {}
        for message in messages:
            by_item.setdefault(message.item_id, []).append(message)
        for item_id, batch in by_item.items():
            logic = self.items.get(item_id)
            if logic is None:
                logic = self.items[item_id] = ItemLogic(self.settings, None, recoverable=False,
                                                             config=self._item_config)
            for out in logic.on_batch(batch)[0]:
                if isinstance(out, NeighbourReply):
                    replies.append(out)
                elif isinstance(out, TrendingWrite):
                    trending.append(out)
                # ItemSimilarWrite: the similar list is read from the item's neighbours (``similar``).

    def _to_user_list(self, replies: list[NeighbourReply]) -> list[Outcome]:
        """Replies back to their user's list stage; returns the outcomes (the lists themselves stay in its state)."""
        outcomes: list[Outcome] = []
        by_user: dict[str, list[NeighbourReply | UserErased]] = {}
        for reply in replies:
            by_user.setdefault(reply.user_id, []).append(reply)
        for user_id, batch in by_user.items():
            logic = self.user_lists.get(user_id)
            if logic is None:
                logic = self.user_lists[user_id] = UserListLogic(self.settings, None, recoverable=False,
                                                                      config=self._list_config)
            outcomes.extend(out for out in logic.on_batch(batch)[0] if isinstance(out, Outcome))
        return outcomes

    def _to_rankers(self, trending: list[TrendingWrite], outcomes: list[Outcome]) -> None:
        """Trending to every replica, each outcome to its user's shard; then trending is applied up to now."""
        for shard, replica in enumerate(self.rankers):
            batch: list[TrendingWrite | Outcome | NewItem] = [*trending, *(o for o in outcomes if self._shard(o.user_id) == shard)]
            if batch:
                replica.on_batch(batch)  # scores each outcome and learns; PrequentialScore/RankerWrite not kept
            replica._advance(float("inf"))  # as Redis trending: every update, at once (see the module docstring)
