"""The server's Redis client: one server or a Redis Cluster, chosen by the ``REDIS_URL`` scheme.

``redis+cluster://host:port[,host:port...]/`` (``rediss+cluster://`` for TLS)
gives a :class:`redis.asyncio.RedisCluster`; any other URL a
:class:`redis.asyncio.Redis`. Both are lazy: nothing is contacted until the
first command (the server's startup ping). The URL grammar is the flow's
(:mod:`online.contract.redis_url`, which :mod:`flows.redis_client` uses too),
so both sides accept exactly the same URLs; nothing here imports ``flows``.

Examples
--------
>>> type(connect_async("redis://127.0.0.1:1/0")).__name__
'Redis'
>>> client = connect_async("redis+cluster://127.0.0.1:7000,127.0.0.1:7001/")
>>> type(client).__name__, sorted(client.nodes_manager.startup_nodes)
('RedisCluster', ['127.0.0.1:7000', '127.0.0.1:7001'])
>>> connect_async("redis+cluster://")
Traceback (most recent call last):
...
ValueError: REDIS_URL 'redis+cluster://': names no cluster node; expected redis+cluster://host:port[,host:port...]/
"""

from __future__ import annotations

import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode
from redis.exceptions import RedisClusterException

from online.contract.redis_url import is_cluster_url, parse_cluster_url, redact

__all__ = ["REDIS_EXCEPTIONS", "AsyncRedisClient", "connect_async", "ping", "redact"]

REDIS_EXCEPTIONS: tuple[type[Exception], ...] = (redis.RedisError, RedisClusterException)
"""Everything a Redis outage can raise (the cluster client raises ``RedisClusterException``, not a ``RedisError``,
when no node answers or a slot has no owner)."""

AsyncRedisClient = aioredis.Redis | aioredis.RedisCluster
"""Either client: the server uses only commands and non-transactional pipelines both have."""


def connect_async(url: str, socket_connect_timeout: float = 1.0, socket_timeout: float = 2.0) -> AsyncRedisClient:
    """A client for ``url`` with short timeouts, so an outage turns into a 503 quickly."""
    if not url:
        raise ValueError("REDIS_URL is empty: start an embedded Redis first (livereco run does)")
    if not is_cluster_url(url):
        return aioredis.Redis.from_url(url, socket_connect_timeout=socket_connect_timeout,
                                       socket_timeout=socket_timeout)
    parsed = parse_cluster_url(url)
    return aioredis.RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in parsed.nodes],
        username=parsed.username, password=parsed.password, ssl=parsed.ssl,
        socket_connect_timeout=socket_connect_timeout, socket_timeout=socket_timeout,
    )


async def ping(client: AsyncRedisClient) -> None:
    """PING Redis; in a cluster, every master, since each one holds part of the keys.

    (The cluster client's own ``ping()`` asks one node, which would call a
    cluster with a dead master ready.)
    """
    if isinstance(client, aioredis.RedisCluster):
        await client.ping(target_nodes=aioredis.RedisCluster.PRIMARIES)
    else:
        await client.ping()
