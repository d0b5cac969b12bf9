"""The Redis sink: every write the dataflow makes, pipelined per batch.

Writes are idempotent overwrites (``SET``, ``ZADD`` of an absolute score
then a trim to the top, ``HSET``), so a replay after recovery, or a batch sent
twice, leaves the same values. The exception is ``XADD`` to the dead-letter
stream: dead letters are at least once (each names its stream and entry id).
Within a batch, later writes to the same key replace earlier ones before
anything is sent, so a burst of events for one user costs one ``SET``.

One write that cannot be made does not stop the flow either: a list whose
encoding fails, or a command Redis rejects for good (a key of the wrong type,
say ``WRONGTYPE``), becomes a dead letter with stage ``sink`` (reason
``encoding`` or ``rejected``) and the rest of the batch is written.

A batch's commands go in one round trip (:mod:`flows.redis_batch`). A Redis
outage blocks the batch: it is sent again, whole, 50 ms after
the first failure and twice as long after each further one, up to 2 s, until
Redis takes it (:class:`~flows.redis_client.Backoff`: one warning per outage,
one line when it ends). Nothing is dropped; the worker stalls, so epochs do not
complete and the stall shows up in the source lag.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import orjson
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from redis.exceptions import ResponseError
from typing_extensions import override

from flows.dead_letters import stage_failure
from flows.metrics import (
    ATTRIBUTED,
    FRESHNESS,
    REDIS_ERRORS,
    SERVED_SCORED,
    SINK_WRITE_SECONDS,
    SINK_WRITES,
    observe_scores,
)
from flows.redis_batch import Command, CommandBatches
from flows.redis_client import TRANSIENT_ERRORS, Backoff, RedisClient, connect
from flows.stage_time import add as add_stage_time
from flows.stage_time import sample
from flows.writes import (
    BLOB_VERSION,
    AttributionWrite,
    DeadLetter,
    ItemSimilarWrite,
    PrequentialScore,
    RankerWrite,
    TrendingWrite,
    UserErasedWrite,
    UserListWrite,
    Write,
)
from online.attribution import ATTRIBUTED_KINDS, SOURCES, STATUSES
from online.contract import RedisKeys
from online.experiments import MAX_VARIANTS

__all__ = ["BLOB_VERSION", "DeadLetter", "ItemSimilarWrite", "PrequentialScore", "RankerWrite", "RedisSink", "SinkOptions",
           "TrendingWrite", "UserListWrite", "Write"]

log = logging.getLogger(__name__)



_COUNTED: dict[str, tuple[str, ...]] = {"impression": ("impressions",), "click": ("clicks",),
                                         "view": ("clicks",), "add_to_cart": ("carts",),
                                         "purchase": ("conversions", "revenue")}
"""What each kind of attribution adds to an item's and a variant's counters."""


def _amounts(fields: tuple[str, ...], value: float) -> list[tuple[str, float]]:
    return [(name, value if name == "revenue" else 1.0) for name in fields]


_variant_labels: set[str] = set()


def variant_label(variant: str) -> str:
    """The ``variant`` label: the first :data:`~online.experiments.MAX_VARIANTS` names seen keep theirs, then ``other``.

    >>> variant_label(""), variant_label("control")
    ('none', 'control')
    """
    if not variant:
        return "none"
    if variant in _variant_labels:
        return variant
    if len(_variant_labels) < MAX_VARIANTS:
        _variant_labels.add(variant)
        return variant
    return "other"


def count_attribution(a: AttributionWrite) -> None:
    """``livereco_flow_attributed_total`` for one impression record (one per item shown) or attributed event;
    ``livereco_flow_served_lists_scored_total`` for a served list labelled by the user's next event."""
    if a.kind == "prequential":
        SERVED_SCORED.labels(variant_label(a.variant), "hit" if a.status == "hit" else "miss").inc()
        return
    if a.kind == "impression":
        by_source: dict[str, int] = {}
        for source in a.sources:
            label = source if source in SOURCES else "other"
            by_source[label] = by_source.get(label, 0) + 1
        for source, count in by_source.items():
            ATTRIBUTED.labels("impression", "attributed", source, variant_label(a.variant)).inc(count)
        return
    source = a.sources[0] if a.sources and a.sources[0] in SOURCES else "other"
    ATTRIBUTED.labels(a.kind if a.kind in ATTRIBUTED_KINDS else "other", a.status if a.status in STATUSES else "other",
                      source, variant_label(a.variant)).inc()


@dataclass(frozen=True, slots=True)
class SinkOptions:
    """Where and how long the sink writes."""

    keys: RedisKeys
    user_ttl_s: int
    item_ttl_s: int
    trending_size: int
    dead_letter_maxlen: int
    blob_version: int = BLOB_VERSION
    """The encoding of lists and profiles (``LIVERECO_BLOB_VERSION``)."""


@dataclass(slots=True)
class _Batch:
    """One ``write_batch``'s writes, the last per key kept."""

    users: dict[str, UserListWrite] = field(default_factory=dict)
    similar: dict[str, ItemSimilarWrite] = field(default_factory=dict)
    trending: dict[str, dict[str, float]] = field(default_factory=dict)
    rankers: dict[int, RankerWrite] = field(default_factory=dict)
    contexts: dict[int, dict[str, list[tuple[str, float]]]] = field(default_factory=dict)
    """Ranker shard -> context segment -> its popular items, from every ranker write of the batch."""
    dead: list[DeadLetter] = field(default_factory=list)
    erased: set[str] = field(default_factory=set)
    """Users whose keys are deleted (an erase after their last list write of the batch)."""
    blobs: dict[str, bytes] = field(default_factory=dict)
    """Key -> encoded list or profile, made once per batch (a retry after an outage sends the same bytes)."""
    counters: dict[str, dict[str, float]] = field(default_factory=dict)
    """Key -> field -> increment: attribution's per-item and per-variant counters, summed over the batch."""
    variant_users: dict[str, set[str]] = field(default_factory=dict)
    """A variant's users HyperLogLog key -> the users served by it in this batch."""
    attributed: list[AttributionWrite] = field(default_factory=list)
    ranks: list[int | None] = field(default_factory=list)
    """The batch's prequential scores (counted once per batch, :func:`~flows.metrics.observe_scores`)."""

    def __bool__(self) -> bool:
        return bool(self.users or self.similar or self.trending or self.rankers or self.dead or self.erased
                    or self.counters)


_TRANSIENT_REPLIES = ("LOADING", "BUSY", "TRYAGAIN", "CLUSTERDOWN", "MASTERDOWN", "READONLY", "OOM", "NOREPLICAS")
"""Error replies that mean "not now" rather than "never": the batch waits and is sent again."""


def _is_transient(error: Exception) -> bool:
    """Whether a batch failing with ``error`` waits and is sent again (rather than dead-lettering the command).

    redis-py takes a known code off the message (``OOM``, ``READONLY``: a subclass of ``ResponseError``,
    its code in ``status_code``), an unknown one stays at the message's start (``BUSY``, ``NOREPLICAS``).

    >>> from redis.exceptions import OutOfMemoryError
    >>> _is_transient(OutOfMemoryError("command not allowed", status_code="OOM")), _is_transient(ResponseError("BUSY x"))
    (True, True)
    >>> _is_transient(ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"))
    False
    """
    if isinstance(error, TRANSIENT_ERRORS):
        return True
    if not isinstance(error, ResponseError):
        return False
    code = getattr(error, "status_code", None) or str(error).split(" ", 1)[0]
    return code in _TRANSIENT_REPLIES


class _RedisSinkPartition(StatelessSinkPartition[Write]):
    def __init__(self, client: RedisClient, options: SinkOptions):
        self._client = client
        self._keys = options.keys
        self._user_ttl_s = options.user_ttl_s
        self._item_ttl_s = options.item_ttl_s
        self._trending_size = options.trending_size
        self._dead_letter_maxlen = options.dead_letter_maxlen
        self._blob_version = options.blob_version
        self._backoff = Backoff("the sink", log)
        self._batches = CommandBatches(client)

    @override
    def write_batch(self, items: list[Write]) -> None:
        weight = sample("sink", len(items))
        if not weight:
            self._write_batch(items)
            return
        started = time.thread_time_ns()
        self._write_batch(items)
        add_stage_time("sink", (time.thread_time_ns() - started) * weight)

    def _write_batch(self, items: list[Write]) -> None:
        batch = self._coalesce(items)
        observe_scores(batch.ranks)
        if not batch:
            return
        self._write(batch)
        written_ms = time.time() * 1000.0
        for u in batch.users.values():
            FRESHNESS.observe(max(0.0, written_ms - u.accepted_ms) / 1000.0)
        SINK_WRITES.labels("user_list").inc(len(batch.users))
        SINK_WRITES.labels("item_similar").inc(len(batch.similar))
        SINK_WRITES.labels("trending").inc(sum(len(m) for m in batch.trending.values()))
        SINK_WRITES.labels("dead_letter").inc(len(batch.dead))
        for a in batch.attributed:
            count_attribution(a)

    def _coalesce(self, items: list[Write]) -> _Batch:
        """The writes of ``items``, later ones to a key replacing earlier ones; prequential scores are counted here."""
        batch = _Batch()
        for w in items:
            if isinstance(w, UserListWrite):
                batch.users[w.user_id] = w
                batch.erased.discard(w.user_id)  # a list of the user's new life, after an erase
            elif isinstance(w, UserErasedWrite):
                batch.users.pop(w.user_id, None)
                batch.erased.add(w.user_id)
            elif isinstance(w, ItemSimilarWrite):
                batch.similar[w.item_id] = w
            elif isinstance(w, PrequentialScore):
                batch.ranks.append(w.rank)
            elif isinstance(w, RankerWrite):
                batch.rankers[w.shard] = w
                if w.contexts:
                    batch.contexts.setdefault(w.shard, {}).update(w.contexts)  # a later write's tops replace older ones
            elif isinstance(w, AttributionWrite):
                self._count(batch, w)
            elif isinstance(w, TrendingWrite):
                batch.trending.setdefault(self._keys.trending(), {})[w.item_id] = w.log_score
                if w.category:
                    batch.trending.setdefault(self._keys.trending(w.category), {})[w.item_id] = w.log_score
                for category in w.also:  # the catalog's other paths and ancestors of the item
                    batch.trending.setdefault(self._keys.trending(category), {})[w.item_id] = w.log_score
            else:
                batch.dead.append(w)
        return batch

    def _count(self, batch: _Batch, w: AttributionWrite) -> None:
        """Add an impression record or an attributed event to the batch's counters."""
        batch.attributed.append(w)
        keys, counters = self._keys, batch.counters
        if w.kind == "prequential":  # a served list labelled by the user's next event: the variant's live HR@10
            if w.variant:
                stats = counters.setdefault(keys.variant_stats(w.experiment, w.variant), {})
                stats["scored_lists"] = stats.get("scored_lists", 0.0) + 1.0
                stats["hits_at_10"] = stats.get("hits_at_10", 0.0) + (w.status == "hit")
            return
        fields = _COUNTED.get(w.kind)
        if fields is None or w.status not in ("attributed", "unknown"):
            return
        variant = keys.variant_stats(w.experiment, w.variant) if w.variant else None
        if w.status == "unknown":  # an id the flow does not know: counted for the variant-less report line
            unknown = counters.setdefault(keys.variant_stats(w.experiment, ""), {})
            unknown[f"unknown_{w.kind}"] = unknown.get(f"unknown_{w.kind}", 0.0) + 1.0
            return
        for item in w.items:
            stats = counters.setdefault(keys.item_stats(item), {})
            for name, amount in _amounts(fields, w.value):
                stats[name] = stats.get(name, 0.0) + amount
        if variant is not None:
            stats = counters.setdefault(variant, {})
            for name, amount in _amounts(fields, w.value):
                stats[name] = stats.get(name, 0.0) + amount * len(w.items)
            if w.position and w.kind != "impression":  # where in the lists the variant's clicks, carts, sales were
                at = f"{w.kind}_at_{w.position}"
                stats[at] = stats.get(at, 0.0) + 1.0
            if w.kind == "purchase":
                stats["revenue_sq"] = stats.get("revenue_sq", 0.0) + w.value * w.value
            if w.kind == "impression":
                batch.variant_users.setdefault(keys.variant_users(w.experiment, w.variant), set()).add(w.user_id)

    def _encode(self, batch: _Batch) -> None:
        """Encode the blobs of ``batch`` once (kept across retries); a write that cannot be encoded is dead-lettered."""
        keys = self._keys
        for uid, u in list(batch.users.items()):
            try:
                batch.blobs[keys.user_recs(uid)] = u.recs_blob(self._blob_version)
                batch.blobs[keys.user_profile(uid)] = u.profile_blob(self._blob_version)
            except Exception as exc:
                del batch.users[uid]
                batch.dead.append(stage_failure("sink", exc, "", "", f"list of user {uid}".encode("utf-8", "replace"),
                                                reason="encoding"))
        for iid, item in list(batch.similar.items()):
            try:
                batch.blobs[keys.item_similar(iid)] = item.blob(self._blob_version)
            except Exception as exc:
                del batch.similar[iid]
                batch.dead.append(stage_failure("sink", exc, "", "", f"similar list of item {iid}".encode("utf-8", "replace"),
                                                reason="encoding"))

    def _commands(self, batch: _Batch) -> tuple[list[Command], list[str]]:
        """Every command of ``batch``, in order, and what each one writes (for rejections)."""
        keys = self._keys
        commands: list[Command] = []
        what: list[str] = []
        blobs = batch.blobs
        user_ttl, item_ttl = self._user_ttl_s, self._item_ttl_s
        for uid in batch.users:
            recs, profile = keys.user_recs(uid), keys.user_profile(uid)
            commands += (("SET", recs, blobs[recs], "EX", user_ttl), ("SET", profile, blobs[profile], "EX", user_ttl))
            what += (recs, profile)
        for uid in batch.erased:
            commands.append(("DEL", keys.user_recs(uid), keys.user_profile(uid)))
            what.append(keys.user_recs(uid))
        for iid in batch.similar:
            similar = keys.item_similar(iid)
            commands.append(("SET", similar, blobs[similar], "EX", item_ttl))
            what.append(similar)
        for key, members in batch.trending.items():
            commands.append(("ZADD", key, *[x for member, score in members.items() for x in (score, member)]))
            commands.append(("ZREMRANGEBYRANK", key, 0, -(self._trending_size + 1)))
            what += (key, key)
        if batch.rankers:
            commands.append(("HSET", keys.ranker(),
                             *[x for r in batch.rankers.values() for x in (f"shard{r.shard}", r.blob())]))
            what.append(keys.ranker())
        for shard, tops in batch.contexts.items():
            commands.append(("HSET", keys.context(shard),
                             *[x for segment, top in tops.items() for x in (segment, orjson.dumps(top))]))
            what.append(keys.context(shard))
        for key, increments in batch.counters.items():
            for name, amount in increments.items():
                if name == "revenue" or name == "revenue_sq":
                    commands.append(("HINCRBYFLOAT", key, name, amount))
                else:
                    commands.append(("HINCRBY", key, name, int(amount)))
                what.append(key)
        for key, users in batch.variant_users.items():
            commands.append(("PFADD", key, *sorted(users)))
            what.append(key)
        for d in batch.dead:
            commands.append(self._dead_letter_command(d))
            what.append(keys.dead_letter())
        return commands, what

    def _dead_letter_command(self, d: DeadLetter) -> Command:
        return ("XADD", self._keys.dead_letter(), "MAXLEN", "~", self._dead_letter_maxlen, "*",
                *[x for name, value in d.fields().items() for x in (name, value)])

    def _write(self, batch: _Batch) -> None:
        """Send ``batch`` until Redis has taken all of it, backing off while Redis fails.

        Every attempt sends the whole batch again (:class:`~flows.redis_batch.CommandBatches`: one round trip,
        a failed connection dropped with the replies it still held). Commands of a failed attempt that
        did run are overwritten with the same values.
        """
        self._encode(batch)
        commands, what = self._commands(batch)
        while True:
            started = time.perf_counter()
            try:
                results = self._batches.send(commands)
            except TRANSIENT_ERRORS as exc:
                REDIS_ERRORS.labels("write").inc()
                time.sleep(self._backoff.failed(exc))
                continue
            rejected = [(key, result) for key, result in zip(what, results, strict=True) if isinstance(result, Exception)]
            retry = next((result for _, result in rejected if _is_transient(result)), None)
            if retry is not None:  # Redis is loading, out of memory, failing over: the whole batch again, later
                REDIS_ERRORS.labels("write").inc()
                time.sleep(self._backoff.failed(retry))
                continue
            SINK_WRITE_SECONDS.observe(time.perf_counter() - started)
            self._backoff.succeeded()
            if rejected:
                self._dead_letter_rejected(rejected)
            return

    def _dead_letter_rejected(self, rejected: list[tuple[str, Exception]]) -> None:
        """Dead letters for the commands Redis refused for good (the rest of their batch is written)."""
        REDIS_ERRORS.labels("write").inc(len(rejected))
        letters = [stage_failure("sink", error, "", "", f"write to {key}".encode("utf-8", "replace"), reason="rejected")
                   for key, error in rejected if key != self._keys.dead_letter()]
        if not letters:  # only the dead-letter stream itself refused: nothing left to record it in
            log.error("Redis refused a write to the dead-letter stream %s: %s", self._keys.dead_letter(), rejected[0][1])
            return
        try:
            self._batches.send([self._dead_letter_command(letter) for letter in letters])
        except TRANSIENT_ERRORS as exc:  # the next batch's writes will meet the outage and wait for it
            log.warning("could not write %d dead letters of rejected writes: %s", len(letters), exc)

    @override
    def close(self) -> None:
        self._client.close()


class RedisSink(DynamicSink[Write]):
    """Writes candidate lists, neighbour lists, trending and dead letters to Redis."""

    def __init__(self, redis_url: str, options: SinkOptions):
        self.redis_url = redis_url
        self.options = options

    @override
    def build(self, step_id: str, worker_index: int, worker_count: int) -> _RedisSinkPartition:
        client = connect(self.redis_url)
        return _RedisSinkPartition(client, self.options)

