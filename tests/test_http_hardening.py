"""HTTP limits on the real protocol (serving.protocol): timeouts, connection and header limits, content types,
one JSON error shape, emoji ids end to end, and metrics that no client can grow."""

from __future__ import annotations

import random
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator

import orjson
import pytest
import redis
import uvicorn

from flows.embedded_redis import free_port
from online.contract import Settings
from serving.app import LiverecoApp
from serving.http_protocol import MAX_HEADER_BYTES
from serving.protocol import LiverecoHttpProtocol
from tests.conftest import LiveServer

VIEW = {"user_id": "u1", "item_id": "i1", "type": "view"}


class UvicornServer(LiveServer):
    """LiveServer on the fallback stack (``LIVERECO_HTTP_SERVER=uvicorn``): uvicorn with serving.protocol."""

    def __init__(self, settings: Settings):  # same fields as LiveServer, a uvicorn server
        self.port = free_port()
        self.app = LiverecoApp(settings, redis_wait_s=5.0)
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, loop="asyncio",
                                http=LiverecoHttpProtocol.configured(settings), lifespan="on", access_log=False,
                                log_level="warning", timeout_keep_alive=settings.http_keepalive_s)  # type: ignore[arg-type]
        self.server = uvicorn.Server(config)  # type: ignore[assignment]
        self.thread = threading.Thread(target=self.server.run, daemon=True)


@pytest.fixture(params=["livereco", "uvicorn"])
def hardened(request: pytest.FixtureRequest, redis_url: str, namespace: str) -> Iterator[LiveServer]:
    """The server as ``livereco serve`` runs it (livereco's protocol), and on the uvicorn fallback."""
    settings = Settings.from_env({}, redis_url=redis_url, namespace=namespace, partitions=2, flow_metrics_port=0,
                                 http_request_timeout_s=1.0, http_keepalive_s=0.5, http_max_connections=4)
    server = LiveServer(settings) if request.param == "livereco" else UvicornServer(settings)
    server.start()
    yield server
    server.stop()


def raw(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    return sock


def read_all(sock: socket.socket) -> tuple[bytes, float]:
    """Everything the server sends until it closes; and when it closed."""
    chunks = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return b"".join(chunks), time.monotonic()
        chunks.append(chunk)


def parse(answer: bytes) -> tuple[int, dict[str, str], dict]:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, orjson.loads(body)


def test_slow_headers_get_408_and_the_connection_closes(hardened: LiveServer) -> None:
    sock = raw(hardened.port)
    started = time.monotonic()
    sock.sendall(b"POST /v1/events HTTP/1.1\r\nhost: x\r\n")  # and never the rest
    answer, closed = read_all(sock)
    status, headers, body = parse(answer)
    assert status == 408 and headers["connection"] == "close"
    assert body["error"]["code"] == "request_timeout" and body["error"]["field"] == "request"
    assert 0.9 < closed - started < 3.0
    silent = raw(hardened.port)  # a connection that never sends anything is closed too
    assert parse(read_all(silent)[0])[0] == 408


def test_a_body_sent_one_byte_at_a_time_is_cut_off(hardened: LiveServer, redis_client: redis.Redis) -> None:
    body = orjson.dumps([VIEW] * 3)
    sock = raw(hardened.port)
    started = time.monotonic()
    sock.sendall(b"POST /v1/events HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                 b"content-length: %d\r\n\r\n" % len(body))
    sock.settimeout(0.3)
    answer = b""
    for byte in body:  # ~3 bytes/s: the whole body would take ~15 s
        try:
            sock.sendall(bytes([byte]))
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except OSError:
            break
        if not chunk:
            break
        answer += chunk
        if b"\r\n\r\n" in answer and answer.endswith(b"}}"):
            break
    elapsed = time.monotonic() - started
    status, headers, error = parse(answer)
    assert status == 408 and headers["connection"] == "close" and error["error"]["field"] == "body"
    assert elapsed < 3.0
    assert sum(redis_client.xlen(k) for k in hardened.app.keys.streams()) == 0


def test_idle_keep_alive_connections_close(hardened: LiveServer) -> None:
    sock = raw(hardened.port)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
    started = time.monotonic()
    answer, closed = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 200") and 0.4 < closed - started < 2.0


def test_connections_beyond_the_limit_get_503_with_retry_after(hardened: LiveServer) -> None:
    held = [raw(hardened.port) for _ in range(4)]
    time.sleep(0.1)
    extra = raw(hardened.port)
    extra.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
    status, headers, body = parse(read_all(extra)[0])
    assert status == 503 and headers["retry-after"] == "1" and body["error"]["code"] == "too_many_connections"
    for sock in held:
        sock.close()
    time.sleep(0.1)
    assert hardened.json("GET", "/healthz")[0] == 200


def test_oversized_and_malformed_heads_get_json_errors(hardened: LiveServer) -> None:
    sock = raw(hardened.port)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: " + b"a" * (MAX_HEADER_BYTES + 10) + b"\r\n\r\n")
    status, headers, body = parse(read_all(sock)[0])
    assert status == 431 and headers["connection"] == "close"
    assert body["error"]["field"] == "headers"
    sock = raw(hardened.port)
    sock.sendall(b"GET /healthz HTTP/1.1\r\n" + b"".join(b"x-h%d: 1\r\n" % k for k in range(150)) + b"\r\n")
    assert parse(read_all(sock)[0])[0] == 431
    sock = raw(hardened.port)
    sock.sendall(b"\x00\x01 nonsense\r\n\r\n")
    status, _, body = parse(read_all(sock)[0])
    assert status == 400 and body["error"]["code"] == "bad_request"


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", "application/json; charset=latin-1"])
def test_posts_that_are_not_json_get_415(hardened: LiveServer, redis_client: redis.Redis,
                                         content_type: str | None) -> None:
    headers = {} if content_type is None else {"content-type": content_type}
    status, _, raw_body = hardened.request("POST", "/v1/events", orjson.dumps(VIEW), headers)
    error = orjson.loads(raw_body)["error"]
    assert status == 415 and error["field"] == "content-type" and error["code"] == "unsupported_media_type"
    assert sum(redis_client.xlen(k) for k in hardened.app.keys.streams()) == 0
    ok = hardened.request("POST", "/v1/events", orjson.dumps(VIEW), {"content-type": "Application/JSON; charset=UTF-8"})
    assert ok[0] == 202


def test_emoji_ids_with_skin_tones_and_zwj_sequences_round_trip(hardened: LiveServer,
                                                                redis_client: redis.Redis) -> None:
    user, item = "👩🏽‍💻", "👨‍👩‍👧‍👦"
    status, body = hardened.json("POST", "/v1/events", {"user_id": user, "item_id": item, "type": "view",
                                                        "context": {"category": "🧑🏿‍🚀"}})
    assert status == 202, body
    (entry,) = redis_client.xrange(hardened.app.keys.stream_for_user(user))
    stored = orjson.loads(entry[1][b"e"])
    assert (stored["user_id"], stored["item_id"], stored["context"]["category"]) == (user, item, "🧑🏿‍🚀")
    status, answer = hardened.json("GET", f"/v1/users/{urllib.parse.quote(user)}/recommendations")
    assert status == 200 and answer["user_id"] == user


def series(text: bytes) -> set[str]:
    return {line.rsplit(" ", 1)[0] for line in text.decode().splitlines() if line and not line.startswith("#")}


def test_client_input_cannot_grow_the_metrics(hardened: LiveServer) -> None:
    before = series(hardened.request("GET", "/metrics")[2])
    rng = random.Random(7)
    methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "PROPFIND", "PURGE", "MKCOL"]
    for k in range(1000):
        name = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz_.") for _ in range(rng.randint(1, 20)))
        if k % 2:
            status, _ = hardened.json("POST", "/v1/events", {**VIEW, name: 1})
            assert status == 422
        else:
            path = "/" + "/".join(urllib.parse.quote(name) for _ in range(rng.randint(1, 4)))
            status, _, _ = hardened.request(rng.choice(methods), rng.choice([path, "/v1/events", "/v1/trending"]))
            assert status < 500
    after = series(hardened.request("GET", "/metrics")[2])
    assert after <= before, sorted(after - before)[:10]
    text = hardened.request("GET", "/metrics")[2].decode()
    assert 'livereco_serving_events_rejected_total{field="unknown_field"} 500.0' in text


def read_answers(sock: socket.socket, count: int) -> list[tuple[int, dict[str, str], bytes]]:
    """``count`` answers read off a keep-alive connection (by their content-length)."""
    buffer, answers = b"", []
    while len(answers) < count:
        end = buffer.find(b"\r\n\r\n")
        if end >= 0:
            lines = buffer[:end].decode("latin-1").split("\r\n")
            headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
            length = int(headers.get("content-length", "0"))
            if len(buffer) >= end + 4 + length:
                answers.append((int(lines[0].split()[1]), headers, buffer[end + 4:end + 4 + length]))
                buffer = buffer[end + 4 + length:]
                continue
        chunk = sock.recv(65536)
        assert chunk, f"closed after {len(answers)} answers"
        buffer += chunk
    return answers


def test_pipelined_requests_are_answered_in_order_on_one_connection(hardened: LiveServer) -> None:
    sock = raw(hardened.port)
    body = orjson.dumps(VIEW)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n"
                 b"GET /v1/trending?n=3 HTTP/1.1\r\nhost: x\r\n\r\n"
                 b"POST /v1/events HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                 b"GET /nowhere HTTP/1.1\r\nhost: x\r\n\r\n"
                 b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n" % (len(body), body))
    answers = read_answers(sock, 5)
    assert [status for status, _, _ in answers] == [200, 200, 202, 404, 200]
    assert orjson.loads(answers[0][2]) == {"status": "ok"} and "items" in orjson.loads(answers[1][2])
    assert all(headers.get("connection") != "close" for _, headers, _ in answers)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")  # the same connection, again
    answer, _ = read_all(sock)
    status, headers, _ = parse(answer)
    assert status == 200 and headers["connection"] == "close"


def test_expect_100_continue_head_and_http_1_0(hardened: LiveServer) -> None:
    body = orjson.dumps(VIEW)
    sock = raw(hardened.port)
    sock.sendall(b"POST /v1/events HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nexpect: 100-continue\r\n"
                 b"content-length: %d\r\n\r\n" % len(body))
    assert sock.recv(65536).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")  # the client may send the body now
    sock.sendall(body)
    assert read_answers(sock, 1)[0][0] == 202
    sock.sendall(b"HEAD /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
    time.sleep(0.2)
    status, headers, rest = parse_head(sock)
    assert status in (200, 405) and "content-length" in headers and rest == b""  # no body after a HEAD's head
    sock = raw(hardened.port)
    sock.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")  # HTTP/1.0 without keep-alive: answered, then closed
    status, _, payload = parse(read_all(sock)[0])
    assert status == 200 and payload == {"status": "ok"}


def parse_head(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """An answer to HEAD: headers only, whatever content-length says."""
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(65536)
        assert chunk
        head += chunk
    top, _, rest = head.partition(b"\r\n\r\n")
    lines = top.decode("latin-1").split("\r\n")
    return int(lines[0].split()[1]), {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}, rest
