"""What the embedded Redis's append-only file costs, per fsync policy (docs/durability.md quotes it).

For each policy (no AOF, ``appendfsync no``, ``everysec``, ``always``) a fresh
embedded redis-server in a temporary directory on the same disk as
``--dir`` takes N stream appends of one event each: one ``XADD`` per round
trip (the worst case: ``always`` fsyncs before each answer), then in
``MULTI`` blocks of 50 (how ``POST /v1/events`` appends a batch). Prints
events/s, the median of ``--repeat`` runs.

    .venv/bin/python -m benchmarks.aof_fsync [--events 5000] [--repeat 3] [--dir /tmp]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import redis

from benchmarks.machine import machine_line
from flows.embedded_redis import EmbeddedRedis

EVENT = {"e": b'{"user_id":"u1","item_id":"sku-00001","type":"view"}'}
BATCH = 50


def appends_per_second(client: redis.Redis, stream: str, events: int, batch: int) -> float:
    started = time.perf_counter()
    if batch == 1:
        for _ in range(events):
            client.xadd(stream, EVENT)  # type: ignore[arg-type]
    else:
        for _ in range(events // batch):
            pipe = client.pipeline(transaction=True)
            for _ in range(batch):
                pipe.xadd(stream, EVENT)  # type: ignore[arg-type]
            pipe.execute()
    return events / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", default=None, help="where the temporary Redis directories go (the disk measured)")
    args = parser.parse_args()
    print(machine_line())
    print(f"{'policy':>12}  {'1 XADD per round trip':>22}  {f'MULTI of {BATCH}':>14}   (events/s, median of {args.repeat})")
    for policy in (None, "no", "everysec", "always"):
        single, batched = [], []
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory(dir=args.dir) as directory:
                server = EmbeddedRedis(data_dir=directory, appendfsync=policy).start()
                try:
                    client = redis.Redis(port=server.port)
                    single.append(appends_per_second(client, "one", args.events, 1))
                    batched.append(appends_per_second(client, "batched", args.events, BATCH))
                    client.close()
                finally:
                    server.stop()
        print(f"{policy or 'no AOF':>12}  {statistics.median(single):>22,.0f}  {statistics.median(batched):>14,.0f}")


if __name__ == "__main__":
    main()
