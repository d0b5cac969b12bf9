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

The per-write work (coalescing, encoding each blob once, building the commands) is compiled, in
:mod:`flows.sink_batch`. A batch's commands go in one round trip (:mod:`flows.redis_batch`). A Redis
outage blocks the batch: it is sent again, whole, 50 ms after
the first failure and twice as long after each further one, up to 2 s, until
Redis takes it (:class:`~flows.redis_client.Backoff`: one warning per outage,
one line when it ends). Nothing is dropped; the worker stalls, so epochs do not
complete and the stall shows up in the source lag.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from bytewax.outputs import DynamicSink, StatelessSinkPartition
from redis.exceptions import ResponseError
from typing_extensions import override

from flows.dead_letters import stage_failure
from flows.metrics import (
    ATTRIBUTED,
    REDIS_ERRORS,
    SERVED_SCORED,
    SINK_WRITE_SECONDS,
    SINK_WRITES,
    observe_freshness,
    observe_scores,
)
from flows.redis_batch import Command, CommandBatches
from flows.redis_client import TRANSIENT_ERRORS, Backoff, RedisClient, connect
from flows.sink_batch import SinkBatch, batch_commands, coalesce, dead_letter_command, encode
from flows.stage_time import timed
from flows.writes import (
    BLOB_VERSION,
    AttributionWrite,
    DeadLetter,
    ItemSimilarWrite,
    PrequentialScore,
    RankerWrite,
    TrendingWrite,
    UserListWrite,
    Write,
)
from online.attribution import ATTRIBUTED_KINDS, SOURCES, STATUSES
from online.contract import RedisKeys
from online.experiments import MAX_VARIANTS

__all__ = ["BLOB_VERSION", "DeadLetter", "ItemSimilarWrite", "PrequentialScore", "RankerWrite", "RedisSink", "SinkOptions",
           "TrendingWrite", "UserListWrite", "Write"]

log = logging.getLogger(__name__)



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
        timed("sink", len(items), self._write_batch, items)

    def _write_batch(self, items: list[Write]) -> None:
        batch = self._coalesce(items)
        observe_scores(batch.ranks)
        if not batch:
            return
        self._write(batch)
        written_ms = time.time() * 1000.0
        observe_freshness([max(0.0, written_ms - u.accepted_ms) / 1000.0 for u in batch.users.values()])
        SINK_WRITES.labels("user_list").inc(len(batch.users))
        SINK_WRITES.labels("item_similar").inc(len(batch.similar))
        SINK_WRITES.labels("trending").inc(sum(len(m) for m in batch.trending.values()))
        SINK_WRITES.labels("dead_letter").inc(len(batch.dead))
        for a in batch.attributed:
            count_attribution(a)

    def _coalesce(self, items: list[Write]) -> SinkBatch:
        """The writes of ``items``, later ones to a key replacing earlier ones (:func:`flows.sink_batch.coalesce`)."""
        return coalesce(items, self._keys)

    def _dead_letter_command(self, d: DeadLetter) -> Command:
        return dead_letter_command(self._keys, self._dead_letter_maxlen, d)

    def _write(self, batch: SinkBatch) -> None:
        """Send ``batch`` until Redis has taken all of it, backing off while Redis fails.

        Every attempt sends the whole batch again (:class:`~flows.redis_batch.CommandBatches`: one round trip,
        a failed connection dropped with the replies it still held). Commands of a failed attempt that
        did run are overwritten with the same values.
        """
        encode(batch, self._keys, self._blob_version)
        commands, what = batch_commands(batch, self._keys, self._user_ttl_s, self._item_ttl_s, self._trending_size,
                                        self._dead_letter_maxlen)
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

