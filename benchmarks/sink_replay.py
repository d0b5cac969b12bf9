"""The Redis sink alone: a run's sink batches captured, then replayed through ``RedisSink`` and counted.

``capture`` runs :mod:`benchmarks.ingest_count` (the real stages and sink) and pickles every list of writes the
sink's ``write_batch`` was given. ``replay`` sends them through a fresh ``RedisSink`` (the first batch warms
up; ``--load-only`` stops there) against the Redis at ``--redis`` (flushed first) or an embedded one, and
with ``--digest`` prints the sha256 of every byte the sink sent, so two builds can be checked to write the
same bytes.
Counting under valgrind, a Redis started outside it keeps the embedded server's start-up poll out of
the count::

    PYTHONHASHSEED=0 .venv/bin/python -m benchmarks.sink_replay capture /tmp/batches.pkl --events 10000
    valgrind --tool=cachegrind --cache-sim=no .venv/bin/python -m benchmarks.sink_replay replay /tmp/batches.pkl \\
        --redis redis://127.0.0.1:PORT/0            # then again with --load-only: the difference / 10,000
"""

from __future__ import annotations

import argparse
import hashlib
import os
import pickle
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis
from redis.connection import AbstractConnection

from flows.embedded_redis import EmbeddedRedis
from flows.redis_sink import RedisSink, SinkOptions, _RedisSinkPartition
from online.contract import Settings


def capture(path: str, events: int) -> None:
    """Pickle every batch the sink is given in one :mod:`benchmarks.ingest_count` run of ``events`` events."""
    from benchmarks import ingest_count

    batches: list[bytes] = []
    write_batch = _RedisSinkPartition.write_batch

    def recording(self: _RedisSinkPartition, items: list[Any]) -> None:
        batches.append(pickle.dumps(list(items)))
        write_batch(self, items)

    _RedisSinkPartition.write_batch = recording  # type: ignore[method-assign]
    try:
        ingest_count.main(events)
    finally:
        _RedisSinkPartition.write_batch = write_batch  # type: ignore[method-assign]
    with open(path, "wb") as out:
        pickle.dump(batches, out)
    print(f"{len(batches)} batches captured in {path}")


@contextmanager
def _redis(url: str | None) -> Iterator[str]:
    if url:
        redis.Redis.from_url(url).flushall()
        yield url
    else:
        with EmbeddedRedis() as server:
            yield server.url


def replay(path: str, url: str | None, load_only: bool, digest_sent: bool) -> str:
    """Replay the batches in ``path``; with ``digest_sent``, the sha256 of every byte the sink sent (else "")."""
    with open(path, "rb") as source:
        batches = [pickle.loads(raw) for raw in pickle.load(source)]
    digest = hashlib.sha256()
    send = AbstractConnection.send_packed_command

    def hashing(self: AbstractConnection, command: Any, check_health: bool = True) -> None:
        for chunk in [command] if isinstance(command, bytes | str) else command:
            digest.update(chunk if isinstance(chunk, bytes) else bytes(chunk, "utf-8"))
        send(self, command, check_health)

    with _redis(url) as server:
        if digest_sent:  # hashing the bytes costs instructions too: not while counting
            AbstractConnection.send_packed_command = hashing  # type: ignore[method-assign]
        try:
            settings = Settings.from_env({**os.environ, "REDIS_URL": server}, namespace="count", partitions=4)
            sink = RedisSink(server, SinkOptions(settings.keys, user_ttl_s=settings.user_ttl_s,
                                                 item_ttl_s=settings.item_ttl_s, trending_size=settings.trending_size,
                                                 dead_letter_maxlen=settings.dead_letter_maxlen))
            partition = sink.build("redis", 0, 1)
            for batch in batches[:1] if load_only else batches:
                partition.write_batch(batch)
            partition.close()
        finally:
            AbstractConnection.send_packed_command = send  # type: ignore[method-assign]
    return digest.hexdigest() if digest_sent else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    taking = commands.add_parser("capture")
    taking.add_argument("path")
    taking.add_argument("--events", type=int, default=10_000)
    giving = commands.add_parser("replay")
    giving.add_argument("path")
    giving.add_argument("--redis", help="a Redis URL to flush and write to (default: an embedded server)")
    giving.add_argument("--load-only", action="store_true", help="write only the first batch")
    giving.add_argument("--digest", action="store_true", help="print the sha256 of the bytes sent")
    args = parser.parse_args()
    if args.command == "capture":
        capture(args.path, args.events)
    else:
        digest = replay(args.path, args.redis, args.load_only, args.digest)
        if digest:
            print(f"sent bytes sha256 {digest}")


if __name__ == "__main__":
    main()
