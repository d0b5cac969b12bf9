"""HTTP ingestion benchmark: ``POST /v1/events`` against a real ``livereco serve`` process.

Starts an embedded Redis and ``livereco serve`` (one worker), then drives it
closed-loop from this process over ``--connections`` keep-alive connections
(raw asyncio, uvloop when installed), each posting the same pre-encoded
request again as soon as the last one is answered: first single events, then
batches of ``--batch`` events. A stand-in for the flow publishes its progress
(``lr:flow:progress``, read and safe position = the newest entry) every
200 ms, so producers trim the streams as they would with a flow keeping up,
and the server's backlog check sees a short stream.

Printed per body shape: requests/s, events/s, latency p50/p99 (ms) and the
server's CPU time per request (user + system, µs): on a shared machine the
CPU figure moves less than the rates do. Every answer must be 202.

    .venv/bin/python -m benchmarks.http_ingest [--duration 5] [--repeat 3] [--connections 16] [--batch 100]

Run it on two checkouts (before and after a change) to compare them: it starts
the server from the checkout it lives in.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
import redis

from benchmarks.machine import machine_line
from benchmarks.serving_harness import session_cpu_s
from flows.embedded_redis import EmbeddedRedis, free_port
from flows.readiness import wait_until_answering

ROOT = Path(__file__).resolve().parents[1]
PARTITIONS = 4


@contextmanager
def server_process(env: dict[str, str], port: int) -> Iterator[int]:
    server = subprocess.Popen([sys.executable, "-m", "flows.cli", "serve"], env=env, cwd=ROOT,
                              start_new_session=True)
    try:
        wait_until_answering(f"http://127.0.0.1:{port}/readyz", [server])
        yield server.pid
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def publish_progress(url: str, namespace: str, stop: threading.Event) -> None:
    """Stand in for a flow that keeps up: read and safe position = each stream's newest entry, every 200 ms."""
    client = redis.Redis.from_url(url)
    streams = [f"{namespace}:events:{{p{p}}}" for p in range(PARTITIONS)]
    while not stop.wait(0.2):
        now_ms = int(time.time() * 1000)
        for stream in streams:
            newest = client.xrevrange(stream, count=1)
            entry = newest[0][0].decode() if newest else "0-0"
            client.hset(f"{namespace}:flow:progress", stream, f"{entry} {entry} {now_ms}")
    client.close()


class _Client(asyncio.Protocol):
    """One keep-alive connection sending ``request`` again as soon as the answer is complete."""

    def __init__(self, request: bytes, latencies: list[float], statuses: dict[int, int], stop_at: float):
        self.request = request
        self.latencies = latencies
        self.statuses = statuses
        self.stop_at = stop_at
        self.buffer = b""
        self.sent_at = 0.0
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._send()

    def _send(self) -> None:
        self.sent_at = time.perf_counter()
        assert self.transport is not None
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self.buffer[:head_end].decode("latin-1").lower()
            length = int(head.split("content-length:", 1)[1].split("\r\n", 1)[0])
            if len(self.buffer) < head_end + 4 + length:
                return
            self.buffer = self.buffer[head_end + 4 + length:]
            status = int(head.split(" ", 2)[1])
            now = time.perf_counter()
            self.latencies.append(now - self.sent_at)
            self.statuses[status] = self.statuses.get(status, 0) + 1
            if now >= self.stop_at:
                assert self.transport is not None
                self.transport.close()
                if not self.done.done():
                    self.done.set_result(None)
                return
            self._send()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)


async def drive(port: int, body: bytes, connections: int, duration: float) -> tuple[list[float], dict[int, int]]:
    request = (f"POST /v1/events HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
               f"content-length: {len(body)}\r\n\r\n").encode() + body
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    stop_at = time.perf_counter() + duration
    clients = []
    for _ in range(connections):
        _, client = await loop.create_connection(lambda: _Client(request, latencies, statuses, stop_at),
                                                 "127.0.0.1", port)
        clients.append(client)
    await asyncio.gather(*(c.done for c in clients))
    return latencies, statuses


def one_run(port: int, session: int, body: bytes, events: int, connections: int,
            duration: float) -> dict[str, float]:
    cpu0, t0 = session_cpu_s(session), time.perf_counter()
    latencies, statuses = asyncio.run(drive(port, body, connections, duration))
    elapsed, cpu = time.perf_counter() - t0, session_cpu_s(session) - cpu0
    if set(statuses) != {202}:
        raise RuntimeError(f"answers other than 202: {statuses}")
    latencies.sort()
    n = len(latencies)
    return {"rps": n / elapsed, "eps": n * events / elapsed, "p50": latencies[n // 2] * 1000,
            "p99": latencies[min(n - 1, int(n * 0.99))] * 1000, "cpu_us": cpu / n * 1e6}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()
    use_uvloop()
    single = orjson.dumps({"user_id": "u1", "item_id": "i1", "type": "view"})
    batch = orjson.dumps([{"user_id": f"u{k}", "item_id": f"i{k % 50}", "type": "view"} for k in range(args.batch)])
    print(machine_line())
    print(f"checkout: {ROOT}")
    with EmbeddedRedis() as server:
        port = free_port()
        namespace = f"bench{os.getpid()}"
        env = {**os.environ, "REDIS_URL": server.url, "LIVERECO_NAMESPACE": namespace,
               "LIVERECO_PARTITIONS": str(PARTITIONS), "LIVERECO_PORT": str(port), "LIVERECO_FLOW_METRICS_PORT": "0"}
        stop = threading.Event()
        progress = threading.Thread(target=publish_progress, args=(server.url, namespace, stop), daemon=True)
        progress.start()
        try:
            with server_process(env, port) as session:
                print("| body | req/s | events/s | p50 ms | p99 ms | server CPU µs/req | runs (req/s) |")
                print("|---|---|---|---|---|---|---|")
                for name, body, events in (("1 event", single, 1), (f"{args.batch} events", batch, args.batch)):
                    runs = [one_run(port, session, body, events, args.connections, args.duration)
                            for _ in range(args.repeat)]
                    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
                    print(f"| {name} | {med['rps']:,.0f} | {med['eps']:,.0f} | {med['p50']:.2f} | {med['p99']:.2f} |"
                          f" {med['cpu_us']:,.0f} | {', '.join(format(r['rps'], ',.0f') for r in runs)} |", flush=True)
                lengths = [redis.Redis.from_url(server.url).xlen(f"{namespace}:events:{{p{p}}}")
                           for p in range(PARTITIONS)]
                print(f"stream lengths at the end: {lengths} ({args.connections} connections,"
                      f" {args.duration:g} s runs, median of {args.repeat})")
        finally:
            stop.set()
            progress.join()
    return 0


def use_uvloop() -> None:
    """The client's event loop: uvloop when installed (as the server's), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


if __name__ == "__main__":
    sys.exit(main())
