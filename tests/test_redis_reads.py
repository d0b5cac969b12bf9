"""The server's multiplexed reader: a read every request makes is sent once per event-loop turn and shared."""

from __future__ import annotations

import asyncio

import redis

from serving.redis_reads import FastReads, fast_reads_for


def test_the_requests_of_one_turn_share_one_trending_read(redis_url: str, redis_client: redis.Redis) -> None:
    redis_client.set("rr:a", b"1")
    redis_client.set("rr:b", b"2")
    redis_client.zadd("rr:t", {"x": 2.0, "y": 1.0})
    shared = ("ZREVRANGE", "rr:t", 0, 9, "WITHSCORES")

    async def main() -> None:
        reads = fast_reads_for(redis_url)
        assert isinstance(reads, FastReads)
        try:
            (a, ta), (b, tb) = await asyncio.gather(reads.read_with_shared(("GET", "rr:a"), shared),
                                                    reads.read_with_shared(("GET", "rr:b"), shared))
            assert (a, b) == (b"1", b"2") and ta == [b"x", b"2", b"y", b"1"] and ta is tb  # one read, one reply
            redis_client.zadd("rr:t", {"z": 3.0})
            _, later = await reads.read_with_shared(("GET", "rr:a"), shared)  # a later turn reads again
            assert later is not ta and later[0] == b"z"
            assert reads._connection is not None
            host, port = reads._connection.transport.get_extra_info("sockname")[:2]
            redis_client.client_kill_filter(_id=None, addr=f"{host}:{port}")  # the connection drops: retried once
            assert (await reads.read_with_shared(("GET", "rr:b"), shared))[0] == b"2"
        finally:
            await reads.aclose()

    asyncio.run(main())
