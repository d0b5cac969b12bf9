"""The Redis key layout: the only place a key is spelled.

Keys a request reads together share a hash tag, so in Redis Cluster they sit
in one slot: a user's candidate list and profile are tagged ``{u:<user>}``,
an item's neighbour list ``{i:<item>}``. The catalog's keys share ``{catalog}``:
one script writes an item, the version and the change stream atomically, and
servers read them together (the whole catalog sits in one slot of a cluster;
every server holds all of it in memory anyway, :mod:`online.catalog.snapshot`). Each event stream partition carries
its own tag so that partitions spread over the cluster's masters.

Examples
--------
>>> keys = RedisKeys("lr", partitions=4)
>>> keys.user_recs("alice")
'lr:{u:alice}:recs'
>>> keys.item_similar("sku-1")
'lr:{i:sku-1}:similar'
>>> keys.stream_for_user("alice") in keys.streams()
True
>>> keys.streams()
['lr:events:{p0}', 'lr:events:{p1}', 'lr:events:{p2}', 'lr:events:{p3}']
>>> keys.trending(), keys.trending("shoes"), keys.trending_segment("country", "de")
('lr:trending', 'lr:trending:c:shoes', 'lr:trending:s:country=de')
>>> keys.catalog_items(), keys.catalog_changes(), keys.catalog_rules()
('lr:{catalog}:items', 'lr:{catalog}:changes', 'lr:{catalog}:rules')
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

from online.init_pickle import reduce_by_init

__all__ = ["RedisKeys", "stable_hash"]


def stable_hash(text: str) -> int:
    """A hash that is the same in every process and every run (unlike ``hash``).

    >>> stable_hash("alice")
    663665735
    """
    return zlib.crc32(text.encode("utf-8"))


@dataclass(frozen=True, slots=True)
class RedisKeys:
    """Key names under one namespace, with ``partitions`` event streams."""

    namespace: str = "lr"
    partitions: int = 4

    def __post_init__(self) -> None:
        if not self.namespace or any(c in self.namespace for c in "{} \t\n"):
            raise ValueError(f"namespace {self.namespace!r}: must be non-empty, without braces or spaces")
        if not 1 <= self.partitions <= 1024:
            raise ValueError(f"partitions {self.partitions}: must be between 1 and 1024")

    # --- event streams -------------------------------------------------
    def stream(self, partition: int) -> str:
        return f"{self.namespace}:events:{{p{partition}}}"

    def streams(self) -> list[str]:
        return [self.stream(p) for p in range(self.partitions)]

    def partition_of(self, user_id: str) -> int:
        return stable_hash(user_id) % self.partitions

    def stream_for_user(self, user_id: str) -> str:
        return self.stream(self.partition_of(user_id))

    def dead_letter(self) -> str:
        return f"{self.namespace}:deadletter"

    def flow_progress(self) -> str:
        """A hash: stream key -> the flow's :class:`~online.contract.progress.StreamProgress` on it (heartbeat, trim point)."""
        return f"{self.namespace}:flow:progress"

    def meta(self) -> str:
        """A hash recording layout facts (partition count) that must not drift."""
        return f"{self.namespace}:meta"

    # --- per user ----------------------------------------------------
    def user_recs(self, user_id: str) -> str:
        return f"{self.namespace}:{{u:{user_id}}}:recs"

    def user_profile(self, user_id: str) -> str:
        return f"{self.namespace}:{{u:{user_id}}}:profile"

    def user_attributes(self, user_id: str) -> str:
        """A hash: the user's attributes (``country``, ``segment``, ...) from ``PUT /v1/users/{user_id}``, with the user TTL."""
        return f"{self.namespace}:{{u:{user_id}}}:attrs"

    # --- per item ----------------------------------------------------
    def item_similar(self, item_id: str) -> str:
        return f"{self.namespace}:{{i:{item_id}}}:similar"

    # --- global ------------------------------------------------------
    def item_stats(self, item_id: str) -> str:
        """A hash: the item's impressions, clicks, conversions and revenue (attribution; ``GET /v1/items/{id}/stats``)."""
        return f"{self.namespace}:{{i:{item_id}}}:stats"

    def experiments(self) -> str:
        """A hash: experiment name -> its JSON document (:class:`online.experiments.Experiment`)."""
        return f"{self.namespace}:experiments"

    def variant_stats(self, experiment: str, variant: str) -> str:
        """A hash: one variant's impressions, clicks, conversions, revenue (and revenue²) from attribution."""
        return f"{self.namespace}:exp:{experiment}:{variant}"

    def variant_users(self, experiment: str, variant: str) -> str:
        """A HyperLogLog: the users served by one variant (counted, never listed)."""
        return f"{self.namespace}:exp:{experiment}:{variant}:users"

    def ranker(self) -> str:
        """A hash: ranker shard -> its current blend weights (JSON), read by the server."""
        return f"{self.namespace}:ranker"

    def context(self, shard: int) -> str:
        """A hash: context segment (``device=phone``, ``hour=21``) -> its popular items (JSON), one per ranker shard."""
        return f"{self.namespace}:context:{shard}"

    def trending(self, category: str | None = None) -> str:
        if category is None:
            return f"{self.namespace}:trending"
        return f"{self.namespace}:trending:c:{category}"

    def trending_segment(self, attribute: str, value: str) -> str:
        """The trending sorted set of the users whose ``attribute`` is ``value`` (``LIVERECO_SEGMENT_ATTRIBUTES``).

        Read by the server for a user without a list (highest score first). The flow does not compute these
        sets yet: the shop writes them (``ZADD``, e.g. from its own order history by segment), until it does.
        ``lr:trending:s:country=de``.
        """
        return f"{self.namespace}:trending:s:{attribute}={value}"

    # --- catalog (one hash tag: written by one script, read together) ----------------
    def catalog_items(self) -> str:
        """A hash: item id -> the item's JSON (:func:`online.catalog.item.encode_item`), readable with ``HGET``."""
        return f"{self.namespace}:{{catalog}}:items"

    def catalog_version(self) -> str:
        """A counter: the catalog's version, raised by every change."""
        return f"{self.namespace}:{{catalog}}:version"

    def catalog_changes(self) -> str:
        """A stream: one entry per change, entry id ``<version>-0``, fields ``id``, ``item`` (JSON; empty: deleted), ``t`` (ms)."""
        return f"{self.namespace}:{{catalog}}:changes"

    def catalog_rules(self) -> str:
        """A hash: ``version`` (a counter) and ``doc``, the merchandising rules' JSON (:mod:`online.catalog.rules`)."""
        return f"{self.namespace}:{{catalog}}:rules"

    def __reduce__(self) -> tuple[Any, ...]:  # a frozen dataclass compiled by mypyc needs it to unpickle
        return reduce_by_init(self)
