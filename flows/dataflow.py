"""The livereco dataflow: Redis streams in, fresh candidate lists out.

Run it with ``livereco flow`` (which also serves its metrics), or with
Bytewax's own runner::

    python -m bytewax.run "flows.dataflow:flow_from_env()" -w 2

Stages and their keys::

    streams ─► parse ─┬─► user history (user) ─► item state (item) ─┬─► user list (user) ─┬─► personal list ─┐
                      │                                             │                     └─► outcome ─┐    │
                      │                                             └─► popularity ─► ranker (shard) ◄─┘    │
                      │                                                  trending, similar ─┤ scores, weights│
                      └─► dead letters ───────────────────────────────────────────────────────┴──────────────┴─► Redis
"""

from __future__ import annotations

from typing import TypeGuard

from bytewax import operators as op
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import Source
from bytewax.outputs import Sink

from flows.redis_sink import DeadLetter, RedisSink, SinkOptions, TrendingWrite, Write
from flows.redis_source import RedisStreamSource, StreamEntry
from flows.stages import (
    ItemLogic,
    Outcome,
    ParsedEvent,
    RankerLogic,
    UserHistoryLogic,
    UserListLogic,
    parse_entry,
)
from online.contract import Settings, stable_hash

__all__ = ["build_flow", "flow_from_env"]


def _is_parsed(item: ParsedEvent | DeadLetter) -> TypeGuard[ParsedEvent]:
    return isinstance(item, ParsedEvent)


def _is_outcome(item: object) -> TypeGuard[Outcome]:
    return isinstance(item, Outcome)


def build_flow(settings: Settings, *, stop_at_end: bool = False, flow_id: str = "livereco",
               source: Source[StreamEntry] | None = None, sink: Sink[Write] | None = None,
               learn_until_ts: float | None = None, recoverable: bool = True) -> Dataflow:
    """The dataflow for ``settings``; ``stop_at_end`` ends it once the streams are drained.

    ``source`` and ``sink`` replace the Redis ones (the evaluation driver feeds a
    log in and collects scores); ``learn_until_ts`` freezes the item models for
    events at or after that time (frozen evaluation: user sessions still follow).
    ``recoverable=False`` (a run without a recovery store) skips pickling snapshots nobody keeps.
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
    entries = op.input("streams", flow, source)
    parsed = op.map("parse", entries, lambda entry: parse_entry(entry, weights))
    valid = op.branch("valid", parsed, _is_parsed)

    by_user = op.key_on("by_user", valid.trues, lambda p: p.event.user_id)
    touched = op.stateful_batch("user_history", by_user, lambda resume: UserHistoryLogic(settings, resume, recoverable))
    to_items = op.flat_map("to_items", touched, lambda kv: ((m.item_id, m) for m in kv[1]))
    item_out = op.key_rm("item_out", op.stateful_batch("items", to_items, lambda resume: ItemLogic(settings, resume, learn_until_ts, recoverable)))

    replies = op.branch("replies", item_out, lambda x: hasattr(x, "touch"))
    back_to_user = op.key_on("by_user_again", replies.trues, lambda r: r.user_id)
    lists = op.key_rm("lists_out", op.stateful_batch("user_lists", back_to_user,
                                                       lambda resume: UserListLogic(settings, resume, recoverable)))
    outcomes = op.branch("outcomes", lists, _is_outcome)

    shards = settings.ranker_shards
    popularity = op.filter("popularity", replies.falses, lambda x: isinstance(x, TrendingWrite))

    def to_shards(x: TrendingWrite | Outcome) -> list[tuple[str, TrendingWrite | Outcome]]:
        if isinstance(x, Outcome):
            return [(f"shard{stable_hash(x.user_id) % shards}", x)]
        return [(f"shard{s}", x) for s in range(shards)]

    ranker_in = op.flat_map("to_shards", op.merge("ranker_in", popularity, outcomes.trues), to_shards)
    ranked = op.key_rm("ranker_out", op.stateful_batch("ranker", ranker_in, lambda resume: RankerLogic(settings, resume, recoverable)))

    writes: Stream[Write] = op.merge("writes", outcomes.falses, ranked, replies.falses, valid.falses)
    if sink is None:
        sink = RedisSink(settings.redis_url, SinkOptions(
            settings.keys,
            user_ttl_s=settings.user_ttl_s,
            item_ttl_s=settings.item_ttl_s,
            trending_size=settings.trending_size,
            dead_letter_maxlen=settings.dead_letter_maxlen,
        ))
    op.output("redis", writes, sink)
    return flow


def flow_from_env() -> Dataflow:
    """The flow configured from environment variables (for ``python -m bytewax.run``)."""
    return build_flow(Settings.from_env())
