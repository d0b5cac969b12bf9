"""livereco's HTTP protocol on a fake transport: one write per answer, answers in request order, limits."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from typing import Any

from online.contract import Settings
from serving.http_protocol import HttpProtocol, HttpServerState


class FakeTransport:
    """Records writes; pause/resume/close as flags."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False
        self.paused = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def get_extra_info(self, name: str) -> Any:
        return ("127.0.0.1", 5555) if name == "peername" else None


async def echo(scope: MutableMapping[str, Any], receive: Any) -> tuple[int, bytes, bytes, list[tuple[bytes, bytes]]]:
    """Answers the path; a body, if any, after it; a slow answer for /slow (so later answers must wait)."""
    if scope["raw_path"] == b"/slow":
        await asyncio.sleep(0.05)
    body = b""
    if scope["method"] == "POST":
        message = await receive()
        body = message["body"]
    return 200, scope["raw_path"] + b" " + body, b"text/plain", []


def connect(respond: Any = echo) -> tuple[HttpProtocol, FakeTransport]:
    settings = Settings.from_env({}, redis_url="redis://127.0.0.1:1/0", flow_metrics_port=0)
    protocol = HttpProtocol(HttpServerState(respond, settings), asyncio.get_running_loop())
    transport = FakeTransport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    return protocol, transport


def test_each_answer_is_one_write_and_pipelined_answers_keep_their_order() -> None:
    async def main() -> None:
        protocol, transport = connect()
        protocol.data_received(b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\nGET /fast HTTP/1.1\r\nhost: x\r\n\r\n"
                               b"POST /post HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\nhello")
        for _ in range(50):
            await asyncio.sleep(0.01)
            if len(transport.writes) == 3:
                break
        assert len(transport.writes) == 3  # three answers, one write each
        heads = [write.split(b"\r\n", 1)[0] for write in transport.writes]
        assert heads == [b"HTTP/1.1 200 OK"] * 3
        assert [write.rsplit(b"\r\n\r\n", 1)[1] for write in transport.writes] == [b"/slow ", b"/fast ", b"/post hello"]
        assert b"content-length: 6\r\n" in transport.writes[0] and not transport.closed
        protocol.connection_lost(None)

    asyncio.run(main())


def test_malformed_and_oversized_requests_are_refused_in_json_and_closed() -> None:
    async def main() -> None:
        protocol, transport = connect()
        protocol.data_received(b"\x00\x01 nonsense\r\n\r\n")
        assert transport.closed and transport.writes[0].startswith(b"HTTP/1.1 400 Bad Request\r\n")
        assert b'"code":"bad_request"' in transport.writes[0]
        protocol, transport = connect()
        protocol.data_received(b"GET / HTTP/1.1\r\n" + b"".join(b"x-h%d: 1\r\n" % k for k in range(101)) + b"\r\n")
        assert transport.closed and transport.writes[0].startswith(b"HTTP/1.1 431 ")

    asyncio.run(main())


def test_an_error_that_closes_reads_the_rest_of_the_body_first() -> None:
    async def refuse(scope: Any, receive: Any) -> tuple[int, bytes, bytes, list[tuple[bytes, bytes]]]:
        return 413, b"{}", b"application/json", [(b"connection", b"close")]

    async def main() -> None:
        protocol, transport = connect(refuse)
        protocol.data_received(b"POST /v1/events HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\nabc")
        await asyncio.sleep(0.01)
        assert len(transport.writes) == 1 and b"connection: close\r\n" in transport.writes[0]
        assert not transport.closed  # still reading the body the client is sending
        protocol.data_received(b"defghij")
        assert transport.closed  # the whole body arrived: now closed

    asyncio.run(main())
