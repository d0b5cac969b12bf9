"""The framework's ceiling end to end: the empty topology as a live flow process, Redis streams in, Redis out.

:mod:`benchmarks.ceiling` compares livereco with the empty topology in one
process, both into a sink that keeps nothing, so the Redis writes (a tenth of
the live flow's CPU) never show there. This is the same comparison as
:mod:`benchmarks.ingest` measures livereco: a separate flow process drains
events already waiting in the real Redis streams and writes to Redis.

The empty flow (``python -m benchmarks.ceiling_e2e``, configured like
``livereco flow`` by ``REDIS_URL``, ``LIVERECO_NAMESPACE``,
``LIVERECO_PARTITIONS``, ``LIVERECO_READ_COUNT``) reads the streams with
livereco's own :class:`~flows.redis_source.RedisStreamSource`, runs
:func:`benchmarks.ceiling.empty_flow`'s counting stages (parse → user → item
→ user → shard, the same hops), and per output batch writes, in one pipeline,
one ``SET`` per distinct user of a 256-byte value (about a served list blob's
size: livereco writes each user's list once per batch too) and an ``INCRBY``
of a counter, sent as livereco's sink sends (:class:`~flows.redis_batch.CommandBatches`). :func:`empty_throughput` starts it, polls the counter and
measures events/s from the first to the last event written, as
:func:`benchmarks.ingest.throughput` does from the flow's event counter, so
interpreter start-up is not counted. ``benchmarks.ingest --ceiling`` runs both,
alternated, and prints livereco's share.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import redis
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from bytewax.run import cli_main

from benchmarks.ceiling import empty_flow
from flows.gc_policy import periodic_collection
from flows.redis_batch import Command, CommandBatches
from flows.redis_client import connect
from flows.redis_source import RedisStreamSource
from online.contract import Settings

ROOT = Path(__file__).resolve().parents[1]
VALUE = b"x" * 256


def counter_key(namespace: str) -> str:
    """The key the empty flow's sink counts its events in.

    >>> counter_key("tp1")
    'tp1:ceiling:written'
    """
    return f"{namespace}:ceiling:written"


class _WriteUsers(StatelessSinkPartition[Any]):
    def __init__(self, url: str, namespace: str):
        self.batches = CommandBatches(connect(url))  # livereco's sink's own lean path: one packed round trip
        self.namespace = namespace

    def write_batch(self, items: list[Any]) -> None:
        prefix = f"{self.namespace}:ceiling:list:"
        commands: list[Command] = [("SET", prefix + user, VALUE) for user in {event["user_id"] for event in items}]
        commands.append(("INCRBY", counter_key(self.namespace), len(items)))
        self.batches.send(commands)


class UserWritesSink(DynamicSink[Any]):
    """One ``SET`` per distinct user of a batch and the batch's event count, in one pipeline."""

    def __init__(self, url: str, namespace: str):
        self.url = url
        self.namespace = namespace

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _WriteUsers:
        return _WriteUsers(self.url, self.namespace)


def run_empty_flow() -> int:
    """The empty topology as a live flow process over the environment's Redis streams (runs until stopped)."""
    settings = Settings.from_env()
    source = RedisStreamSource(settings.redis_url, settings.keys, read_count=settings.read_count,
                               poll_interval_s=settings.poll_interval_ms / 1000.0)
    flow = empty_flow(source, sink=UserWritesSink(settings.redis_url, settings.keys.namespace))
    with periodic_collection(settings.gc_interval_s):
        cli_main(flow, workers_per_process=1, process_id=None, addresses=None,
                 epoch_interval=timedelta(seconds=10), recovery_config=None)
    return 0


def empty_throughput(url: str, namespace: str, partitions: int, total: int, timeout_s: float = 600.0) -> float:
    """Events/s of the empty flow process draining ``total`` events already in ``namespace``'s streams."""
    env = {**os.environ, "REDIS_URL": url, "LIVERECO_NAMESPACE": namespace, "LIVERECO_PARTITIONS": str(partitions),
           "PYTHONPATH": str(ROOT)}
    client = redis.Redis.from_url(url)
    with tempfile.TemporaryFile() as log:
        child = subprocess.Popen([sys.executable, "-m", "benchmarks.ceiling_e2e"], env=env, cwd=ROOT,
                                 stdout=log, stderr=subprocess.STDOUT)
        try:
            first: tuple[float, int] | None = None
            last = (0.0, 0)
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline and child.poll() is None:
                written, now = int(client.get(counter_key(namespace)) or 0), time.perf_counter()
                if written and first is None:
                    first = (now, written)
                if written > last[1]:
                    last = (now, written)
                if written >= total:
                    break
                time.sleep(0.02)
        finally:
            child.terminate()
            try:
                child.wait(10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        if first is not None and last[1] >= total and last[0] <= first[0]:
            raise RuntimeError(f"the empty flow wrote all {total:,} events between two polls: too few to time")
        if first is None or last[1] < total:
            log.seek(0)
            raise RuntimeError(f"the empty flow wrote {last[1]:,} of {total:,} events:\n{log.read()[-2000:].decode()}")
    return (last[1] - first[1]) / (last[0] - first[0])


if __name__ == "__main__":
    sys.exit(run_empty_flow())
