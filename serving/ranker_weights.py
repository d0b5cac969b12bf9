"""The flow's ranker weights, exploration order and context popularity, as the server applies them: read from Redis, cached for a second.

The flow's ranker replicas publish their weights and the exploration slot's
candidates to one hash (field ``shard<i>``, see
:class:`~flows.redis_sink.RankerWrite`); a user's list is blended with the
weights, and its exploration slot filled from the order, of the replica that
learns from that user's shard. One ``HGETALL`` per second per server process
keeps them fresh without a read per request, made by a background task
(:meth:`RankerWeights.run`, started with the server), so no request waits
for it; a request reads them itself only while that copy is :attr:`~RankerWeights.behind`. With context features on
(``LIVERECO_CONTEXT_ITEMS``), each replica's context segments' popular items
(hash ``context:<shard>``, one field per segment, see
:class:`online.context_popularity.ContextPopularity`) are read with them, one
``HGETALL`` per shard.

Examples
--------
>>> cache = RankerWeights(shards=2)
>>> cache.update({b"shard1": b'{"weights": {"trending": 0.5}, "pairs": 10, "explore": [["n1", "shoes"], ["n2", null]]}',
...               b"shard0": b"not json"})
>>> cache.for_user("alice") == ({"trending": 0.5} if stable_hash("alice") % 2 == 1 else {})
True
>>> cache.explore_for("bob" if stable_hash("bob") % 2 == 1 else "alice"), cache.explore_for("alice", "shoes") in ([], ["n1"])
(['n1', 'n2'], True)
>>> cache.update_context(0, {b"device=phone": b'[["a", 1.0], ["b", 0.5]]', b"hour=9": b"[1]"})
>>> cache.context_for("alice" if stable_hash("alice") % 2 == 0 else "bob", "phone", 9)   # the malformed field is skipped
({'a': 1.0, 'b': 0.5}, {})
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

import orjson

from online.context_popularity import device_segment, hour_segment
from online.contract import RedisKeys, stable_hash
from serving.redis_connect import AsyncRedisClient
from serving.refresh_loop import refresh_forever

__all__ = ["RankerWeights"]

log = logging.getLogger(__name__)
_MIN_PAUSE_S = 0.05
"""The background refresh's shortest pause (``max_age_s`` 0 would otherwise spin)."""


class RankerWeights:
    """Per-shard blend weights, refreshed from Redis at most every ``max_age_s``."""

    def __init__(self, shards: int, max_age_s: float = 1.0, context: bool = False):
        self.shards = shards
        self.max_age_s = max_age_s
        self.context = context
        """Whether to read the replicas' context popularity too (``LIVERECO_CONTEXT_ITEMS`` > 0)."""
        self._weights: dict[int, dict[str, float]] = {}
        self._explore: dict[int, list[tuple[str, str | None]]] = {}
        self._context: dict[int, dict[str, dict[str, float]]] = {}
        self._read_at = float("-inf")

    def update(self, raw: Mapping[bytes | str, bytes | str]) -> None:
        """Replace the weights with a ``HGETALL`` answer; malformed fields are logged and skipped."""
        weights: dict[int, dict[str, float]] = {}
        explore: dict[int, list[tuple[str, str | None]]] = {}
        for name, blob in raw.items():
            try:  # a field is taken whole or not at all
                shard = int((name.decode() if isinstance(name, bytes) else name).removeprefix("shard"))
                published = orjson.loads(blob)
                shard_weights = {str(k): float(v) for k, v in published["weights"].items()}
                shard_explore = [(str(item), None if category is None else str(category))
                                 for item, category in published.get("explore", ())]
            except (ValueError, KeyError, TypeError, AttributeError, orjson.JSONDecodeError):
                log.warning("ranker weights: skipping malformed field %r", name)
                continue
            weights[shard], explore[shard] = shard_weights, shard_explore
        self._weights, self._explore = weights, explore

    async def refresh(self, client: AsyncRedisClient, keys: RedisKeys) -> None:
        """Re-read the weights if the copy is older than ``max_age_s``."""
        now = time.monotonic()
        if now - self._read_at < self.max_age_s:
            return
        self._read_at = now
        self.update(await client.hgetall(keys.ranker()))
        if self.context:
            for shard in range(self.shards):
                self.update_context(shard, await client.hgetall(keys.context(shard)))

    @property
    def behind(self) -> bool:
        """Whether a request must read the weights itself: the copy is more than twice ``max_age_s`` old (never
        read, or :meth:`run` not running or failing; ``max_age_s`` 0: every request reads them).

        >>> RankerWeights(shards=1).behind   # never read
        True
        """
        return time.monotonic() - self._read_at >= 2.0 * self.max_age_s

    async def run(self, client: AsyncRedisClient, keys: RedisKeys) -> None:
        """Re-read the weights every ``max_age_s`` until cancelled (started with the server), so no request waits
        for the read; a Redis outage is logged once and retried (requests read them themselves once the copy is
        :attr:`behind`)."""
        await refresh_forever(lambda: self.refresh(client, keys),
                              lambda: max(self.max_age_s - (time.monotonic() - self._read_at), _MIN_PAUSE_S),
                              "ranker weights")

    def update_context(self, shard: int, raw: Mapping[bytes | str, bytes | str]) -> None:
        """Replace one replica's context popularity with a ``HGETALL`` answer; malformed fields are logged and skipped."""
        segments: dict[str, dict[str, float]] = {}
        for name, blob in raw.items():
            segment = name.decode() if isinstance(name, bytes) else name
            try:
                segments[segment] = {str(item): float(share) for item, share in orjson.loads(blob)}
            except (ValueError, TypeError, orjson.JSONDecodeError):
                log.warning("context popularity: skipping malformed field %r of shard %d", segment, shard)
        self._context[shard] = segments

    def context_for(self, user_id: str, device: str | None, hour: int | None) -> tuple[dict[str, float], dict[str, float]]:
        """The popular items of the request's device and hour segments, from ``user_id``'s replica (``{}``: unknown)."""
        segments = self._context.get(stable_hash(user_id) % self.shards, {})
        return (segments.get(device_segment(device), {}) if device else {},
                segments.get(hour_segment(hour), {}) if hour is not None else {})

    def for_user(self, user_id: str) -> dict[str, float]:
        return self._weights.get(stable_hash(user_id) % self.shards, {})

    def explore_for(self, user_id: str, category: str | None = None) -> list[str]:
        """The exploration slot's candidates for ``user_id``, best first; with ``category``, only that category's."""
        order = self._explore.get(stable_hash(user_id) % self.shards, [])
        return [item for item, kind in order if category is None or kind == category]
