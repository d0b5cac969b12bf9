"""Connecting to Redis the same way everywhere in the flow side.

Examples
--------
>>> connect("redis://127.0.0.1:1/0").connection_pool.connection_kwargs["port"]
1
"""

from __future__ import annotations

import redis

__all__ = ["connect"]


def connect(url: str) -> redis.Redis:
    """A client for ``url`` with bounded timeouts so a dead Redis is noticed, not waited on."""
    if not url:
        raise ValueError("REDIS_URL is empty: start an embedded Redis first (livereco run does)")
    return redis.Redis.from_url(url, socket_connect_timeout=2.0, socket_timeout=10.0, health_check_interval=30)
