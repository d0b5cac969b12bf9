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


class _Turns:
    """Counts event-loop turns (a callback that reschedules itself runs once a turn) and the turn of each Redis write."""

    def __init__(self, reads: FastReads) -> None:
        self.turn = 0
        self.writes: list[tuple[int, bytes]] = []
        self.running = True
        connection = reads._connection
        assert connection is not None
        transport = connection.transport
        write = transport.write

        def recorded(data: bytes) -> None:
            self.writes.append((self.turn, bytes(data)))
            write(data)

        connection.transport = type("Recorded", (), {"write": staticmethod(recorded),
                                                     "close": staticmethod(transport.close)})()
        asyncio.get_running_loop().call_soon(self.tick)

    def tick(self) -> None:
        self.turn += 1
        if self.running:
            asyncio.get_running_loop().call_soon(self.tick)


def test_a_request_s_reads_and_its_impression_leave_in_the_turn_it_runs(redis_url: str,
                                                                        redis_client: redis.Redis) -> None:
    """The HTTP protocol starts a request's task, then asks for the flush (``flush_after_ready``): the task's reads
    are written in the turn its first step runs, not the turn after; a reply that wakes it has its writes (the
    impression record, posted) leave in the turn it runs again. The post's reply reaches its callback."""
    redis_client.set("rr:a", b"1")
    redis_client.zadd("rr:t", {"x": 2.0})
    shared = ("ZREVRANGE", "rr:t", 0, 9, "WITHSCORES")

    async def main() -> None:
        reads = fast_reads_for(redis_url)
        assert isinstance(reads, FastReads)
        try:
            await reads.execute_command("PING")  # the connection is open
            turns = _Turns(reads)
            steps: list[int] = []
            replied: list[object] = []

            async def request() -> None:
                steps.append(turns.turn)
                await reads.read_with_shared(("GET", "rr:a"), shared)
                steps.append(turns.turn)
                assert reads.post(b"*2\r\n$4\r\nINCR\r\n$4\r\nrr:n\r\n", lambda replies, error: replied.append(
                    (replies, error)))

            task = asyncio.get_running_loop().create_task(request())
            reads.flush_after_ready()
            await task
            while not replied:
                await asyncio.sleep(0.001)
            turns.running = False
            assert [turn for turn, _ in turns.writes] == steps  # each write in the turn of the step that made it
            assert b"GET" in turns.writes[0][1] and b"INCR" in turns.writes[1][1]
            assert replied == [([1], None)] and redis_client.get("rr:n") == b"1"
        finally:
            await reads.aclose()

    asyncio.run(main())


def test_a_posted_command_s_callback_hears_of_a_lost_connection(redis_url: str, redis_client: redis.Redis) -> None:
    async def main() -> None:
        reads = fast_reads_for(redis_url)
        assert isinstance(reads, FastReads)
        assert not reads.post(b"*1\r\n$4\r\nPING\r\n", lambda replies, error: None)  # no connection yet: not sent
        await reads.execute_command("PING")
        outcomes: list[tuple[object, object]] = []
        assert reads.post(b"*3\r\n$5\r\nBLPOP\r\n$5\r\nrr:no\r\n$1\r\n0\r\n",
                          lambda replies, error: outcomes.append((replies, error)))
        await reads.aclose()  # closed before Redis answers
        assert len(outcomes) == 1 and outcomes[0][0] is None and isinstance(outcomes[0][1], redis.ConnectionError)

    asyncio.run(main())
