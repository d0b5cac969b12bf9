"""Open-loop HTTP load generator: requests at a fixed rate, latency from the scheduled send time.

Debian ships ``wrk`` but not ``wrk2``; ``wrk`` is closed-loop (a connection
sends its next request only after the previous answer), so a slow server
slows the load down and its stalls hide from the percentiles ("coordinated
omission"). This generator sends request ``i`` at ``start + i / rate``
whatever the server does, over a pool of keep-alive connections, and
measures each latency from that *scheduled* time: a request that waits for a
free connection, or a server that stalls, shows up as latency, as in wrk2.

It runs as its own process with its own event loop (uvloop when installed)
and prints one JSON object. The schedule is kept by a pacing thread that
sleeps until the next request is due (``time.sleep``: microseconds, not the
event loop's 1 ms timers) and wakes the loop for it. ``--pacing timer`` is the
previous pacing, kept for comparison: the loop's own timer, re-armed with the
time to the next request, which at rates above 1,000/s is under the loop's
1 ms resolution, fires at once and so spins: the generator then burned a whole
core (about 130 µs of CPU per request at 5,000/s, more than the server's), on
a 2-core machine the core the server and Redis needed. ``send_lag`` is how late the generator itself
wrote requests (timer resolution is ~1 ms); it is included in ``latency``,
so the latency figures are an upper bound on the server's.

    python -m benchmarks.loadgen --url http://127.0.0.1:8000 --rate 2000 --duration 10 \\
        --path '/v1/users/u{user}/recommendations?n=10' --users 10000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import random
import sys
import threading
import time
from collections import deque
from typing import Any
from urllib.parse import urlsplit

__all__ = ["percentile", "run"]


def percentile(sorted_values: list[float], p: float) -> float:
    """The ``p``-th percentile (nearest rank) of an ascending list; 0.0 when empty.

    >>> percentile([1.0, 2.0, 3.0, 4.0], 50), percentile([1.0, 2.0, 3.0, 4.0], 99)
    (2.0, 4.0)
    """
    if not sorted_values:
        return 0.0
    rank = max(1, -(-len(sorted_values) * p // 100))
    return sorted_values[int(rank) - 1]


def _fine_timer_slack() -> None:
    """Ask Linux to wake this thread's sleeps within 1 µs of their time, not the default 50 µs (best effort)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_TIMERSLACK, 1000, 0, 0, 0)


_PR_SET_TIMERSLACK = 29


class _Connection(asyncio.Protocol):
    """One keep-alive connection with at most one request in flight."""

    def __init__(self, gen: _Generator):
        self.gen = gen
        self.transport: Any = None
        self.buffer = bytearray()
        self.scheduled = 0.0
        self.sent = 0.0
        self.busy = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # uvloop's transports are not asyncio.Transport subclasses

    def connection_lost(self, exc: Exception | None) -> None:
        self.gen.lost(self)

    def send(self, request: bytes, scheduled: float, now: float) -> None:
        self.scheduled, self.sent, self.busy = scheduled, now, True
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(buffer[:end]).lower()
        length = 0
        for line in head.split(b"\r\n")[1:]:
            if line.startswith(b"content-length:"):
                length = int(line[15:])
        if len(buffer) < end + 4 + length:
            return
        del buffer[:end + 4 + length]
        self.busy = False
        self.gen.answered(self, int(head[9:12]))


class _Generator:
    def __init__(self, host: str, port: int, requests: list[bytes], rate: float, duration: float,
                 connections: int, seed: int, pacing: str = "thread"):
        self.host, self.port = host, port
        self.requests = requests
        self.rate = rate
        self.total = int(rate * duration)
        self.duration = duration
        self.max_connections = connections
        self.rng = random.Random(seed)
        self.pool: list[_Connection] = []
        self.opening_tasks: set[asyncio.Task[None]] = set()
        self.idle: deque[_Connection] = deque()
        self.queue: deque[float] = deque()
        self.latency: list[float] = []
        self.service: list[float] = []
        self.send_lag: list[float] = []
        self.statuses: dict[int, int] = {}
        self.scheduled = 0
        self.in_flight = 0
        self.opening = 0
        self.connections = 0
        self.errors = 0
        self.start = 0.0
        self.last_answer = 0.0
        self.done = asyncio.Event()
        self.pacing = pacing
        self.ticks = 0

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        self.opening += 1
        try:
            _, conn = await loop.create_connection(lambda: _Connection(self), self.host, self.port)
        except OSError:
            self.errors += 1
            return
        finally:
            self.opening -= 1
        self.connections += 1
        self.pool.append(conn)
        self._idle(conn)

    async def warm(self, count: int) -> None:
        await asyncio.gather(*(self._open() for _ in range(count)))
        if not self.idle:
            raise RuntimeError(f"could not connect to {self.host}:{self.port}")

    def _idle(self, conn: _Connection) -> None:
        if self.queue:
            self.in_flight += 1
            now = time.perf_counter()
            scheduled = self.queue.popleft()
            self.send_lag.append(now - scheduled)
            conn.send(self.requests[self.rng.randrange(len(self.requests))], scheduled, now)
        else:
            self.idle.append(conn)

    def answered(self, conn: _Connection, status: int) -> None:
        now = time.perf_counter()
        self.in_flight -= 1
        self.latency.append(now - conn.scheduled)
        self.service.append(now - conn.sent)
        self.statuses[status] = self.statuses.get(status, 0) + 1
        self.last_answer = now
        self._idle(conn)
        self._check_done()

    def lost(self, conn: _Connection) -> None:
        self.connections -= 1
        if conn in self.pool:
            self.pool.remove(conn)
        if conn in self.idle:
            self.idle.remove(conn)
        elif conn.busy:
            self.in_flight -= 1
            self.errors += 1
            self._check_done()

    def _check_done(self) -> None:
        if self.scheduled >= self.total and self.in_flight == 0 and not self.queue:
            self.done.set()

    def tick(self) -> None:
        """Queue every request whose time has come, send what idle connections allow (``timer`` pacing: re-arm)."""
        loop = asyncio.get_running_loop()
        self.ticks += 1
        now = time.perf_counter()
        due = min(self.total, int((now - self.start) * self.rate) + 1)
        for i in range(self.scheduled, due):
            self.queue.append(self.start + i / self.rate)
        self.scheduled = max(self.scheduled, due)
        while self.queue and self.idle:
            self._idle(self.idle.popleft())
        if self.queue and self.connections + self.opening < self.max_connections:
            task = loop.create_task(self._open())
            self.opening_tasks.add(task)
            task.add_done_callback(self.opening_tasks.discard)
        if self.scheduled < self.total:
            if self.pacing == "timer":
                delay = self.start + self.scheduled / self.rate - time.perf_counter()
                loop.call_later(max(0.0, delay), self.tick)
        else:
            self._check_done()

    def pace(self, loop: asyncio.AbstractEventLoop, stop: threading.Event) -> None:
        """The pacing thread: sleep until the next request is due, then have the loop send what is due."""
        _fine_timer_slack()
        posted = 0
        while posted < self.total and not stop.is_set():
            delay = self.start + posted / self.rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            posted = min(self.total, int((time.perf_counter() - self.start) * self.rate) + 1)
            loop.call_soon_threadsafe(self.tick)

    async def run(self, drain_s: float) -> dict[str, object]:
        self.start = time.perf_counter()
        stop = threading.Event()
        pacer = None
        if self.pacing == "timer":
            self.tick()
        else:
            pacer = threading.Thread(target=self.pace, args=(asyncio.get_running_loop(), stop), daemon=True)
            pacer.start()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.done.wait(), self.duration + drain_s)
        end = time.perf_counter()
        stop.set()
        if pacer is not None:
            pacer.join()
        answered = len(self.latency)
        # Requests still unanswered (the server fell behind the schedule) enter the percentiles with
        # their waiting time so far, a lower bound: dropping them would flatter an overloaded server.
        waiting = [end - conn.scheduled for conn in self.pool if conn.busy]
        waiting += [end - scheduled for scheduled in self.queue]
        waiting += [end - (self.start + i / self.rate) for i in range(self.scheduled, self.total)]
        elapsed = max(self.duration, self.last_answer - self.start)
        latency = sorted(self.latency + waiting)
        service, lag = sorted(self.service), sorted(self.send_lag)

        def ms(values: list[float], p: float) -> float:
            return round(percentile(values, p) * 1000.0, 3)

        return {
            "offered_rps": self.rate, "duration_s": self.duration, "scheduled": self.total,
            "answered": answered, "unanswered": len(waiting), "errors": self.errors,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "achieved_rps": round(answered / elapsed, 1), "connections_used": self.connections,
            "pacing": self.pacing, "ticks": self.ticks,
            "latency_ms": {"p50": ms(latency, 50), "p90": ms(latency, 90), "p99": ms(latency, 99),
                           "p999": ms(latency, 99.9), "max": ms(latency, 100)},
            "service_ms": {"p50": ms(service, 50), "p99": ms(service, 99), "max": ms(service, 100)},
            "send_lag_ms": {"p50": ms(lag, 50), "p99": ms(lag, 99), "max": ms(lag, 100)},
        }


async def run(url: str, paths: list[str], rate: float, duration: float, connections: int = 64,
              warm_connections: int = 8, seed: int = 7, drain_s: float = 5.0, pacing: str = "thread") -> dict[str, object]:
    """Offer ``rate`` requests/s of GET ``paths`` (chosen at random) for ``duration`` s; the result as a dict."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    requests = [f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode() for path in paths]
    gen = _Generator(host, port, requests, rate, duration, connections, seed, pacing)
    await gen.warm(min(warm_connections, connections))
    return await gen.run(drain_s)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="base URL, e.g. http://127.0.0.1:8000")
    parser.add_argument("--path", required=True, help="request path; {user} is replaced by a random user number")
    parser.add_argument("--users", type=int, default=1, help="user numbers 0..users-1 for {user}")
    parser.add_argument("--rate", type=float, required=True, help="offered requests/s")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load")
    parser.add_argument("--connections", type=int, default=64, help="most keep-alive connections to open")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--pacing", choices=("thread", "timer"), default="thread",
                        help="thread: a pacing thread sleeps until each request is due; timer: the previous pacing, "
                             "the loop's timer (spins at rates over 1,000/s), for comparison")
    args = parser.parse_args(argv)
    try:
        import uvloop
        loop_factory = uvloop.new_event_loop
    except ImportError:
        loop_factory = asyncio.new_event_loop
    paths = [args.path.replace("{user}", str(u)) for u in range(args.users)]
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        result = runner.run(run(args.url, paths, args.rate, args.duration, args.connections, seed=args.seed,
                                    pacing=args.pacing))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
