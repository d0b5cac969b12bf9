"""A chaos check anyone can rerun: real server, flow and Redis, retries, poison, kills; then the books are balanced.

What runs: a ``redis-server`` (the embedded one, append-only file with
``appendfsync always``), a ``livereco serve`` process and a ``livereco flow``
process with recovery on (a snapshot every 0.25 s). A producer posts
``--events`` view events of ``--users`` users in batches to
``POST /v1/events``, each event with an ``event_id``; a share of the batches is
sent twice (a client retrying after a lost answer), and every batch the
server does not acknowledge (503 while Redis is down, a connection error, a
429/503 for backpressure) is retried, with the same ids, until it is. Poison
entries (:data:`benchmarks.poison.POISON`, the kinds ``tests/test_poison_events.py`` feeds) are written straight
into the streams (the server would refuse them) between batches. Meanwhile the
flow is killed with SIGKILL ``--flow-kills`` times and restarted (as a
supervisor would), and Redis is killed with SIGKILL and restarted from its
data ``--redis-restarts`` times.

At the end, once the flow has caught up and snapshotted, the model state is
read from the recovery store (each user's count of events in the user-history
stage, as ``tests/test_recovery.py`` reads it) and compared with the truth,
the distinct event ids the server acknowledged per user:

=================  =========================================================
accepted           distinct events the server acknowledged (202)
posts retried      batches sent again (lost answers, outages, backpressure)
in streams         stream entries (duplicates from retries included)
dead-lettered      poison entries found in the dead-letter stream / sent
counted in state   events counted by the model state (recovery store)
lost               accepted events missing from the state (must be 0)
double-counted     events counted more than once (must be 0)
manual restarts    processes that died other than by our kills (must be 0)
=================  =========================================================

    .venv/bin/python -m benchmarks.chaos [--events 20000] [--users 500] [--rate 400] [--flow-kills 3] [--redis-restarts 2]

Exits 1 if anything was lost, double-counted or needed a manual restart.
"""

from __future__ import annotations

import argparse
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import redis

from benchmarks.cluster_check import flow_env, store_counts
from benchmarks.machine import machine_line
from benchmarks.poison import POISON
from flows.embedded_redis import EmbeddedRedis, free_port
from flows.readiness import wait_until_answering
from online.contract import RedisKeys, StreamProgress
from online.contract.progress import entry_order

ROOT = Path(__file__).resolve().parents[1]
PARTITIONS = 2
SNAPSHOT_S = 0.25


@dataclass
class Books:
    """What the producer knows: every event id the server acknowledged, per user; the retries; the poison."""

    acknowledged: dict[str, set[str]] = field(default_factory=dict)
    retried_posts: int = 0
    poison_ids: list[str] = field(default_factory=list)


def _post(base: str, body: bytes) -> int:
    request = urllib.request.Request(f"{base}/v1/events", data=body, method="POST",
                                     headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, TimeoutError, ConnectionError):
        return 0


def _poison(client_url: str, keys: RedisKeys, books: Books, rng: random.Random) -> None:
    name = rng.choice(sorted(POISON))
    try:
        client = redis.Redis.from_url(client_url, socket_timeout=2)
        books.poison_ids.append(client.xadd(keys.stream(rng.randrange(PARTITIONS)), POISON[name]).decode())
    except redis.RedisError:
        pass  # Redis is down: this poison was never written


def produce(base: str, redis_url: str, keys: RedisKeys, events: int, users: int, books: Books, stop: threading.Event,
            rate: float, seed: int = 7, batch: int = 50, duplicate_share: float = 0.1) -> None:
    """Post ``events`` events at about ``rate`` a second, each batch until it is acknowledged; duplicates and
    poison mixed in."""
    rng = random.Random(seed)
    now = time.time()
    began = time.monotonic()
    for start in range(0, events, batch):
        if stop.is_set():
            return
        time.sleep(max(0.0, began + start / rate - time.monotonic()))
        chunk = []
        for n in range(start, min(start + batch, events)):
            user = f"u{rng.randrange(users)}"
            chunk.append({"user_id": user, "item_id": f"i{rng.randrange(300)}", "type": "view", "ts": now,
                          "event_id": f"e{n}"})
        body = orjson.dumps(chunk)
        while _post(base, body) != 202:
            books.retried_posts += 1
            time.sleep(0.1)
        for event in chunk:
            books.acknowledged.setdefault(event["user_id"], set()).add(event["event_id"])
        if rng.random() < duplicate_share:  # the answer was "lost": the client sends the batch again
            books.retried_posts += 1
            while _post(base, body) != 202:
                time.sleep(0.1)
        if rng.random() < 0.05:
            _poison(redis_url, keys, books, rng)


class Supervisor:
    """Starts ``livereco`` processes, restarts the ones we kill, and notices any that die on their own."""

    def __init__(self, env: dict[str, str], logs: Path):
        self.env, self.logs = env, logs
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.argv: dict[str, list[str]] = {}
        self.unexpected_exits: list[str] = []

    def start(self, name: str, argv: list[str], ready_url: str) -> None:
        self.argv[name] = argv
        with (self.logs / f"{name}.log").open("ab") as out:
            process = subprocess.Popen([sys.executable, "-m", "flows.cli", *argv], env=self.env, cwd=ROOT,
                                       stdout=out, stderr=subprocess.STDOUT)
        self.processes[name] = process
        wait_until_answering(ready_url, [process], timeout_s=60)

    def check(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None and name not in self.unexpected_exits:
                self.unexpected_exits.append(name)

    def kill(self, name: str) -> None:
        self.check()
        self.processes[name].send_signal(signal.SIGKILL)
        self.processes[name].wait()

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


def _stream_entries(client: redis.Redis, keys: RedisKeys) -> int:
    return sum(int(client.xlen(stream)) for stream in keys.streams())



def _caught_up(client: redis.Redis, keys: RedisKeys) -> bool:
    """Every stream's newest entry is at or before the flow's published read position."""
    progress = client.hgetall(keys.flow_progress())
    for stream in keys.streams():
        newest = client.xrevrange(stream, count=1)
        if not newest:
            continue
        raw = progress.get(stream.encode())
        if raw is None:
            return False
        if entry_order(newest[0][0].decode()) > entry_order(StreamProgress.decode(raw).read_id):
            return False
    return True


def run(events: int, users: int, flow_kills: int, redis_restarts: int, workdir: Path, rate: float) -> dict[str, int]:
    namespace = "chaos"
    keys = RedisKeys(namespace, PARTITIONS)
    redis_server = EmbeddedRedis(data_dir=str(workdir / "redis"), durable=True).start()
    store = workdir / "recovery"
    port, metrics_port = free_port(), free_port()
    env = {**flow_env(redis_server.url, namespace, metrics_port, PARTITIONS), "LIVERECO_PORT": str(port)}
    base = f"http://127.0.0.1:{port}"
    supervisor = Supervisor(env, workdir)
    flow_argv = ["flow", "-r", str(store), "-s", str(SNAPSHOT_S)]
    flow_ready = f"http://127.0.0.1:{metrics_port}/metrics"
    books = Books()
    stop = threading.Event()
    try:
        supervisor.start("serve", ["serve"], f"{base}/healthz")
        supervisor.start("flow", flow_argv, flow_ready)
        producer = threading.Thread(target=produce, args=(base, redis_server.url, keys, events, users, books, stop, rate),
                                    daemon=True)
        producer.start()
        faults = ["flow"] * flow_kills + ["redis"] * redis_restarts
        random.Random(3).shuffle(faults)
        began, duration = time.monotonic(), events / rate
        for n, fault in enumerate(faults):  # spread over the production, not after it
            time.sleep(max(0.0, began + duration * (n + 1) / (len(faults) + 1) - time.monotonic()))
            if fault == "flow":
                supervisor.kill("flow")
                time.sleep(0.5)
                supervisor.start("flow", flow_argv, flow_ready)
            else:
                redis_server.kill()
                time.sleep(2.0)
                redis_server.start()
            print(f"chaos: {fault} {'killed and restarted' if fault == 'flow' else 'killed and restarted from its AOF'}"
                  f" at {sum(map(len, books.acknowledged.values())):,} acknowledged events", file=sys.stderr)
        producer.join()
        client = redis.Redis.from_url(redis_server.url)
        deadline = time.monotonic() + 300
        while not _caught_up(client, keys):
            if time.monotonic() > deadline:
                raise RuntimeError("the flow did not catch up within 300 s")
            time.sleep(0.2)
        time.sleep(10 * SNAPSHOT_S)  # a few snapshots after the last event
        supervisor.check()
        supervisor.stop_all()
        _, user_counts = store_counts(store)
        letters = {fields[b"id"].decode() for _, fields in client.xrange(keys.dead_letter())}
        accepted = sum(map(len, books.acknowledged.values()))
        lost = sum(max(0, len(ids) - user_counts.get(user, 0)) for user, ids in books.acknowledged.items())
        doubled = sum(max(0, user_counts.get(user, 0) - len(books.acknowledged.get(user, ())))
                      for user in set(user_counts) | set(books.acknowledged))
        return {
            "accepted": accepted,
            "posts retried": books.retried_posts,
            "in streams": _stream_entries(client, keys),
            "poison sent": len(books.poison_ids),
            "dead-lettered": len(set(books.poison_ids) & letters),
            "counted in state": sum(user_counts.values()),
            "lost": lost,
            "double-counted": doubled,
            "flow kills": flow_kills,
            "redis restarts": redis_restarts,
            "manual restarts": len(supervisor.unexpected_exits),
        }
    finally:
        stop.set()
        supervisor.stop_all()
        redis_server.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.chaos", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--rate", type=float, default=400.0, help="events a second the producer posts")
    parser.add_argument("--flow-kills", type=int, default=3)
    parser.add_argument("--redis-restarts", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, AOF, recovery store)")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="livereco-chaos-"))
    started = time.monotonic()
    try:
        table = run(args.events, args.users, args.flow_kills, args.redis_restarts, workdir, args.rate)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"chaos: logs and data kept in {workdir}", file=sys.stderr)
    print(machine_line())
    print(f"{args.events:,} events of {args.users:,} users posted at {args.rate:,.0f}/s, {time.monotonic() - started:.0f} s")
    width = max(map(len, table))
    for name, value in table.items():
        print(f"{name:<{width}}  {value:>10,}")
    bad = table["lost"] or table["double-counted"] or table["manual restarts"] \
        or table["dead-lettered"] != table["poison sent"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
