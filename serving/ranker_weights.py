"""The flow's ranker weights and exploration order, as the server applies them: read from Redis, cached for a second.

The flow's ranker replicas publish their weights and the exploration slot's
candidates to one hash (field ``shard<i>``, see
:class:`~flows.redis_sink.RankerWrite`); a user's list is blended with the
weights, and its exploration slot filled from the order, of the replica that
learns from that user's shard. One ``HGETALL`` per second per server process
keeps them fresh without a read per request.

Examples
--------
>>> cache = RankerWeights(shards=2)
>>> cache.update({b"shard1": b'{"weights": {"trending": 0.5}, "pairs": 10, "explore": [["n1", "shoes"], ["n2", null]]}',
...               b"shard0": b"not json"})
>>> cache.for_user("alice") == ({"trending": 0.5} if stable_hash("alice") % 2 == 1 else {})
True
>>> cache.explore_for("bob" if stable_hash("bob") % 2 == 1 else "alice"), cache.explore_for("alice", "shoes") in ([], ["n1"])
(['n1', 'n2'], True)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

import orjson

from online.contract import RedisKeys, stable_hash
from serving.redis_connect import AsyncRedisClient

__all__ = ["RankerWeights"]

log = logging.getLogger(__name__)


class RankerWeights:
    """Per-shard blend weights, refreshed from Redis at most every ``max_age_s``."""

    def __init__(self, shards: int, max_age_s: float = 1.0):
        self.shards = shards
        self.max_age_s = max_age_s
        self._weights: dict[int, dict[str, float]] = {}
        self._explore: dict[int, list[tuple[str, str | None]]] = {}
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

    def for_user(self, user_id: str) -> dict[str, float]:
        return self._weights.get(stable_hash(user_id) % self.shards, {})

    def explore_for(self, user_id: str, category: str | None = None) -> list[str]:
        """The exploration slot's candidates for ``user_id``, best first; with ``category``, only that category's."""
        order = self._explore.get(stable_hash(user_id) % self.shards, [])
        return [item for item, kind in order if category is None or kind == category]
