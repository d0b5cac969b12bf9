"""How the memory benchmarks read memory: a process's RSS, Redis's ``used_memory``, and a sink that keeps nothing.

>>> rss_kib() > 0
True
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import redis
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from typing_extensions import override

from flows.redis_sink import Write

__all__ = ["DiscardSink", "rss_kib", "used_memory"]


def rss_kib(pid: int | str = "self") -> int:
    """VmRSS of a process in KiB, from ``/proc/<pid>/status``."""
    with open(f"/proc/{pid}/status") as status:
        return int(next(line.split()[1] for line in status if line.startswith("VmRSS:")))


class _DiscardPartition(StatelessSinkPartition[Write]):
    def __init__(self, counts: Counter[str]):
        self.counts = counts

    @override
    def write_batch(self, items: list[Write]) -> None:
        self.counts.update(type(w).__name__ for w in items)


class DiscardSink(DynamicSink[Write]):
    """Counts the flow's writes by kind and keeps none of them."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    @override
    def build(self, step_id: str, worker_index: int, worker_count: int) -> _DiscardPartition:
        return _DiscardPartition(self.counts)


def used_memory(client: redis.Redis, timeout_s: float = 2.0) -> int:
    """``used_memory`` once ``client`` is the only connection left.

    A writer's connection (the sink's, with its query buffer) closes
    asynchronously: counted in one reading and not in the next, it made small
    deltas swing by tens of KB.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        info: Any = client.info()
        if int(info["connected_clients"]) <= 1 or time.monotonic() > deadline:
            return int(info["used_memory"])
        time.sleep(0.01)
