"""Connecting to Redis the same way everywhere in the flow side, single server or Redis Cluster.

``REDIS_URL`` selects the mode by its scheme alone:

* ``redis://``, ``rediss://``, ``unix://`` — one Redis server (:class:`redis.Redis`);
* ``redis+cluster://[user[:password]@]host:port[,host:port...][/]`` — a Redis
  Cluster (:class:`redis.RedisCluster`), with ``rediss+cluster://`` for TLS.
  The hosts are seed nodes: any one that answers is enough, the client learns
  the rest of the cluster from it. A cluster has only database 0.

Examples
--------
>>> connect("redis://127.0.0.1:1/0").connection_pool.connection_kwargs["port"]
1
>>> parse_cluster_url("redis+cluster://app:s%40cret@10.0.0.1:7000,10.0.0.2,[::1]:7002/")
ClusterURL(nodes=(('10.0.0.1', 7000), ('10.0.0.2', 6379), ('::1', 7002)), username='app', password='s@cret', ssl=False)
>>> parse_cluster_url("redis+cluster:///")
Traceback (most recent call last):
...
ValueError: REDIS_URL 'redis+cluster:///': names no cluster node; expected redis+cluster://host:port[,host:port...]/
>>> is_cluster_url("rediss+cluster://h:7000"), is_cluster_url("redis://h:6379/0")
(True, False)
"""

from __future__ import annotations

import logging
from urllib.parse import unquote

import redis
from redis.cluster import ClusterNode
from redis.exceptions import ClusterDownError, RedisClusterException, TryAgainError

from online.contract import backoff
from online.contract.redis_url import CLUSTER_SCHEMES, ClusterURL, is_cluster_url, parse_cluster_url, redact

__all__ = [
    "CLUSTER_SCHEMES",
    "REDIS_EXCEPTIONS",
    "TRANSIENT_ERRORS",
    "Backoff",
    "ClusterURL",
    "RedisClient",
    "SecretFilter",
    "connect",
    "is_cluster_url",
    "parse_cluster_url",
    "redact",
    "scrub",
    "url_secrets",
]

RedisClient = redis.Redis | redis.RedisCluster
"""What :func:`connect` returns: both have the commands and ``pipeline(transaction=False)`` livereco uses."""

REDIS_EXCEPTIONS: tuple[type[Exception], ...] = (redis.RedisError, RedisClusterException)
"""Everything a Redis outage can raise. The cluster client raises ``RedisClusterException``
(not a ``RedisError``) when no node answers or a slot has no owner."""

TRANSIENT_ERRORS: tuple[type[Exception], ...] = (
    redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError,
    ClusterDownError, TryAgainError, RedisClusterException,
)
"""Errors worth retrying the same writes for: the server (or a cluster master) is away, loading,
or the cluster is re-forming. Not ``ResponseError`` in general: a rejected command stays rejected."""

"""What ``pipeline()`` returns for either client."""


class Backoff(backoff.Backoff):
    """:class:`online.contract.backoff.Backoff` through one Redis outage, its two log lines naming Redis.

    The first failure asks for a wait of ``first_s``, each further one for twice
    the last, at most ``max_s``. A success ends the outage: it is logged with its
    length and failed attempts (none of the retries in between are), and the next
    failure starts again from ``first_s``.

    >>> backoff = Backoff("doc", logging.getLogger("doc.backoff"))
    >>> [backoff.failed(OSError("down")) for _ in range(8)]
    [0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0]
    >>> backoff.succeeded()
    >>> backoff.failing, backoff.failed(OSError("down again"))
    (False, 0.05)
    """

    def __init__(self, what: str, log: logging.Logger, *, first_s: float = 0.05, max_s: float = 2.0):
        super().__init__(what, log, first_s=first_s, max_s=max_s, began=_REDIS_FAILED, ended=_REDIS_ANSWERS)


_REDIS_FAILED = ("%(what)s: Redis failed (%(problem)s); retrying from %(first_s).2f s apart, doubling up to %(max_s).1f s,"
                 " until it answers")
_REDIS_ANSWERS = "%(what)s: Redis answers again after %(outage_s).1f s (%(failures)d failed attempts)"


def url_secrets(url: str) -> tuple[str, ...]:
    """The password in ``url`` as written and percent-decoded, longest first (empty: none).

    >>> url_secrets("redis://app:s%40cret@h:6379/0"), url_secrets("redis://h:6379/0")
    (('s%40cret', 's@cret'), ())
    """
    _, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return ()
    _, colon, secret = rest.rsplit("@", 1)[0].partition(":")
    if not colon or not secret:
        return ()
    return tuple(sorted({secret, unquote(secret)}, key=len, reverse=True))


def scrub(text: str, secrets: tuple[str, ...]) -> str:
    """``text`` with every occurrence of each secret replaced by ``***``.

    >>> scrub("AUTH failed for redis://app:hunter2@h/0", ("hunter2",))
    'AUTH failed for redis://app:***@h/0'
    """
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


class SecretFilter(logging.Filter):
    """A handler filter that takes ``secrets`` out of every record it passes: message, arguments and traceback.

    Installed on the root logger's handlers by the CLI, it covers livereco's
    logs and those of every library that logs through ``logging`` (redis-py,
    Bytewax), whatever they put in an exception's message.

    >>> import io
    >>> out = io.StringIO(); handler = logging.StreamHandler(out)
    >>> handler.addFilter(SecretFilter(("hunter2",)))
    >>> doc = logging.getLogger("doc.secret"); doc.addHandler(handler); doc.propagate = False
    >>> try:
    ...     raise ConnectionError("redis://app:hunter2@h/0 refused")
    ... except ConnectionError as exc:
    ...     doc.error("cannot reach %s: %s", "redis://app:hunter2@h/0", exc, exc_info=True)
    >>> text = out.getvalue(); "hunter2" in text, text.splitlines()[0], text.splitlines()[-1]
    (False, 'cannot reach redis://app:***@h/0: redis://app:***@h/0 refused', 'ConnectionError: redis://app:***@h/0 refused')
    """

    def __init__(self, secrets: tuple[str, ...]):
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        record.msg, record.args = scrub(record.getMessage(), self.secrets), None
        if record.exc_info:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = scrub(record.exc_text, self.secrets)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info, self.secrets)
        return True


def connect(url: str) -> RedisClient:
    """A client for ``url`` with bounded timeouts so a dead Redis is noticed, not waited on.

    A cluster client asks a seed node for the slot map when it is made, so an
    unreachable cluster raises :class:`redis.ConnectionError` here, naming the URL.
    """
    if not url:
        raise ValueError("REDIS_URL is empty: start an embedded Redis first (livereco run does)")
    if not is_cluster_url(url):
        return redis.Redis.from_url(url, socket_connect_timeout=2.0, socket_timeout=10.0, health_check_interval=30)
    parsed = parse_cluster_url(url)
    try:
        return redis.RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in parsed.nodes],
            username=parsed.username, password=parsed.password, ssl=parsed.ssl,
            socket_connect_timeout=2.0, socket_timeout=10.0, health_check_interval=30,
        )
    except RedisClusterException as exc:
        raise redis.ConnectionError(f"Redis Cluster at {redact(url)}: {exc}") from exc
