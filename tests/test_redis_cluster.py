"""Redis Cluster: a real 3-master cluster, the real flow and server processes, and the end-to-end scenario.

One cluster serves the module (``redis_url`` is overridden here, so every
fixture built on it — settings, clients, the processes — talks to the
cluster). The outage test starts a cluster of its own, since it kills a master.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Iterator

import orjson
import pytest
import redis

from flows.embedded_cluster import EmbeddedRedisCluster
from flows.embedded_redis import free_port
from flows.event_writer import EventWriter
from flows.redis_batch import CommandBatches
from flows.redis_client import connect, parse_cluster_url
from flows.redis_sink import RedisSink, SinkOptions
from flows.writes import UserErasedWrite, UserListWrite
from online.contract import Event, RedisKeys, Settings
from serving.app import check_layout
from serving.redis_connect import connect_async
from tests import test_end_to_end as e2e
from tests.conftest import LiveServer
from tests.processes import flow_and_server

pytestmark = pytest.mark.slow


# --- fixtures: everything on one cluster -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cluster() -> Iterator[EmbeddedRedisCluster]:
    with EmbeddedRedisCluster() as running:
        yield running


@pytest.fixture(scope="module")
def redis_url(cluster: EmbeddedRedisCluster) -> str:
    return cluster.url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.RedisCluster]:
    client = connect(redis_url)
    assert isinstance(client, redis.RedisCluster)
    yield client
    client.close()


@pytest.fixture(scope="module")
def system_namespace() -> str:
    return f"c{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def system(redis_url: str, system_namespace: str) -> Iterator[tuple[str, str]]:
    """The real ``livereco flow`` and ``livereco serve`` processes on the cluster, shared by the e2e tests."""
    with flow_and_server(redis_url, system_namespace) as urls:
        yield urls


def fresh_settings(redis_url: str, partitions: int = 4) -> Settings:
    return Settings.from_env({}, redis_url=redis_url, namespace=f"t{uuid.uuid4().hex[:10]}", partitions=partitions)


def keys_per_master(cluster: EmbeddedRedisCluster, namespace: str) -> list[int]:
    """How many of the namespace's keys each master holds, asked of each master directly."""
    counts = []
    for url in cluster.node_urls:
        node = redis.Redis.from_url(url)
        try:
            counts.append(sum(1 for _ in node.scan_iter(match=f"{namespace}:*", count=1000)))
        finally:
            node.close()
    return counts


def users_on_every_partition(keys: RedisKeys) -> list[str]:
    users: dict[int, str] = {}
    n = 0
    while len(users) < keys.partitions:
        users.setdefault(keys.partition_of(f"user{n}"), f"user{n}")
        n += 1
    return [users[p] for p in range(keys.partitions)]


# --- the URL --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("url", "problem"), [
    ("redis+cluster://", "names no cluster node"),
    ("redis+cluster://h:7000,,h:7001/", "an empty node between commas"),
    ("redis+cluster://h:70000/", "port must be a number from 1 to 65535"),
    ("redis+cluster://h:7000/3", "Redis Cluster has only database 0"),
    ("redis+cluster://:pw@:7000/", "has no host"),
    ("redis+cluster://h:7000/?timeout=1", "query options are not supported"),
])
def test_a_bad_cluster_url_is_named_with_its_problem(url: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem) as caught:
        connect(url)
    assert "pw" not in str(caught.value)
    with pytest.raises(ValueError, match=problem):
        connect_async(url)


def test_an_unreachable_cluster_is_a_connection_error_naming_it() -> None:
    url = f"redis+cluster://app:secret@127.0.0.1:{free_port()}/"
    with pytest.raises(redis.ConnectionError, match=r"Redis Cluster at redis\+cluster://app:\*\*\*@127\.0\.0\.1") as e:
        connect(url)
    assert "secret" not in str(e.value)


def test_the_cluster_url_lists_every_master(cluster: EmbeddedRedisCluster, redis_client: redis.RedisCluster) -> None:
    assert len(parse_cluster_url(cluster.url).nodes) == 3
    assert sorted(n.port for n in redis_client.get_primaries()) == sorted(n.port for n in cluster.nodes)
    assert redis_client.get_replicas() == []


# --- ingestion: a batch over several partitions -----------------------------------------------------------------------
def test_a_batch_over_every_partition_is_written_in_order_and_a_bad_batch_writes_nothing(
        cluster: EmbeddedRedisCluster, redis_client: redis.RedisCluster) -> None:
    settings = fresh_settings(cluster.url, partitions=4)
    keys = settings.keys
    users = users_on_every_partition(keys)
    masters = {redis_client.get_node_from_key(stream).port for stream in keys.streams()}
    assert len(masters) >= 2, "the partitions should span masters, else this test proves nothing about slots"
    batch = [{"user_id": users[k % len(users)], "item_id": f"i{k}", "type": "view", "ts": time.time() - 60 + k}
             for k in range(20)]
    server = LiveServer(settings).start()
    try:
        assert server.json("GET", "/readyz") == (200, {"status": "ready"})
        status, body = server.json("POST", "/v1/events", batch)
        assert status == 202 and body["accepted"] == 20
        # Each id is the entry of the event at the same index, in the stream of that event's user.
        for event, entry_id in zip(batch, body["ids"], strict=True):
            (_, fields), = redis_client.xrange(keys.stream_for_user(event["user_id"]), entry_id, entry_id)
            assert orjson.loads(fields[b"e"])["item_id"] == event["item_id"]
        lengths = {stream: redis_client.xlen(stream) for stream in keys.streams()}
        assert lengths == {keys.stream(p): 5 for p in range(4)}

        bad = [*batch[:7], {"user_id": users[0], "type": "view"}, *batch[8:12]]
        status, body = server.json("POST", "/v1/events", bad)
        assert status == 422 and body["error"]["index"] == 7
        assert {stream: redis_client.xlen(stream) for stream in keys.streams()} == lengths
    finally:
        server.stop()


def test_event_writer_splits_a_batch_by_partition_in_a_cluster(redis_client: redis.RedisCluster) -> None:
    keys = RedisKeys(f"t{uuid.uuid4().hex[:10]}", 4)
    users = users_on_every_partition(keys)
    events = [Event(users[k % 4], f"i{k}", "view", 1.7e9 + k) for k in range(12)]
    ids = EventWriter(redis_client, keys).append(events)
    assert len({(keys.stream_for_user(e.user_id), i) for e, i in zip(events, ids, strict=True)}) == 12
    for event, entry_id in zip(events, ids, strict=True):
        (_, fields), = redis_client.xrange(keys.stream_for_user(event.user_id), entry_id, entry_id)
        assert orjson.loads(fields[b"e"])["item_id"] == event.item_id


def test_the_sinks_batches_go_through_the_cluster_pipeline_to_every_slots_node(redis_client: redis.RedisCluster) -> None:
    batches = CommandBatches(redis_client)
    assert not batches.lean, "a cluster client routes each command to its slot's node: redis-py's cluster pipeline"
    names = [f"b{uuid.uuid4().hex[:8]}:{{u:{n}}}" for n in range(12)]  # hash tags spread over the three masters
    replies = batches.send([*[("SET", name, b"v", "EX", 60) for name in names], ("ZADD", names[0], 1.0, "m"),
                            ("DEL", f"{names[1]}:recs", f"{names[1]}:profile")])
    assert replies[:12] == [True] * 12 and replies[-1] == 0
    assert isinstance(replies[12], redis.ResponseError), "a refused command comes back in its place"
    assert [redis_client.get(name) for name in names] == [b"v"] * 12


def test_the_sink_erases_a_user_on_a_cluster(cluster: EmbeddedRedisCluster, redis_client: redis.RedisCluster) -> None:
    """An erase deletes the user's two keys in one DEL (one slot by their hash tag): a cluster pipeline's delete()
    refused it ("deleting multiple keys is not implemented"), which stopped the sink."""
    keys = RedisKeys(f"t{uuid.uuid4().hex[:10]}", 4)
    sink = RedisSink(cluster.url, SinkOptions(keys, 3600, 3600, 10, 100)).build("redis", 0, 1)
    try:
        sink.write_batch([UserListWrite("u1", [("i1", 1.0)], 1.7e9, 1_700_000_000_000, "s1", [("i1", 1.0, 1.7e9)])])
        assert redis_client.exists(keys.user_recs("u1"), keys.user_profile("u1")) == 2
        sink.write_batch([UserErasedWrite("u1")])
    finally:
        sink.close()
    assert redis_client.exists(keys.user_recs("u1"), keys.user_profile("u1")) == 0


def test_layout_check_and_readiness_work_on_a_cluster(cluster: EmbeddedRedisCluster) -> None:
    settings = fresh_settings(cluster.url, partitions=4)

    async def check(partitions: int) -> None:
        client = connect_async(cluster.url)
        try:
            await check_layout(client, Settings.from_env({}, redis_url=cluster.url, namespace=settings.namespace,
                                                         partitions=partitions))
        finally:
            await client.aclose()

    asyncio.run(check(4))
    asyncio.run(check(4))
    with pytest.raises(RuntimeError, match="was created with 4 partitions"):
        asyncio.run(check(3))


# --- the end-to-end scenario, on the cluster ------------------------------------------------------------------------------
def test_three_views_make_a_personal_list_within_a_second_on_a_cluster(
        system: tuple[str, str], redis_client: redis.RedisCluster, system_namespace: str,
        cluster: EmbeddedRedisCluster) -> None:
    e2e.test_three_views_make_a_personal_list_within_a_second(system, redis_client, system_namespace)
    # The keys really are spread: every master holds some (were the cluster bypassed, one node would hold all).
    per_master = keys_per_master(cluster, system_namespace)
    assert all(count > 0 for count in per_master), per_master
    assert sum(per_master) == sum(1 for _ in redis_client.scan_iter(match=f"{system_namespace}:*"))
    # ...and each where the slot map says: a key read from its master, not just anywhere.
    keys = RedisKeys(system_namespace, 2)
    owner = Counter(redis_client.get_node_from_key(keys.user_recs(f"old{u}")).port for u in range(30))
    assert len(owner) == 3, owner


def test_a_malformed_entry_is_dead_lettered_on_a_cluster(
        system: tuple[str, str], redis_client: redis.RedisCluster, system_namespace: str) -> None:
    e2e.test_malformed_stream_entry_is_dead_lettered_and_the_flow_goes_on(system, redis_client, system_namespace)


# --- an outage: a master goes away and comes back ------------------------------------------------------------------------
def test_a_lost_master_answers_503_and_the_server_recovers() -> None:
    with EmbeddedRedisCluster() as own:
        settings = fresh_settings(own.url, partitions=2)
        client = connect(own.url)
        server = LiveServer(settings).start()
        try:
            user = "someone"
            victim_port = client.get_node_from_key(settings.keys.user_recs(user)).port
            victim = next(n for n in own.nodes if n.port == victim_port)
            assert server.json("GET", f"/v1/users/{user}/recommendations")[0] == 200
            victim.process.kill()  # type: ignore[union-attr]
            victim.process.wait()  # type: ignore[union-attr]
            status, body = server.json("GET", f"/v1/users/{user}/recommendations")
            assert status == 503 and body["error"]["code"] == "redis_unavailable"
            assert server.json("GET", "/readyz")[0] == 503  # every master is pinged, not just one
            victim.start()  # same port and directory: it rejoins with its slots
            deadline = time.monotonic() + 15
            while server.json("GET", "/readyz")[0] != 200 or \
                    server.json("GET", f"/v1/users/{user}/recommendations")[0] != 200:
                assert time.monotonic() < deadline, "server did not recover after the master came back"
                time.sleep(0.1)
            for node in own.nodes:  # the whole cluster away: still a 503, not a 500
                node.process.kill()  # type: ignore[union-attr]
                node.process.wait()  # type: ignore[union-attr]
            status, body = server.json("GET", f"/v1/users/{user}/recommendations")
            assert status == 503 and body["error"]["code"] == "redis_unavailable"
        finally:
            server.stop()
            client.close()
