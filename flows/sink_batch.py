"""One sink batch: the writes coalesced per key, their blobs encoded once, the commands that write them.

The per-write loops of :mod:`flows.redis_sink` (a type test and a dict update per write, ~30,000 writes per
10,000 events; a blob per list, a command tuple per key), compiled with the messages they read
(``online.compiled.COMPILED_MODULES``); the sink partition, its retries and metrics stay in
:mod:`flows.redis_sink`.

>>> from online.contract import RedisKeys
>>> from flows.writes import TrendingWrite, UserListWrite
>>> keys = RedisKeys("doc", 1)
>>> batch = coalesce([TrendingWrite("i1", "shoes", 2.0), UserListWrite("u1", [("i1", 1.0)], 1.7e9, 5, "s", []),
...                   TrendingWrite("i1", "shoes", 3.0)], keys)
>>> sorted(batch.trending[keys.trending("shoes")].items()), list(batch.users)
([('i1', 3.0)], ['u1'])
>>> encode(batch, keys, 3); commands, what = batch_commands(batch, keys, 60, 60, 10, 100)
>>> [c[0] for c in commands], what[0] == keys.user_recs("u1")
(['SET', 'SET', 'ZADD', 'ZREMRANGEBYRANK', 'ZADD', 'ZREMRANGEBYRANK'], True)
"""

from __future__ import annotations

from typing import Any

import orjson

from flows.dead_letters import stage_failure
from flows.writes import (
    AttributionWrite,
    DeadLetter,
    ItemSimilarWrite,
    PrequentialScore,
    RankerWrite,
    TrendingWrite,
    UserErasedWrite,
    UserListWrite,
)
from online.contract import RedisKeys

__all__ = ["SinkBatch", "batch_commands", "coalesce", "dead_letter_command", "encode"]

_COUNTED: dict[str, tuple[str, ...]] = {"impression": ("impressions",), "click": ("clicks",),
                                         "view": ("clicks",), "add_to_cart": ("carts",),
                                         "purchase": ("conversions", "revenue")}
"""What each kind of attribution adds to an item's and a variant's counters."""


class SinkBatch:
    """One ``write_batch``'s writes, the last per key kept."""

    def __init__(self) -> None:
        self.users: dict[str, UserListWrite] = {}
        self.similar: dict[str, ItemSimilarWrite] = {}
        self.trending: dict[str, dict[str, float]] = {}
        self.rankers: dict[int, RankerWrite] = {}
        self.contexts: dict[int, dict[str, list[tuple[str, float]]]] = {}
        """Ranker shard -> context segment -> its popular items, from every ranker write of the batch."""
        self.dead: list[DeadLetter] = []
        self.erased: set[str] = set()
        """Users whose keys are deleted (an erase after their last list write of the batch)."""
        self.blobs: dict[str, bytes] = {}
        """Key -> encoded list or profile, made once per batch (a retry after an outage sends the same bytes)."""
        self.counters: dict[str, dict[str, float]] = {}
        """Key -> field -> increment: attribution's per-item and per-variant counters, summed over the batch."""
        self.variant_users: dict[str, set[str]] = {}
        """A variant's users HyperLogLog key -> the users served by it in this batch."""
        self.attributed: list[AttributionWrite] = []
        self.ranks: list[int | None] = []
        """The batch's prequential scores (counted once per batch, :func:`~flows.metrics.observe_scores`)."""

    def __bool__(self) -> bool:
        return bool(self.users or self.similar or self.trending or self.rankers or self.dead or self.erased
                    or self.counters)


def coalesce(items: list[Any], keys: RedisKeys) -> SinkBatch:
    """The writes of ``items``, later ones to a key replacing earlier ones; prequential scores are kept for counting."""
    batch = SinkBatch()
    trending = batch.trending
    overall = keys.trending()
    by_category: dict[str, str] = {}
    for w in items:
        if isinstance(w, TrendingWrite):
            members = trending.get(overall)
            if members is None:
                members = trending[overall] = {}
            members[w.item_id] = w.log_score
            categories = (w.category, *w.also) if w.category else w.also
            for category in categories:  # its category, the catalog's other paths and their ancestors
                key = by_category.get(category)
                if key is None:
                    key = by_category[category] = keys.trending(category)
                members = trending.get(key)
                if members is None:
                    members = trending[key] = {}
                members[w.item_id] = w.log_score
        elif isinstance(w, UserListWrite):
            batch.users[w.user_id] = w
            batch.erased.discard(w.user_id)  # a list of the user's new life, after an erase
        elif isinstance(w, PrequentialScore):
            batch.ranks.append(w.rank)
        elif isinstance(w, ItemSimilarWrite):
            batch.similar[w.item_id] = w
        elif isinstance(w, UserErasedWrite):
            batch.users.pop(w.user_id, None)
            batch.erased.add(w.user_id)
        elif isinstance(w, RankerWrite):
            batch.rankers[w.shard] = w
            if w.contexts:
                batch.contexts.setdefault(w.shard, {}).update(w.contexts)  # a later write's tops replace older ones
        elif isinstance(w, AttributionWrite):
            _count(batch, w, keys)
        else:
            batch.dead.append(w)
    return batch


def _add(stats: dict[str, float], fields: tuple[str, ...], value: float, times: float) -> None:
    for name in fields:
        stats[name] = stats.get(name, 0.0) + (value if name == "revenue" else 1.0) * times


def _count(batch: SinkBatch, w: AttributionWrite, keys: RedisKeys) -> None:
    """Add an impression record or an attributed event to the batch's counters."""
    batch.attributed.append(w)
    counters = batch.counters
    if w.kind == "prequential":  # a served list labelled by the user's next event: the variant's live HR@10
        if w.variant:
            stats = counters.setdefault(keys.variant_stats(w.experiment, w.variant), {})
            stats["scored_lists"] = stats.get("scored_lists", 0.0) + 1.0
            stats["hits_at_10"] = stats.get("hits_at_10", 0.0) + (1.0 if w.status == "hit" else 0.0)
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
        _add(counters.setdefault(keys.item_stats(item), {}), fields, w.value, 1.0)
    if variant is not None:
        stats = counters.setdefault(variant, {})
        _add(stats, fields, w.value, float(len(w.items)))
        if w.position and w.kind != "impression":  # where in the lists the variant's clicks, carts, sales were
            at = f"{w.kind}_at_{w.position}"
            stats[at] = stats.get(at, 0.0) + 1.0
        if w.kind == "purchase":
            stats["revenue_sq"] = stats.get("revenue_sq", 0.0) + w.value * w.value
        if w.kind == "impression":
            batch.variant_users.setdefault(keys.variant_users(w.experiment, w.variant), set()).add(w.user_id)


def encode(batch: SinkBatch, keys: RedisKeys, version: int) -> None:
    """Encode the blobs of ``batch`` once (kept across retries); a write that cannot be encoded is dead-lettered."""
    blobs = batch.blobs
    failed: list[str] = []
    for uid, u in batch.users.items():
        try:
            blobs[keys.user_recs(uid)] = u.recs_blob(version)
            blobs[keys.user_profile(uid)] = u.profile_blob(version)
        except Exception as exc:
            failed.append(uid)
            batch.dead.append(stage_failure("sink", exc, "", "", f"list of user {uid}".encode("utf-8", "replace"),
                                            reason="encoding"))
    for uid in failed:
        del batch.users[uid]
    failed = []
    for iid, item in batch.similar.items():
        try:
            blobs[keys.item_similar(iid)] = item.blob(version)
        except Exception as exc:
            failed.append(iid)
            batch.dead.append(stage_failure("sink", exc, "", "", f"similar list of item {iid}".encode("utf-8", "replace"),
                                            reason="encoding"))
    for iid in failed:
        del batch.similar[iid]


def dead_letter_command(keys: RedisKeys, maxlen: int, d: DeadLetter) -> tuple[Any, ...]:
    """The ``XADD`` of dead letter ``d`` to the dead-letter stream (trimmed to about ``maxlen``)."""
    return ("XADD", keys.dead_letter(), "MAXLEN", "~", maxlen, "*",
            *[x for name, value in d.fields().items() for x in (name, value)])


def batch_commands(batch: SinkBatch, keys: RedisKeys, user_ttl: int, item_ttl: int, trending_size: int,
                   dead_letter_maxlen: int) -> tuple[list[tuple[Any, ...]], list[str]]:
    """Every command of ``batch`` (encoded), in order, and what each one writes (for rejections)."""
    commands: list[tuple[Any, ...]] = []
    what: list[str] = []
    blobs = batch.blobs
    for uid in batch.users:
        recs, profile = keys.user_recs(uid), keys.user_profile(uid)
        commands.append(("SET", recs, blobs[recs], "EX", user_ttl))
        commands.append(("SET", profile, blobs[profile], "EX", user_ttl))
        what.append(recs)
        what.append(profile)
    for uid in batch.erased:
        commands.append(("DEL", keys.user_recs(uid), keys.user_profile(uid)))
        what.append(keys.user_recs(uid))
    for iid in batch.similar:
        similar = keys.item_similar(iid)
        commands.append(("SET", similar, blobs[similar], "EX", item_ttl))
        what.append(similar)
    for key, members in batch.trending.items():
        commands.append(("ZADD", key, *[x for member, score in members.items() for x in (score, member)]))
        commands.append(("ZREMRANGEBYRANK", key, 0, -(trending_size + 1)))
        what.append(key)
        what.append(key)
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
        commands.append(dead_letter_command(keys, dead_letter_maxlen, d))
        what.append(keys.dead_letter())
    return commands, what
