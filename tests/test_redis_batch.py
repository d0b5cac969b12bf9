"""The sink's batches without redis-py's pipeline (``flows.redis_batch``): replies, refusals and failures, on a real Redis.

A reply Redis refuses comes back in its place and the rest of the batch still
lands; a connection that dies leaves no half-read batch behind for the next
one; a refusal that means "not now" (``OOM``) makes the sink wait and send
the batch again, as it did through redis-py's pipeline.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator

import hiredis
import pytest
import redis
from redis.exceptions import ResponseError

from flows.embedded_redis import EmbeddedRedis
from flows.redis_batch import CommandBatches
from flows.redis_client import connect
from flows.redis_sink import RedisSink, SinkOptions
from flows.resp import pack_batch
from flows.writes import DeadLetter, TrendingWrite, UserListWrite
from online.contract import RedisKeys, decode_candidates


@pytest.fixture
def own_redis() -> Iterator[EmbeddedRedis]:
    """A server of the test's own: the tests change its settings and kill its clients."""
    with EmbeddedRedis() as server:
        yield server


def test_a_refused_command_comes_back_in_its_place_and_the_next_batch_reads_its_own_replies(redis_url: str,
                                                                                            namespace: str) -> None:
    client = connect(redis_url)
    batches = CommandBatches(client)
    try:
        assert batches.lean, "one server spoken to in RESP2 with hiredis: the lean path"
        key = f"{namespace}:k"
        replies = batches.send([("SET", key, b"v", "EX", 60), ("ZADD", key, 1.5, "m"), ("GET", key),
                                ("HINCRBYFLOAT", f"{namespace}:h", "revenue", 2.25)])
        assert replies[0] == b"OK" and replies[2] == b"v" and replies[3] == b"2.25"
        assert isinstance(replies[1], ResponseError) and str(replies[1]).startswith("WRONGTYPE"), replies[1]
        many = [("INCR", f"{namespace}:n")] * 5000  # more replies than one socket read holds
        assert batches.send(many) == list(range(1, 5001))
        assert batches.send([("GET", key)]) == [b"v"], "a reply of an earlier batch was left on the connection"
    finally:
        client.close()


def test_a_connection_lost_part_way_fails_the_batch_and_the_next_one_reconnects(own_redis: EmbeddedRedis) -> None:
    client = connect(own_redis.url)
    batches = CommandBatches(client)
    try:
        (own_id,) = batches.send([("CLIENT", "ID")])
        with pytest.raises(redis.ConnectionError):  # Redis answers the kill, then closes: no reply for the last SET
            batches.send([("SET", "k", "1"), ("CLIENT", "KILL", "ID", own_id, "SKIPME", "no"), ("SET", "k", "2")])
        assert batches.send([("GET", "k"), ("SET", "k", "3"), ("GET", "k")]) == [b"1", b"OK", b"3"]
        assert batches.send([("CLIENT", "ID")]) != [own_id], "a new connection"
    finally:
        client.close()


def test_the_sink_waits_out_an_oom_refusal_and_writes_the_whole_batch(own_redis: EmbeddedRedis) -> None:
    keys = RedisKeys("oom", 2)
    sink = RedisSink(own_redis.url, SinkOptions(keys, user_ttl_s=3600, item_ttl_s=3600, trending_size=10,
                                                dead_letter_maxlen=100)).build("redis", 0, 1)
    admin = redis.Redis.from_url(own_redis.url)
    writes = [UserListWrite("u1", [("i1", 1.0), ("i2", 0.5)], 1.7e9, 1_700_000_000_000, "s1", [("i0", 1.0, 1.7e9)]),
              TrendingWrite("i1", "shoes", 2.0), DeadLetter("events", "1-0", "", "bad", b"raw")]
    try:
        admin.config_set("maxmemory-policy", "noeviction")
        admin.config_set("maxmemory", 1)  # every write is refused with OOM: "not now", not "never"
        writing = threading.Thread(target=sink.write_batch, args=(writes,), daemon=True)
        writing.start()
        time.sleep(0.5)
        assert writing.is_alive(), "the sink gave up on (or dead-lettered) a batch Redis refused for lack of memory"
        assert admin.get(keys.user_recs("u1")) is None
        admin.config_set("maxmemory", 0)
        writing.join(timeout=10)
        assert not writing.is_alive(), "the sink did not write its batch once Redis had memory again"
        assert decode_candidates(admin.get(keys.user_recs("u1"))).items == ["i1", "i2"]
        assert admin.get(keys.user_profile("u1")) == writes[0].profile_blob()
        assert admin.zscore(keys.trending("shoes"), "i1") == 2.0
        assert [fields[b"reason"] for _, fields in admin.xrange(keys.dead_letter())] == [b"bad"], \
            "the batch's dead letter was written once, after the outage"
    finally:
        admin.close()
        sink.close()


def test_resp3_keeps_redis_pys_pipeline() -> None:
    assert not CommandBatches(redis.Redis(protocol=3)).lean, "RESP3 replies may carry pushes: redis-py reads them"


def test_a_batch_is_packed_as_hiredis_packs_each_command() -> None:
    """flows.resp writes the SETs itself: the bytes must be hiredis's, whatever the key, blob and TTL."""
    rng = random.Random(3)
    keys = ["lr:u:1:recs", "", "ключ", "k\r\n", "x" * 300, "é" * 11]
    commands: list[tuple[object, ...]] = []
    for _ in range(2000):
        blob = bytes(rng.randrange(256) for _ in range(rng.choice([0, 1, 9, 10, 99, 100, 1000])))
        ttl = rng.choice([0, 1, 9, 10, 60, 86_400, 10**12])
        commands.append(("SET", rng.choice(keys), blob, "EX", ttl))
        commands.append(rng.choice([("ZADD", "z", 1.5, "m", 0.1, "n"), ("SET", "k", "text", "EX", 5),
                                    ("SET", "k", b"v", "PX", 5), ("DEL", "a", "b"), ("HINCRBY", "h", "f", -3)]))
    assert pack_batch(commands) == b"".join(hiredis.pack_command(c) for c in commands)
    with pytest.raises(TypeError):
        pack_batch([("SET", "k", b"v", "EX", 5), ("SET", "k", object(), "EX", 5)])
