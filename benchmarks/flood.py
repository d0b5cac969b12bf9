"""A flood: far more events than the flow can take, as fast as the server takes them; memory and backpressure watched.

Real ``livereco serve`` and ``livereco flow`` processes on an embedded Redis
(``LIVERECO_STREAM_MAXLEN`` small enough for the flood to reach it). Several
threads post ``--events`` view events in batches of ``--batch`` over
keep-alive connections, each batch once (a 503 is counted and not retried:
this measures what the server refuses, not a producer's patience). Every
half second the flow's resident memory (``VmRSS``), the streams' length and
Redis's memory are sampled. Printed: events accepted and refused, the peak
stream length against the bound, and the flow's RSS before, at its peak and
at the end; the flow must not grow with the flood, and no stream may pass
its bound by more than a server's short cache window.

    .venv/bin/python -m benchmarks.flood [--events 200000] [--batch 500] [--threads 4] [--maxlen 50000]
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import orjson
import redis

from benchmarks.cluster_check import flow_env
from benchmarks.machine import machine_line
from flows.embedded_redis import EmbeddedRedis, free_port
from tests.processes import livereco_process

PARTITIONS = 2


def rss_mib(pid: int) -> float:
    """Resident memory of process ``pid`` in MiB (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def flood(port: int, events: int, batch: int, threads: int, counts: dict[int, int], lock: threading.Lock) -> None:
    """Post ``events`` events in batches from ``threads`` threads; count the answers' statuses (in events)."""
    per_thread = events // threads
    now = time.time()

    def post_all(first: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for start in range(first, first + per_thread, batch):
            body = orjson.dumps([{"user_id": f"u{n % 5000}", "item_id": f"i{n % 997}", "type": "view", "ts": now,
                                  "event_id": f"f{n}"} for n in range(start, min(start + batch, first + per_thread))])
            try:
                connection.request("POST", "/v1/events", body, {"content-type": "application/json"})
                answer = connection.getresponse()
                answer.read()
                status = answer.status
            except (OSError, http.client.HTTPException):
                status = 0
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            with lock:
                counts[status] = counts.get(status, 0) + (min(start + batch, first + per_thread) - start)
        connection.close()

    workers = [threading.Thread(target=post_all, args=(n * per_thread,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.flood", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--maxlen", type=int, default=50_000, help="LIVERECO_STREAM_MAXLEN for the run (per partition)")
    args = parser.parse_args(argv)
    with EmbeddedRedis() as embedded:
        port, metrics_port = free_port(), free_port()
        env = {**flow_env(embedded.url, "flood", metrics_port, PARTITIONS), "LIVERECO_PORT": str(port),
               "LIVERECO_STREAM_MAXLEN": str(args.maxlen)}
        client = redis.Redis.from_url(embedded.url)
        streams = [f"flood:events:{{p{p}}}" for p in range(PARTITIONS)]
        with livereco_process(env, "flow", ready_url=f"http://127.0.0.1:{metrics_port}/metrics") as flow, \
             livereco_process(env, "serve", ready_url=f"http://127.0.0.1:{port}/healthz"):
            time.sleep(2.0)
            before = rss_mib(flow.pid)
            samples: list[tuple[float, int, float]] = []
            counts: dict[int, int] = {}
            lock = threading.Lock()
            poster = threading.Thread(target=flood, args=(port, args.events, args.batch, args.threads, counts, lock))
            started = time.monotonic()
            poster.start()
            while poster.is_alive():
                length = max(int(client.xlen(stream)) for stream in streams)
                samples.append((rss_mib(flow.pid), length, int(client.info("memory")["used_memory"]) / 2**20))
                time.sleep(0.5)
            seconds = time.monotonic() - started
            time.sleep(3.0)
            after = rss_mib(flow.pid)
    rss = [s[0] for s in samples]
    print(machine_line())
    print(f"flood: {args.events:,} events in batches of {args.batch} from {args.threads} threads, {seconds:.1f} s, "
          f"LIVERECO_STREAM_MAXLEN={args.maxlen:,}")
    print(f"accepted (202)          {counts.get(202, 0):>10,}")
    print(f"refused (503)           {counts.get(503, 0):>10,}")
    print(f"other answers           {sum(v for k, v in counts.items() if k not in (202, 503)):>10,}")
    print(f"peak stream length      {max(s[1] for s in samples):>10,}  (bound {args.maxlen:,})")
    print(f"Redis memory peak       {max(s[2] for s in samples):>10.1f} MiB")
    print(f"flow RSS before         {before:>10.1f} MiB")
    print(f"flow RSS median / peak  {statistics.median(rss):>10.1f} / {max(rss):.1f} MiB")
    print(f"flow RSS after          {after:>10.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
