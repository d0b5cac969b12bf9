"""The flow's ranker weights, as the server applies them: read from Redis, cached for a second.

The flow's ranker replicas publish their weights to one hash (field
``shard<i>``, see :class:`~flows.redis_sink.RankerWrite`); a user's list is
blended with the weights of the replica that learns from that user's shard.
One ``HGETALL`` per second per server process keeps them fresh without a
read per request.

Examples
--------
>>> cache = RankerWeights(shards=2)
>>> cache.update({b"shard1": b'{"weights": {"trending": 0.5}, "pairs": 10}', b"shard0": b"not json"})
>>> cache.for_user("alice") == ({"trending": 0.5} if stable_hash("alice") % 2 == 1 else {})
True
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
        self._read_at = float("-inf")

    def update(self, raw: Mapping[bytes | str, bytes | str]) -> None:
        """Replace the weights with a ``HGETALL`` answer; malformed fields are logged and skipped."""
        weights: dict[int, dict[str, float]] = {}
        for name, blob in raw.items():
            try:
                shard = int((name.decode() if isinstance(name, bytes) else name).removeprefix("shard"))
                weights[shard] = {str(k): float(v) for k, v in orjson.loads(blob)["weights"].items()}
            except (ValueError, KeyError, TypeError, AttributeError, orjson.JSONDecodeError):
                log.warning("ranker weights: skipping malformed field %r", name)
        self._weights = weights

    async def refresh(self, client: AsyncRedisClient, keys: RedisKeys) -> None:
        """Re-read the weights if the copy is older than ``max_age_s``."""
        now = time.monotonic()
        if now - self._read_at < self.max_age_s:
            return
        self._read_at = now
        self.update(await client.hgetall(keys.ranker()))

    def for_user(self, user_id: str) -> dict[str, float]:
        return self._weights.get(stable_hash(user_id) % self.shards, {})
