"""One in-process ingestion run, for :mod:`benchmarks.ingest` ``--instructions``: the real stages and the real
Redis sink (encoding, redis-py pipelines, an embedded Redis in its own process), fed the benchmark's synthetic-shop
stream entries through Bytewax's testing source, automatic garbage collection off as in the live flow.

Run by path with ``PYTHONPATH`` set to the tree to measure (it imports only what every tree since the ceiling
benchmark has), so one copy of this file counts another commit's build too::

    PYTHONPATH=TREE python benchmarks/ingest_count.py EVENTS

Only the ``livereco flow`` process's part is missing: ``XREAD`` replies (hiredis) and the source's bookkeeping.
"""

from __future__ import annotations

import os
import sys
import time
from datetime import timedelta

from bytewax.testing import TestingSource, run_main

from benchmarks.ingest import PARTITIONS, shop_events
from flows.dataflow import build_flow
from flows.embedded_redis import EmbeddedRedis
from flows.gc_policy import periodic_collection
from flows.redis_sink import RedisSink, SinkOptions
from flows.redis_source import StreamEntry
from online.contract import Settings
from online.contract.streams import stream_fields

COUNT_GC_INTERVAL_S = 86_400.0
"""The live GC policy (automatic collection off, a timer), with a timer that never fires within a run."""
GENERATED = 10_000
"""Events generated whatever the run's length (then cut): generating them is start-up, the same in every run."""


def main(events: int) -> float:
    """Events/s of one run over the first ``events`` synthetic-shop events (start-up not timed)."""
    shop = shop_events(max(events, GENERATED))[:events]
    with EmbeddedRedis() as server:
        settings = Settings.from_env({**os.environ, "REDIS_URL": server.url}, namespace="count", partitions=PARTITIONS)
        entries = [StreamEntry(settings.keys.stream_for_user(e.user_id), f"{int(e.ts * 1000)}-{n}",
                               {k.encode(): v for k, v in stream_fields(e).items()}) for n, e in enumerate(shop)]
        sink = RedisSink(server.url, SinkOptions(settings.keys, user_ttl_s=settings.user_ttl_s,
                                                 item_ttl_s=settings.item_ttl_s, trending_size=settings.trending_size,
                                                 dead_letter_maxlen=settings.dead_letter_maxlen))
        flow = build_flow(settings, source=TestingSource(entries, batch_size=settings.read_count), sink=sink,
                          recoverable=False, use_catalog=False)
        # No collection and one epoch: under valgrind a run takes minutes, and the wall-clock GC timer and
        # epochs (a snapshot call per touched key each) would make the count depend on the machine's load.
        with periodic_collection(COUNT_GC_INTERVAL_S):
            started = time.perf_counter()
            run_main(flow, epoch_interval=timedelta(days=1))
            return len(entries) / (time.perf_counter() - started)


if __name__ == "__main__":
    print(f"{main(int(sys.argv[1])):.0f}")
