"""``REDIS_URL`` as text: which mode it selects, the parts of a cluster URL, and a copy safe to print.

Pure string code (no Redis client), shared by the flow (:mod:`flows.redis_client`)
and the server (:mod:`serving.redis_connect`), so both accept exactly the same
URLs and neither ever prints a password.

``REDIS_URL`` selects the mode by its scheme alone:

* ``redis://``, ``rediss://``, ``unix://`` — one Redis server;
* ``redis+cluster://[user[:password]@]host:port[,host:port...][/]`` — a Redis
  Cluster, with ``rediss+cluster://`` for TLS. The hosts are seed nodes: any one
  that answers is enough. A cluster has only database 0.

Examples
--------
>>> parse_cluster_url("redis+cluster://app:s%40cret@10.0.0.1:7000,10.0.0.2,[::1]:7002/")
ClusterURL(nodes=(('10.0.0.1', 7000), ('10.0.0.2', 6379), ('::1', 7002)), username='app', password='s@cret', ssl=False)
>>> parse_cluster_url("redis+cluster:///")
Traceback (most recent call last):
...
ValueError: REDIS_URL 'redis+cluster:///': names no cluster node; expected redis+cluster://host:port[,host:port...]/
>>> parse_cluster_url("redis+cluster://u:hunter2@h:notaport/")
Traceback (most recent call last):
...
ValueError: REDIS_URL 'redis+cluster://u:***@h:notaport/': node 'h:notaport': port must be a number from 1 to 65535
>>> is_cluster_url("rediss+cluster://h:7000"), is_cluster_url("redis://h:6379/0")
(True, False)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

__all__ = ["CLUSTER_SCHEMES", "ClusterURL", "is_cluster_url", "parse_cluster_url", "redact", "redact_text"]

CLUSTER_SCHEMES = {"redis+cluster": False, "rediss+cluster": True}
"""URL schemes that mean Redis Cluster, and whether each uses TLS."""

_QUERY_SECRET = re.compile(r"([?&](?:password|pass|passwd|auth)=)[^&#]*", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class ClusterURL:
    """The parts of a ``redis+cluster://`` URL."""

    nodes: tuple[tuple[str, int], ...]
    username: str | None
    password: str | None
    ssl: bool


def is_cluster_url(url: str) -> bool:
    return url.split("://", 1)[0].lower() in CLUSTER_SCHEMES


def redact(url: str) -> str:
    """``url`` with its password (in the user part or a ``password=`` option) replaced, for messages.

    >>> redact("redis+cluster://app:secret@h:7000/")
    'redis+cluster://app:***@h:7000/'
    >>> redact("redis://:p@ss@127.0.0.1:6379/0"), redact("redis://h:1/0?password=x&db=2"), redact("redis://h:1/0")
    ('redis://:***@127.0.0.1:6379/0', 'redis://h:1/0?password=***&db=2', 'redis://h:1/0')
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    rest = _QUERY_SECRET.sub(r"\1***", rest)
    if "@" not in rest:  # the password may hold '@' and ':': the host starts after the last '@'
        return f"{scheme}://{rest}"
    userinfo, host = rest.rsplit("@", 1)
    user, colon, _ = userinfo.partition(":")
    return f"{scheme}://{user}{':***' if colon else ''}@{host}"


def redact_text(text: str, url: str) -> str:
    """``text`` (an error message, a log line) with every appearance of ``url``'s password replaced.

    For messages made by code that does not know it holds a secret, e.g. an
    exception from a client library that quotes its connection arguments.

    >>> redact_text("AUTH failed for redis://u:s3cr%21t@h/0 (password 's3cr!t')", "redis://u:s3cr%21t@h/0")
    "AUTH failed for redis://u:***@h/0 (password '***')"
    """
    text = text.replace(url, redact(url))
    secrets: set[str] = set()
    _, sep, rest = url.partition("://")
    if sep and "@" in rest:
        userinfo = rest.rsplit("@", 1)[0]
        _, colon, secret = userinfo.partition(":")
        if colon and secret:
            secrets.update((secret, unquote(secret)))
    for match in _QUERY_SECRET.finditer(url):
        value = url[match.end(1):match.end()]
        if value:
            secrets.update((value, unquote(value)))
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def _node(shown: str, text: str) -> tuple[str, int]:
    host, port = text, "6379"
    if text.startswith("["):  # [IPv6]:port
        end = text.find("]")
        if end < 0:
            raise ValueError(f"REDIS_URL {shown!r}: node {text!r} has an unclosed '['")
        host, rest = text[1:end], text[end + 1:]
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"REDIS_URL {shown!r}: node {text!r}: expected [address]:port")
            port = rest[1:]
    elif ":" in text:
        host, port = text.rsplit(":", 1)
    if not host:
        raise ValueError(f"REDIS_URL {shown!r}: node {text!r} has no host")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"REDIS_URL {shown!r}: node {text!r}: port must be a number from 1 to 65535")
    return host, int(port)


def parse_cluster_url(url: str) -> ClusterURL:
    """Split ``redis+cluster://[user[:password]@]host[:port][,host[:port]...][/[0]]`` (default port 6379)."""
    shown = redact(url)
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in CLUSTER_SCHEMES:
        raise ValueError(f"REDIS_URL {shown!r}: not a cluster URL; expected {' or '.join(CLUSTER_SCHEMES)}://")
    parts = urlsplit("x://" + rest.rsplit("@", 1)[-1])  # hosts only: a password may hold any character
    if parts.query or parts.fragment:
        raise ValueError(f"REDIS_URL {shown!r}: query options are not supported in a cluster URL")
    if parts.path.strip("/") not in ("", "0"):
        raise ValueError(f"REDIS_URL {shown!r}: Redis Cluster has only database 0, not {parts.path.strip('/')!r}")
    username = password = None
    if "@" in rest:
        userinfo = rest.rsplit("@", 1)[0]
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    hosts = [h.strip() for h in parts.netloc.split(",")]
    if not any(hosts):
        raise ValueError(f"REDIS_URL {shown!r}: names no cluster node; expected {scheme}://host:port[,host:port...]/")
    if not all(hosts):
        raise ValueError(f"REDIS_URL {shown!r}: an empty node between commas")
    return ClusterURL(tuple(_node(shown, h) for h in hosts), username, password, CLUSTER_SCHEMES[scheme.lower()])
