"""The server's CPU per request with one request in flight (closed loop), side by side against another commit.

What a lone request costs is what the 5,000 req/s case is made of (a
request or a few per event-loop turn); it is measured here in a way load on
the machine moves little: the server's own on-CPU time (``/proc/<pid>/task/*/schedstat``,
nanoseconds, all threads of the server's session) over a fixed sequence of
``--requests`` keep-alive requests, one at a time, from a client process of
their own (:func:`client`, a blocking socket: it never spins). The users'
answers are all in the served-list cache first (10,000 users, as
:mod:`benchmarks.serving`). Servers (this tree, ``--against REV`` checked out
and compiled in a temporary worktree, ``--server LABEL:K=V;...``) run side by
side on one embedded Redis; rounds alternate between them and the table shows
medians and the ratio to the first server. Voluntary context switches per
request: how often the server slept inside a request (the Redis reply).

``--instructions``: instead of CPU time, the server runs under callgrind and
the instructions it executes for the same requests are counted (the counters
are zeroed after the warm-up and dumped after the sequence with
``callgrind_control``); slow (~50x), deterministic to a fraction of a percent.

    .venv/bin/python -m benchmarks.serving_closed [--requests 3000] [--rounds 5] [--against REV]
        [--server LABEL[:K=V;...]] [--instructions]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchmarks.build_ab import checkout
from benchmarks.machine import machine_line
from benchmarks.serving_harness import ROOT, USERS, seed
from flows.embedded_redis import EmbeddedRedis, free_port
from flows.readiness import wait_until_answering

REQUEST = b"GET /v1/users/u%d/recommendations?n=10 HTTP/1.1\r\nhost: bench\r\n\r\n"


def users(count: int, offset: int = 0) -> list[int]:
    """The fixed user sequence: every server gets the same requests.

    >>> users(3), users(2, 1)
    ([0, 7919, 5838], [7919, 5838])
    """
    return [(i * 7919) % USERS for i in range(offset, offset + count)]


def client(port: int, sequence: list[int], pause_s: float = 0.0) -> list[float]:
    """Send the requests one at a time on one keep-alive connection, ``pause_s`` apart; each one's latency (ms)."""
    latencies = []
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buffer = b""
        for user in sequence:
            started = time.perf_counter()
            sock.sendall(REQUEST % user)
            while True:
                head_end = buffer.find(b"\r\n\r\n")
                if head_end >= 0:
                    length = int(re.search(rb"content-length: (\d+)", buffer[:head_end]).group(1))  # type: ignore[union-attr]
                    end = head_end + 4 + length
                    if len(buffer) >= end:
                        if not buffer.startswith(b"HTTP/1.1 200"):
                            raise RuntimeError(f"not answered 200: {buffer[:200]!r}")
                        buffer = buffer[end:]
                        break
                chunk = sock.recv(65536)
                if not chunk:
                    raise RuntimeError("the server closed the connection")
                buffer += chunk
            latencies.append((time.perf_counter() - started) * 1000.0)
            if pause_s:
                time.sleep(pause_s)
    return latencies


def session_pids(session: int) -> list[int]:
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError):
            text = stat.read_text()
            if int(text[text.rfind(")") + 2:].split()[3]) == session:
                pids.append(int(stat.parent.name))
    return pids


def session_usage(session: int) -> tuple[float, int]:
    """On-CPU seconds (schedstat, ns) and voluntary context switches of every thread of a session so far."""
    on_cpu_ns = switches = 0
    for pid in session_pids(session):
        for task in Path(f"/proc/{pid}/task").glob("*"):
            with contextlib.suppress(OSError):
                on_cpu_ns += int((task / "schedstat").read_text().split()[0])
                switches += int(re.search(r"voluntary_ctxt_switches:\s+(\d+)",  # type: ignore[union-attr]
                                          (task / "status").read_text()).group(1))
    return on_cpu_ns / 1e9, switches


class ServerUnderTest:
    """``livereco serve --workers 1`` from a tree, in its own session (optionally under callgrind)."""

    def __init__(self, label: str, tree: Path, env: dict[str, str], instructions: bool, folder: Path,
                 keep: Path | None = None):
        self.label = label
        self.keep = keep
        self.port = free_port()
        self.instructions = instructions
        self.out = folder / ("callgrind." + re.sub(r"\W+", "_", label))
        command = [sys.executable, "-m", "flows.cli", "serve", "--workers", "1"]
        if instructions:
            command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={self.out}.%p", "--dump-instr=no",
                       "--dump-line=no", "--compress-strings=no", *command]
        full = {**os.environ, **env, "LIVERECO_PORT": str(self.port), "PYTHONPATH": str(tree)}
        self.process = subprocess.Popen(command, env=full, cwd=tree, start_new_session=True,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL if instructions else None)
        wait_until_answering(f"http://127.0.0.1:{self.port}/readyz", [self.process],  # type: ignore[list-item]
                             timeout_s=600 if instructions else 60)

    def measure(self, sequence: list[int], warmup: list[int], connections: int = 1,
                pause_s: float = 0.0) -> dict[str, float]:
        client(self.port, warmup)
        if self.instructions:
            return self._count(sequence, connections, pause_s)
        cpu, switches = session_usage(self.process.pid)
        started = time.perf_counter()
        latencies = self._send(sequence, connections, pause_s)
        wall = time.perf_counter() - started
        cpu_after, switches_after = session_usage(self.process.pid)
        latencies.sort()
        n = len(sequence)
        return {"cpu_us": (cpu_after - cpu) / n * 1e6, "switches": (switches_after - switches) / n,
                "p50_ms": latencies[n // 2], "p99_ms": latencies[int(n * 0.99)], "wall_us": wall / n * 1e6}

    def _send(self, sequence: list[int], connections: int, pause_s: float) -> list[float]:
        if connections == 1:
            return client(self.port, sequence, pause_s)
        # a thread per connection, each its share of the sequence (the GIL is the client's, not the server's)
        with ThreadPoolExecutor(connections) as pool:
            shares = pool.map(lambda k: client(self.port, sequence[k::connections], pause_s), range(connections))
            return [latency for share in shares for latency in share]

    def _count(self, sequence: list[int], connections: int, pause_s: float) -> dict[str, float]:
        pid = self.process.pid
        subprocess.run(["callgrind_control", "-z", str(pid)], check=True, capture_output=True)
        self._send(sequence, connections, pause_s)
        before = set(self.out.parent.glob(f"{self.out.name}.{pid}*"))
        subprocess.run(["callgrind_control", "-d", str(pid)], check=True, capture_output=True)
        dumped = sorted(set(self.out.parent.glob(f"{self.out.name}.{pid}*")) - before)
        total = 0
        for path in dumped:
            match = re.search(r"^(?:summary|totals):\s+(\d+)", path.read_text(), re.M)
            total += int(match.group(1)) if match else 0
            if self.keep is not None:
                path.rename(self.keep / path.name)
            else:
                path.unlink()
        return {"instructions": total / len(sequence)}

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def parse_server(text: str) -> tuple[str, dict[str, str]]:
    """``LABEL[:K=V;K=V]`` -> label, environment.

    >>> parse_server("no records:LIVERECO_IMPRESSIONS=0")
    ('no records', {'LIVERECO_IMPRESSIONS': '0'})
    """
    label, _, rest = text.partition(":")
    return label, dict(pair.split("=", 1) for pair in rest.split(";") if pair)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=300, help="requests before each measured sequence")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=1, help="requests in flight: one keep-alive connection "
                        "each, from client threads (default 1: the lone request)")
    parser.add_argument("--against", metavar="REV", help="also this commit's server, checked out and compiled")
    parser.add_argument("--against-tree", metavar="DIR", help="also the server of this already built tree")
    parser.add_argument("--server", action="append", default=[], help="LABEL[:K=V;...], this tree's server with"
                        " these settings (repeatable; default: this tree as it is)")
    parser.add_argument("--pause-ms", type=float, default=0.0, help="the client's pause after each answer (one "
                        "connection): the server idles between requests, as at a low offered rate")
    parser.add_argument("--instructions", action="store_true", help="count instructions under callgrind instead")
    parser.add_argument("--json", help="write every round's figures here")
    parser.add_argument("--keep", metavar="DIR", help="with --instructions: keep the callgrind dumps here "
                        "(callgrind_annotate reads them)")
    args = parser.parse_args()
    print(machine_line())
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory() as folder:
        specs = [(label, ROOT, env) for label, env in map(parse_server, args.server)] or [("this tree", ROOT, {})]
        if args.against:
            specs.append((f"at {args.against}", stack.enter_context(checkout(args.against)), {}))
        if args.against_tree:
            specs.append((f"tree {args.against_tree}", Path(args.against_tree).resolve(), {}))
        redis_server = stack.enter_context(EmbeddedRedis())
        seed(redis_server.url, "bench")
        base = {"REDIS_URL": redis_server.url, "LIVERECO_NAMESPACE": "bench"}
        servers: list[ServerUnderTest] = []
        stack.callback(lambda: [server.stop() for server in servers])
        for label, tree, env in specs:
            servers.append(ServerUnderTest(label, tree, {**base, **env}, args.instructions, Path(folder),
                                           Path(args.keep) if args.keep else None))
        every_user = users(USERS)
        for server in servers:  # every user's answer cached, as in the serving benchmark
            client(server.port, every_user)
        sequence, warmup = users(args.requests), users(args.warmup, args.requests)
        results: dict[str, list[dict[str, float]]] = {server.label: [] for server in servers}
        for round_no in range(args.rounds):
            order = servers if round_no % 2 == 0 else servers[::-1]
            for server in order:
                results[server.label].append(server.measure(sequence, warmup, args.connections, args.pause_ms / 1000))
        print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    what = "instructions per request (callgrind)" if args.instructions else "server on-CPU µs per request"
    print(f"GET /v1/users/{{id}}/recommendations?n=10, {args.connections} request(s) in flight, {args.requests} requests a round, "
          f"medians of {args.rounds} alternated rounds; {what}:")
    first = statistics.median(r["instructions" if args.instructions else "cpu_us"] for r in results[servers[0].label])
    if args.instructions:
        print("| server | instructions/req | ratio | rounds |")
        print("|---|---|---|---|")
        for label, rounds in results.items():
            m = statistics.median(r["instructions"] for r in rounds)
            print(f"| {label} | {m:,.0f} | {m / first:.3f} | {', '.join(format(r['instructions'], ',.0f') for r in rounds)} |")
    else:
        print("| server | CPU µs/req | ratio | voluntary switches/req | latency p50 / p99 ms | req/s | rounds (CPU µs) |")
        print("|---|---|---|---|---|---|---|")
        for label, rounds in results.items():
            m = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
            print(f"| {label} | {m['cpu_us']:.1f} | {m['cpu_us'] / first:.3f} | {m['switches']:.2f} | "
                  f"{m['p50_ms']:.3f} / {m['p99_ms']:.3f} | {1e6 / m['wall_us']:,.0f} | "
                  f"{', '.join(format(r['cpu_us'], '.0f') for r in rounds)} |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
