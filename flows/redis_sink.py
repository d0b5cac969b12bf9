"""The Redis sink: every write the dataflow makes, pipelined per batch.

Writes are idempotent overwrites (``SET``, ``ZADD`` of an absolute score,
``XADD`` to the dead-letter stream), so a replay after recovery rewrites the
same values. Within a batch, later writes to the same key replace earlier
ones before anything is sent, so a burst of events for one user costs one
``SET``. A Redis outage blocks the batch and retries with backoff: nothing is
dropped, and the stall shows up in the source lag.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import orjson
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from typing_extensions import override

from flows.metrics import FRESHNESS, REDIS_ERRORS, SINK_WRITE_SECONDS, SINK_WRITES, observe_score
from flows.redis_client import TRANSIENT_ERRORS, Pipeline, RedisClient, connect
from online.contract import CandidateList, RedisKeys, encode_candidates

__all__ = ["DeadLetter", "ItemSimilarWrite", "PrequentialScore", "RankerWrite", "RedisSink", "SinkOptions", "TrendingWrite",
           "UserListWrite", "Write"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class UserListWrite:
    """A user's fresh candidate list (and profile), produced by an event accepted at ``accepted_ms``.

    Encoded by the sink, after writes to the same key in a batch are coalesced.
    """

    user_id: str
    ranked: list[tuple[str, float]]
    event_ts: float
    accepted_ms: int
    session_id: str
    recent: list[tuple[str, float, float]]
    repeats: list[int] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)

    def recs_blob(self) -> bytes:
        return encode_candidates(CandidateList([i for i, _ in self.ranked], [s for _, s in self.ranked],
                                               event_ts=self.event_ts, accepted_ms=self.accepted_ms,
                                               repeats=self.repeats, exclude=self.exclude))

    def profile_blob(self) -> bytes:
        return encode_profile(self.session_id, self.recent)


@dataclass(frozen=True, slots=True)
class ItemSimilarWrite:
    item_id: str
    neighbours: list[tuple[str, float]]
    event_ts: float

    def blob(self) -> bytes:
        return encode_candidates(CandidateList([i for i, _ in self.neighbours], [s for _, s in self.neighbours],
                                               event_ts=self.event_ts))


@dataclass(frozen=True, slots=True)
class TrendingWrite:
    """An item's forward-decayed popularity (log score), globally and in its category."""

    item_id: str
    category: str | None
    log_score: float
    ts: float = 0.0
    """Event time of the newest event counted in ``log_score``."""


@dataclass(frozen=True, slots=True)
class RankerWrite:
    """One ranker replica's current blend weights, for the server to apply at request time."""

    shard: int
    weights: dict[str, float]
    pairs: int

    def blob(self) -> bytes:
        return orjson.dumps({"weights": self.weights, "pairs": self.pairs})


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A stream entry that failed validation, kept with its reason and raw bytes."""

    stream: str
    entry_id: str
    field: str
    reason: str
    raw: bytes


@dataclass(frozen=True, slots=True)
class PrequentialScore:
    """Where the touched item stood in the list the user had just before the event (``None``: absent)."""

    entry_id: str
    user_id: str
    item_id: str
    rank: int | None
    listed: tuple[str, ...]


Write = UserListWrite | ItemSimilarWrite | TrendingWrite | DeadLetter | PrequentialScore | RankerWrite


@dataclass(frozen=True, slots=True)
class SinkOptions:
    """Where and how long the sink writes."""

    keys: RedisKeys
    user_ttl_s: int
    item_ttl_s: int
    trending_size: int
    dead_letter_maxlen: int


class _RedisSinkPartition(StatelessSinkPartition[Write]):
    def __init__(self, client: RedisClient, options: SinkOptions):
        self._client = client
        self._keys = options.keys
        self._user_ttl_s = options.user_ttl_s
        self._item_ttl_s = options.item_ttl_s
        self._trending_size = options.trending_size
        self._dead_letter_maxlen = options.dead_letter_maxlen

    @override
    def write_batch(self, items: list[Write]) -> None:
        users: dict[str, UserListWrite] = {}
        similar: dict[str, ItemSimilarWrite] = {}
        trending: dict[str, dict[str, float]] = {}
        dead: list[DeadLetter] = []
        rankers: dict[int, RankerWrite] = {}
        for w in items:
            if isinstance(w, UserListWrite):
                users[w.user_id] = w
            elif isinstance(w, ItemSimilarWrite):
                similar[w.item_id] = w
            elif isinstance(w, PrequentialScore):
                observe_score(w.rank)
            elif isinstance(w, RankerWrite):
                rankers[w.shard] = w
            elif isinstance(w, TrendingWrite):
                trending.setdefault(self._keys.trending(), {})[w.item_id] = w.log_score
                if w.category:
                    trending.setdefault(self._keys.trending(w.category), {})[w.item_id] = w.log_score
            else:
                dead.append(w)
        keys = self._keys
        pipe = self._client.pipeline(transaction=False)
        for uid, u in users.items():
            pipe.set(keys.user_recs(uid), u.recs_blob(), ex=self._user_ttl_s)
            pipe.set(keys.user_profile(uid), u.profile_blob(), ex=self._user_ttl_s)
        for iid, item in similar.items():
            pipe.set(keys.item_similar(iid), item.blob(), ex=self._item_ttl_s)
        for key, members in trending.items():
            pipe.zadd(key, members)
            pipe.zremrangebyrank(key, 0, -(self._trending_size + 1))
        if rankers:
            pipe.hset(keys.ranker(), mapping={f"shard{r.shard}": r.blob() for r in rankers.values()})
        for d in dead:
            pipe.xadd(
                keys.dead_letter(),
                {"stream": d.stream, "id": d.entry_id, "field": d.field, "reason": d.reason, "raw": d.raw},
                maxlen=self._dead_letter_maxlen,
                approximate=True,
            )
        if not len(pipe):
            return
        self._execute(pipe)
        written_ms = time.time() * 1000.0
        for u in users.values():
            FRESHNESS.observe(max(0.0, written_ms - u.accepted_ms) / 1000.0)
        SINK_WRITES.labels("user_list").inc(len(users))
        SINK_WRITES.labels("item_similar").inc(len(similar))
        SINK_WRITES.labels("trending").inc(sum(len(m) for m in trending.values()))
        SINK_WRITES.labels("dead_letter").inc(len(dead))

    def _execute(self, pipe: Pipeline) -> None:
        backoff_s = 0.05
        while True:
            started = time.perf_counter()
            try:
                pipe.execute()
                SINK_WRITE_SECONDS.observe(time.perf_counter() - started)
                return
            except TRANSIENT_ERRORS as exc:
                REDIS_ERRORS.labels("write").inc()
                log.warning("writing %d commands to Redis failed (%s); retrying in %.2f s", len(pipe), exc, backoff_s)
                time.sleep(backoff_s)
                backoff_s = min(2.0, backoff_s * 2)

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
        return _RedisSinkPartition(connect(self.redis_url), self.options)


def encode_profile(session_id: str, recent: list[tuple[str, float, float]]) -> bytes:
    """The profile blob: the session and the recent items, newest first."""
    return orjson.dumps({"session_id": session_id, "recent": [[i, round(w, 4), ts] for i, w, ts in recent]})
