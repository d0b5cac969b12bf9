"""The impression records' writes leave with the next requests' reads, through the real server and a Redis of its own.

Each list answer's impression (an XADD nobody waits for) used to leave in a
socket write of its own, the loop turn after the answer, and its reply woke
the server on its own: two writes to Redis and two reply wake-ups a request
at 5,000 req/s. Now it waits for the next request's reads (or 1 ms), so a run
of requests costs Redis one read event per request, and every impression is
still recorded, in order, before an event posted after it.
"""

from __future__ import annotations

import socket
import time

import orjson
import redis

from flows.embedded_redis import EmbeddedRedis
from online.contract import CandidateList, Settings, encode_candidates
from online.contract.control import CONTROL_FIELD
from tests.conftest import LiveServer

REQUESTS = 60


def _read_events(client: redis.Redis) -> int:
    return int(client.info("stats")["total_reads_processed"])


def _answers(sock: socket.socket, count: int) -> list[bytes]:
    """``count`` HTTP answers (content-length framed) from ``sock``."""
    buffer, bodies = b"", []
    while len(bodies) < count:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection"
        buffer += chunk
        while True:
            head, sep, rest = buffer.partition(b"\r\n\r\n")
            if not sep:
                break
            length = int(next(line.split(b":", 1)[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:")))
            if len(rest) < length:
                break
            assert head.startswith(b"HTTP/1.1 200"), head
            bodies.append(rest[:length])
            buffer = rest[length:]
    return bodies


def test_impressions_share_the_reads_writes_and_all_arrive() -> None:
    with EmbeddedRedis() as own:
        settings = Settings.from_env({}, redis_url=own.url, namespace="writes")
        keys = settings.keys
        client = redis.Redis.from_url(own.url)
        for u in range(REQUESTS):
            client.set(keys.user_recs(f"u{u}"), encode_candidates(CandidateList([f"p{u}", "q"], [1.0, 0.5])))
        server = LiveServer(settings).start()
        try:
            status, _ = server.json("GET", "/v1/users/u0/recommendations?n=2")  # connections open, caches warm
            assert status == 200
            time.sleep(0.3)
            request = b"GET /v1/users/u%d/recommendations?n=2 HTTP/1.1\r\nhost: t\r\n\r\n"
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
                before = _read_events(client)
                # pipelined: each request is answered before the next is read from the buffer, one per loop turn
                sock.sendall(b"".join(request % u for u in range(REQUESTS)))
                bodies = _answers(sock, REQUESTS)
                reads = _read_events(client) - before
            rec_ids = [orjson.loads(body)["rec_id"] for body in bodies]
            assert [orjson.loads(body)["items"][0]["item_id"] for body in bodies] == [f"p{u}" for u in range(REQUESTS)]
            # before: the reads, then the impression alone, each request (2 read events a request)
            assert reads < 1.5 * REQUESTS, f"{reads} read events for {REQUESTS} requests"
            print(f"{reads} Redis read events for {REQUESTS} requests")

            # the last impression has no reads after it: it leaves within its 1 ms
            deadline = time.monotonic() + 2.0
            served: list[str] = []
            while time.monotonic() < deadline and not set(rec_ids) <= set(served):
                served = [orjson.loads(fields[CONTROL_FIELD.encode()])["rec_id"]
                          for stream in keys.streams() for _, fields in client.xrange(stream)]
                time.sleep(0.01)
            assert set(rec_ids) <= set(served)

            # an event posted right after an answer reaches the stream after that answer's impression
            status, _, body = server.request("GET", "/v1/users/u1/recommendations?n=2")
            last = orjson.loads(body)["rec_id"]
            status, answer = server.json("POST", "/v1/events", {"user_id": "u1", "item_id": "p1", "type": "click",
                                                                "rec_id": last})
            assert status == 202, answer
            entries = client.xrange(keys.stream_for_user("u1"))
            kinds = [orjson.loads(f[CONTROL_FIELD.encode()])["rec_id"] if CONTROL_FIELD.encode() in f else "event"
                     for _, f in entries]
            assert kinds[-2:] == [last, "event"], kinds[-3:]
        finally:
            server.stop()
            client.close()
