"""The livereco dataflow: Redis streams in, fresh candidate lists out.

Run it with ``livereco flow`` (which also serves its metrics), or with
Bytewax's own runner::

    python -m bytewax.run "flows.dataflow:flow_from_env()" -w 2

Stages and their keys::

    streams ─► parse ─┬─► [catalog (item) ◄─ catalog changes] ─► user history (user) ─► item state (item) ─┬─► user list (user) ─┬─► personal list ─┐
                      │                                             │                     └─► outcome ─┐    │
                      │                                             └─► popularity ─► ranker (shard) ◄─┘    │
                      │                                                  trending, similar ─┤ scores, weights│
                      └─► dead letters ───────────────────────────────────────────────────────┴──────────────┴─► Redis

:func:`build_flow` wires them in this order, one commented block per stage; each stage's logic is a module of
:mod:`flows.stages`. Every stage handles its events one by one inside a guard: an event (or a write) that fails
anywhere becomes a dead letter naming the stage and the reason (:mod:`flows.dead_letters`), and the flow goes on.
"""

from __future__ import annotations

from typing import Any, TypeGuard, TypeVar

from bytewax import operators as op
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import Source
from bytewax.operators import KeyedStream
from bytewax.outputs import Sink

from flows.catalog_source import CatalogSource
from flows.redis_sink import DeadLetter, RedisSink, SinkOptions, TrendingWrite, Write
from flows.redis_source import RedisStreamSource, StreamEntry
from flows.stage_time import timed
from flows.stages import (
    CatalogLogic,
    Link,
    NeighbourReply,
    NewItem,
    Outcome,
    ParsedEvent,
    PurchaseLink,
    Touch,
    UserHistoryLogic,
    parse_entries,
)
from flows.stages.control import ParsedControl, UserErased
from flows.stages.items import ItemConfig, ItemListedLogic
from flows.stages.ranker import RankerListedLogic
from flows.stages.user_history import UserHistoryConfig
from flows.stages.user_lists import UserListConfig, UserListListedLogic
from flows.writes import AttributionWrite
from online.catalog.protocol import CatalogChange
from online.contract import Settings, stable_hash

__all__ = ["build_flow", "flow_from_env"]

V = TypeVar("V")


def _is_keyed(item: tuple[str, ParsedEvent | ParsedControl] | DeadLetter
              ) -> TypeGuard[tuple[str, ParsedEvent | ParsedControl]]:
    return type(item) is tuple


def _is_messages(keyed: tuple[str, list[Touch | Link | PurchaseLink] | DeadLetter | UserErased | AttributionWrite]
                 ) -> TypeGuard[tuple[str, list[Touch | Link | PurchaseLink]]]:
    return type(keyed[1]) is list  # else a DeadLetter: the user-history stage failed on that event


def _dead_letters(batch: list[tuple[str, list[Touch | Link | PurchaseLink] | DeadLetter | UserErased | AttributionWrite]]
                  ) -> list[DeadLetter | AttributionWrite]:
    """The user-history stage's writes: dead letters and attribution (impressions, attributed events)."""
    return [value for _, value in batch if isinstance(value, DeadLetter | AttributionWrite)]


def _erasures(batch: list[tuple[str, list[Touch | Link | PurchaseLink] | DeadLetter | UserErased | AttributionWrite]]
              ) -> list[tuple[str, NeighbourReply | UserErased]]:
    return [(key, value) for key, value in batch if isinstance(value, UserErased)]


def _messages_by_item(batch: list[tuple[str, list[Touch | Link | PurchaseLink]]]) -> list[tuple[str, Touch | Link | PurchaseLink]]:
    return [(message.item_id, message) for _, messages in batch for message in messages]


def _replies_by_user(batch: list[tuple[str, list[Any]]]) -> list[tuple[str, NeighbourReply]]:
    """The replies among the item stage's outputs (each item's batch is one list), keyed by their user."""
    return [(reply.touch.user_id, reply) for _, out in batch for reply in out if type(reply) is NeighbourReply]


def _item_writes(batch: list[tuple[str, list[Any]]]) -> list[Write]:
    """The item stage's writes: trending updates, similar lists, dead letters (all but the replies)."""
    return [write for _, out in batch for write in out if type(write) is not NeighbourReply]


def _list_writes(batch: list[tuple[str, list[Any]]]) -> list[Write]:
    """The user-list stage's writes: lists, erasures, dead letters (all but the outcomes)."""
    return [write for _, out in batch for write in out if type(write) is not Outcome]


CONTROL_KEY = "\x1fcontrol"
"""The catalog stage's key for control messages (no item id can hold a control character): they take the same
hop as events, so they reach the user history in order with them."""


def _events_by_item(batch: list[tuple[str, ParsedEvent | ParsedControl]]
                    ) -> list[tuple[str, ParsedEvent | ParsedControl | CatalogChange]]:
    return [(parsed.event.item_id if type(parsed) is ParsedEvent else CONTROL_KEY, parsed) for _, parsed in batch]


def _changes_by_item(batch: list[CatalogChange]) -> list[tuple[str, ParsedEvent | ParsedControl | CatalogChange]]:
    return [(change.item_id, change) for change in batch]


def _is_news(keyed: tuple[str, object]) -> bool:
    return type(keyed[1]) is NewItem


def _values(batch: list[tuple[str, V]]) -> list[V]:
    return [value for _, value in batch]


def _listed_values(batch: list[tuple[str, list[Write]]]) -> list[Write]:
    """The values of a listed stage's emits (each key batch's outputs as one list), in order."""
    return [value for _, out in batch for value in out]


def build_flow(settings: Settings, *, stop_at_end: bool = False, flow_id: str = "livereco",
               source: Source[StreamEntry] | None = None, sink: Sink[Write] | None = None,
               learn_until_ts: float | None = None, recoverable: bool = True,
               catalog: Source[CatalogChange] | None = None, use_catalog: bool = True) -> Dataflow:
    """The dataflow for ``settings``; ``stop_at_end`` ends it once the streams are drained.

    ``source`` and ``sink`` replace the Redis ones (the evaluation driver feeds a
    log in and collects scores); ``catalog`` is the catalog's changes (with the
    Redis source, the catalog's change stream: :class:`~flows.catalog_source.CatalogSource`;
    ``use_catalog=False`` (a flow of several workers: the item-keyed catalog stage would let a user's events
    reach the user history out of order) leaves it out too; a flow given another ``source`` and no ``catalog``
    has no catalog stage, as a
    replayed log's categories come with its events); ``learn_until_ts`` freezes the item models for
    events at or after that time (frozen evaluation: user sessions still follow).
    ``recoverable=False`` (a run without a recovery store) skips pickling snapshots nobody keeps.

    Two users' views through the whole flow, with Bytewax's testing source and sink:

    >>> from bytewax.testing import TestingSink, TestingSource, run_main
    >>> from flows.redis_sink import PrequentialScore, UserListWrite
    >>> from online.contract import Event
    >>> from online.contract.streams import stream_fields
    >>> views = [("ann", "a"), ("ann", "b"), ("ann", "c"), ("bob", "a"), ("bob", "b")]
    >>> entries = [StreamEntry("events", f"{1700000000000 + n}-0",
    ...                        {k.encode(): v for k, v in stream_fields(Event(user, item, "view", 1.7e9 + n)).items()})
    ...            for n, (user, item) in enumerate(views)]
    >>> writes: list[Write] = []
    >>> run_main(build_flow(Settings(), source=TestingSource(entries), sink=TestingSink(writes), recoverable=False))
    >>> [[item for item, _ in w.ranked] for w in writes if isinstance(w, UserListWrite) and w.user_id == "bob"]
    [['a', 'b', 'c'], ['b', 'a', 'c']]
    >>> [(w.item_id, w.rank) for w in writes if isinstance(w, PrequentialScore) and w.user_id == "bob"]
    [('b', 2)]
    """
    if (source is None or sink is None) and not settings.redis_url:
        raise ValueError("REDIS_URL is empty: the flow needs a Redis server (livereco run starts one)")
    weights = settings.weights
    flow = Dataflow(flow_id)
    if source is None:
        source = RedisStreamSource(
            settings.redis_url,
            settings.keys,
            read_count=settings.read_count,
            poll_interval_s=settings.poll_interval_ms / 1000.0,
            stop_at_end=stop_at_end,
        )
        if catalog is None and use_catalog:
            catalog = CatalogSource(settings.redis_url, settings.keys, stop_at_end=stop_at_end)
        if isinstance(catalog, CatalogSource):  # events wait until the catalog as it stood at start-up is read
            source.catalog_loaded = catalog.loaded
    # Operators are fused where a step would only re-key or unwrap: every Python call per event counts.
    # Steps that map item by item take whole batches (flat_map_batch): one compiled loop per batch
    # instead of a Python generator and a lambda call per item (op.map's shim).

    # source: one partition per stream → parse ──invalid──► dead letters
    entries = op.input("streams", flow, source)

    def parse_batch(batch: list[StreamEntry]) -> list[tuple[str, ParsedEvent | ParsedControl] | DeadLetter]:
        return timed("parse", len(batch), parse_entries, batch, weights)

    parsed = op.flat_map_batch("parse", entries, parse_batch)
    valid = op.branch("valid", parsed, _is_keyed)

    # → catalog [by item] (when the flow follows a catalog): each event takes its item's catalog facts; a new
    # catalog item goes to every ranker replica (exploration)
    shard_keys = [f"shard{shard}" for shard in range(settings.ranker_shards)]
    history_in: KeyedStream[ParsedEvent | ParsedControl] = valid.trues
    news: KeyedStream[NewItem] | None = None
    if catalog is not None:
        changes = op.input("catalog_changes", flow, catalog)
        catalog_in: KeyedStream[ParsedEvent | ParsedControl | CatalogChange] = op.merge(
            "catalog_in", op.flat_map_batch("events_by_item", valid.trues, _events_by_item),
            op.flat_map_batch("changes_by_item", changes, _changes_by_item))
        cataloged = op.stateful_batch("catalog", catalog_in, lambda resume: CatalogLogic(resume, recoverable))
        is_news = op.branch("catalog_news", cataloged, _is_news)
        history_in = op.flat_map_batch("events_by_user", is_news.falses, _values)

        def news_to_shards(batch: list[tuple[str, NewItem]]) -> list[tuple[str, NewItem]]:
            return [(key, new) for _, new in batch for key in shard_keys]

        news = op.flat_map_batch("news_to_shards", is_news.trues, news_to_shards)

    # → user history [by user]: touches and links to their items (a failed event: a dead letter)
    # Each stage's settings as one object shared by its keys' logics (a logic is made per new key)
    history_config = UserHistoryConfig(settings, catalog is not None)
    touched = op.stateful_batch("user_history", history_in,
                                lambda resume: UserHistoryLogic(settings, resume, recoverable, config=history_config))
    touched_ok = op.branch("touched_ok", touched, _is_messages)

    # → item state [by item]: replies back to their users; popularity and similar lists to the sink
    to_items = op.flat_map_batch("to_items", touched_ok.trues, _messages_by_item)
    item_config = ItemConfig(settings, learn_until_ts)
    # Each item's batch leaves as one list (one emit, not one per reply and write), split by the next two steps
    item_out = op.stateful_batch("items", to_items,
                                 lambda resume: ItemListedLogic(settings, resume, learn_until_ts, recoverable,
                                                                item_config))
    back_to_user = op.flat_map_batch("by_user_again", item_out, _replies_by_user)
    item_writes: Stream[Write] = op.flat_map_batch("item_writes", item_out, _item_writes)

    # → user list [by user]: the personal list to the sink, each positive event's outcome to the ranker
    # (an erased user's list goes too: the erase comes straight from the user's history)
    to_lists: KeyedStream[NeighbourReply | UserErased] = op.merge(
        "to_lists", back_to_user, op.flat_map_batch("erasures", touched_ok.falses, _erasures))
    list_config = UserListConfig(settings)
    lists = op.stateful_batch("user_lists", to_lists,  # each user's batch as one list, as the items'
                              lambda resume: UserListListedLogic(settings, resume, recoverable, list_config))

    # → ranker [by shard]: every popularity update to every replica, each outcome to its user's shard
    def popularity_to_shards(batch: list[Write]) -> list[tuple[str, TrendingWrite | Outcome | NewItem]]:
        return [(key, write) for write in batch if isinstance(write, TrendingWrite) for key in shard_keys]  # every replica

    def outcome_to_shard(batch: list[tuple[str, list[Any]]]) -> list[tuple[str, TrendingWrite | Outcome | NewItem]]:
        return [(shard_keys[stable_hash(user_id) % len(shard_keys)], outcome)
                for user_id, out in batch for outcome in out if type(outcome) is Outcome]

    ranker_in: KeyedStream[TrendingWrite | Outcome | NewItem] = op.merge(
        "ranker_in", op.flat_map_batch("popularity", item_writes, popularity_to_shards),
        op.flat_map_batch("outcome_shard", lists, outcome_to_shard), *([news] if news is not None else []))
    ranked = op.flat_map_batch("ranker_out", op.stateful_batch(  # each shard's batch as one list, as the items'
        "ranker", ranker_in, lambda resume: RankerListedLogic(settings, resume, recoverable)), _listed_values)

    # → sink: pipelined, idempotent writes of every stage, dead letters among them (these two steps are made last,
    # as they always were: every step is made in the same order as before, so Bytewax builds the same dataflow)
    history_failures: Stream[Write] = op.flat_map_batch("history_failures", touched_ok.falses, _dead_letters)
    list_writes: Stream[Write] = op.flat_map_batch("lists_out", lists, _list_writes)
    writes: Stream[Write] = op.merge("writes", list_writes, ranked, item_writes, valid.falses, history_failures)
    if sink is None:
        sink = RedisSink(settings.redis_url, SinkOptions(
            settings.keys,
            user_ttl_s=settings.user_ttl_s,
            item_ttl_s=settings.item_ttl_s,
            trending_size=settings.trending_size,
            dead_letter_maxlen=settings.dead_letter_maxlen,
            blob_version=settings.blob_version,
        ))
    op.output("redis", writes, sink)
    return flow


def flow_from_env() -> Dataflow:
    """The flow configured from environment variables (for ``python -m bytewax.run``)."""
    return build_flow(Settings.from_env())
