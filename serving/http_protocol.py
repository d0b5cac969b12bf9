"""livereco's HTTP/1.1 server protocol: httptools parsing, the app's routing called directly, one write per answer.

uvicorn's httptools protocol builds ASGI messages and sends each answer in
two socket writes (head, then body); on this API's small answers that was a
quarter of the server's CPU. This :class:`asyncio.Protocol` parses with
httptools (llhttp), hands each request to :meth:`serving.app.LiverecoApp.respond`
(which returns the status, body and headers instead of sending ASGI
messages) and writes the answer with one ``transport.write``. Keep-alive and
pipelining: requests on one connection are answered one at a time, in order.

The limits a public server needs, each answered in livereco's JSON error shape:

* **request timeout** (``LIVERECO_HTTP_REQUEST_TIMEOUT_S``): from a connection's
  start, or a request's first byte, the request (headers and body) must arrive
  within the limit. Headers late: 408 and close, here. Body late: the
  request's deadline is in the scope (:data:`serving.http.DEADLINE_KEY`), the
  handler reading the body answers 408 and closes; a connection still sending
  a body 1 s past the deadline is closed whatever the handler does.
* **idle keep-alive** (``LIVERECO_HTTP_KEEPALIVE_S``): an idle connection is closed.
* **connection limit** (``LIVERECO_HTTP_MAX_CONNECTIONS``): a request on a
  connection beyond the limit is answered 503 with ``Retry-After``, and closed.
* **header size** (:data:`MAX_HEADER_BYTES`, 16 KiB for the request line and
  all headers, as Node.js; :data:`MAX_HEADERS`, 100 lines): 431 and close.
* **malformed HTTP**: 400 and close.
* **back-pressure**: reading pauses while a connection has
  :data:`MAX_QUEUED` requests waiting or :data:`MAX_BUFFERED_BODY` body bytes
  nobody has read yet, and answering pauses while the socket's send buffer is full.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from email.utils import formatdate
from http import HTTPStatus
from typing import Any

import httptools

from online.contract import Settings
from serving.http import DEADLINE_KEY, HTTPError

__all__ = ["BODY_GRACE_S", "MAX_BUFFERED_BODY", "MAX_HEADERS", "MAX_HEADER_BYTES", "MAX_QUEUED", "HeadLimits",
           "HttpProtocol", "HttpServerState", "raw_error_answer", "too_many_connections"]

log = logging.getLogger("livereco.serving")

MAX_HEADER_BYTES = 16 * 1024
"""Most bytes of request line and headers (Node.js's default; nginx's is 8-32 KiB)."""
MAX_HEADERS = 100
"""Most header lines in a request."""
MAX_QUEUED = 32
"""Pipelined requests waiting on one connection before it stops reading."""
MAX_BUFFERED_BODY = 256 * 1024
"""Unread body bytes on one connection before it stops reading."""
BODY_GRACE_S = 1.0
_LINGER_S = 1.0
"""After answering a request with ``connection: close`` while its body still arrives, the rest is read and dropped
for up to this long before closing: closing with unread data resets the connection, and the client, still
sending, may never read the answer (nginx's lingering close)."""

Answer = tuple[int, bytes, bytes, list[tuple[bytes, bytes]] | None]
"""Status, body, content type, extra headers: what :meth:`serving.app.LiverecoApp.respond` returns."""
Respond = Callable[[MutableMapping[str, Any], Callable[[], Awaitable[MutableMapping[str, Any]]]], Awaitable[Answer]]

_STATUS_LINES = {status.value: b"HTTP/1.1 %d %s\r\n" % (status.value, status.phrase.encode()) for status in HTTPStatus}
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class HttpServerState:
    """What every connection of one server shares: the app, the settings, the open connections, the Date header."""

    def __init__(self, respond: Respond, settings: Settings, after_dispatch: Callable[[], None] | None = None):
        self.respond = respond
        self.settings = settings
        self.after_dispatch = after_dispatch
        """Called after a request's answering is started (its task scheduled): the app flushes its Redis reads after
        the task's first step, in the same loop turn (:meth:`serving.app.LiverecoApp.after_dispatch`)."""
        self.connections: set[HttpProtocol] = set()
        self._date_second = 0
        self._date = b""

    @property
    def date_header(self) -> bytes:
        """``date: ...\\r\\n``, formatted once a second."""
        now = int(time.time())
        if now != self._date_second:
            self._date_second = now
            self._date = b"date: " + formatdate(now, usegmt=True).encode() + b"\r\n"
        return self._date


class _Request:
    """One parsed request: its head, its body as it arrives, whether it has been answered."""

    __slots__ = ("answered", "body", "body_size", "complete", "continue_sent", "deadline", "expect_continue",
                 "headers", "keep_alive", "method", "refusal", "url", "waiter")

    def __init__(self, deadline: float):
        self.deadline = deadline
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.method = ""
        self.keep_alive = True
        self.body: list[bytes] = []
        self.body_size = 0
        self.complete = False
        self.answered = False
        self.expect_continue = False
        self.continue_sent = False
        self.refusal: HTTPError | None = None
        self.waiter: asyncio.Future[None] | None = None

    def wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)


class HeadLimits:
    """A connection's count of the request head (line and headers) against :data:`MAX_HEADER_BYTES` and
    :data:`MAX_HEADERS`, fed by the parser's callbacks; each check returns the error to refuse with, or ``None``.
    Both protocols (this module's and the uvicorn fallback, :mod:`serving.protocol`) count with it.

    >>> limits = HeadLimits(); limits.begin(); limits.on_url(b"/v1/healthz")
    >>> limits.on_header(b"host", b"x"), limits.on_complete(), limits.in_headers
    (None, None, False)
    >>> limits.begin(); [limits.on_header(b"a", b"b") for _ in range(MAX_HEADERS)][-1] is None
    True
    >>> limits.on_header(b"a", b"b").message
    'headers: more than 100 lines'
    """

    __slots__ = ("in_headers", "lines", "received", "size")

    def __init__(self) -> None:
        self.in_headers = True
        self.received = 0
        """Bytes received while the head was incomplete (a slow or endless head)."""
        self.size = 0
        """Bytes of request line and headers parsed (one large chunk)."""
        self.lines = 0

    def begin(self) -> None:
        """A request's first byte was parsed."""
        self.in_headers = True
        self.lines = self.size = 0

    def on_data(self, size: int) -> None:
        if self.in_headers:
            self.received += size

    def over_received(self) -> HTTPError | None:
        """After feeding the parser: the head still incomplete after too many bytes."""
        return _too_large(f"more than {MAX_HEADER_BYTES} bytes") \
            if self.in_headers and self.received > MAX_HEADER_BYTES else None

    def on_url(self, url: bytes) -> None:
        self.size += len(url)

    def on_header(self, name: bytes, value: bytes) -> HTTPError | None:
        self.lines += 1
        self.size += len(name) + len(value) + 4
        return _too_large(f"more than {MAX_HEADERS} lines") if self.lines > MAX_HEADERS else None

    def on_complete(self) -> HTTPError | None:
        """The head is parsed: too large, or the body comes next."""
        if self.size > MAX_HEADER_BYTES:
            return _too_large(f"more than {MAX_HEADER_BYTES} bytes")
        self.in_headers = False
        self.received = 0
        return None

    def late(self, timeout_s: float) -> HTTPError:
        """The 408 for a head that did not arrive within ``timeout_s``."""
        what = "the request's headers did not" if self.received else "no request did"
        return HTTPError(408, "request_timeout", f"request: {what} arrive within {timeout_s:g} s", field="request")


def _too_large(what: str) -> HTTPError:
    return HTTPError(431, "headers_too_large", f"headers: {what}", field="headers")


def too_many_connections() -> HTTPError:
    """The 503 for a request on a connection beyond ``LIVERECO_HTTP_MAX_CONNECTIONS``."""
    return HTTPError(503, "too_many_connections", "connections: this server process has as many open connections"
                     " as LIVERECO_HTTP_MAX_CONNECTIONS allows; retry shortly", retry_after_s=1, close=True)


def raw_error_answer(error: HTTPError) -> bytes:
    """A whole HTTP/1.1 answer for ``error``, closing the connection (no request object needed)."""
    body = error.body()
    head = [_STATUS_LINES[error.status] + b"content-type: application/json", b"content-length: %d" % len(body),
            b"connection: close"]
    head += [name + b": " + value for name, value in error.headers() if name != b"connection"]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


class HttpProtocol(asyncio.Protocol):
    """One client connection (see the module)."""

    def __init__(self, state: HttpServerState, loop: asyncio.AbstractEventLoop):
        self.state = state
        self.loop = loop
        settings = state.settings
        self.request_timeout_s = settings.http_request_timeout_s
        self.keepalive_s = settings.http_keepalive_s
        self.max_connections = settings.http_max_connections
        self.parser = httptools.HttpRequestParser(self)
        self.transport: Any = None
        self.client: tuple[str, int] | None = None
        self.queue: deque[_Request] = deque()
        self.parsing: _Request | None = None
        self.task: asyncio.Task[None] | None = None
        self.closing = False
        self.lingering = False
        self.reading_paused = False
        self.writable = True
        # One lazy timer per connection for both limits: a request sets a deadline (a float), the timer, when it
        # fires, acts on a deadline passed or sleeps until the next one (two timer calls per request cost ~5%).
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._deadline = 0.0  # the request's (0: none)
        self._idle_until = 0.0  # the idle keep-alive's (0: none)
        self._grace_timer: asyncio.TimerHandle | None = None
        self.head = HeadLimits()
        self._refusal: HTTPError | None = None  # set by a parser callback that stops the parse

    # --- asyncio.Protocol -----------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.client = (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) and len(peer) >= 2 else None
        self.state.connections.add(self)
        self._arm()  # a connection that never sends a request is closed too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.state.connections.discard(self)
        self._stop_timers()
        for request in (self.parsing, *self.queue):
            if request is not None:
                request.wake()
        self.queue.clear()

    def pause_writing(self) -> None:
        self.writable = False

    def resume_writing(self) -> None:
        self.writable = True
        self._next()

    def data_received(self, data: bytes) -> None:
        self._idle_until = 0.0
        self.head.on_data(len(data))
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            pass  # no protocol upgrades: the request is answered as a plain one
        except httptools.HttpParserError as exc:
            self._refuse(self._refusal or HTTPError(400, "bad_request", f"request: not valid HTTP/1.1 ({exc})",
                                                    field="request"))
            return
        refusal = self.head.over_received()
        if refusal is not None and not self.closing:
            self._refuse(refusal)

    # --- the request deadline and the idle keep-alive -------------------------------------------------
    def _wake_at(self, when: float) -> None:
        """Make sure the timer fires by ``when`` (it may fire earlier and sleep again)."""
        if self._timer is None or self._timer_at > when:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self.loop.call_at(when, self._on_timer)
            self._timer_at = when

    def _on_timer(self) -> None:
        self._timer = None
        if self.closing:
            return
        now = self.loop.time()
        if self._deadline and now >= self._deadline:
            self._deadline = 0.0
            self._deadline_passed()
        elif self._idle_until and now >= self._idle_until:
            self.close()
            return
        pending = [t for t in (self._deadline, self._idle_until) if t]
        if pending and not self.closing:
            self._wake_at(min(pending))

    def _arm(self) -> None:
        deadline = self.loop.time() + self.request_timeout_s
        self._deadline = deadline
        self._wake_at(deadline)

    def _disarm(self) -> None:
        self._deadline = 0.0

    def _stop_timers(self) -> None:
        self._deadline = self._idle_until = 0.0
        for timer in (self._timer, self._grace_timer):
            if timer is not None:
                timer.cancel()
        self._timer = self._grace_timer = None

    def _deadline_passed(self) -> None:
        if self.head.in_headers:
            self._refuse(self.head.late(self.request_timeout_s))
            return
        request = self.parsing
        if request is None or request.answered:
            self.close()  # answered already; the rest of the body is not worth reading
            return
        request.keep_alive = False  # the handler answers 408 (serving.http.read_body); if it does not, close anyway
        self._grace_timer = self.loop.call_later(BODY_GRACE_S, self._close_late_body)

    def _close_late_body(self) -> None:
        self._grace_timer = None
        if self.parsing is not None and not self.parsing.complete:
            self.close()

    def _refuse(self, error: HTTPError) -> None:
        """Answer ``error`` at once (whatever is pending is not answered) and close."""
        if self.closing:
            return
        self.transport.write(raw_error_answer(error))
        self.close()

    def close(self) -> None:
        if not self.closing:
            self.closing = True
            self._stop_timers()
            self.transport.close()

    def _stop_parse(self, error: HTTPError) -> None:
        self._refusal = error
        raise httptools.HttpParserError(error.message)  # data_received answers it

    # --- parser callbacks ------------------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._arm()
        self.head.begin()
        self.parsing = _Request(self._deadline)

    def on_url(self, url: bytes) -> None:
        self.head.on_url(url)
        request = self.parsing
        assert request is not None
        request.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        refusal = self.head.on_header(name, value)
        if refusal is not None:
            self._stop_parse(refusal)
        request = self.parsing
        assert request is not None
        name = name.lower()
        if name == b"expect" and value.lower() == b"100-continue":
            request.expect_continue = True
        request.headers.append((name, value))

    def on_headers_complete(self) -> None:
        refusal = self.head.on_complete()
        if refusal is not None:
            self._stop_parse(refusal)
        request = self.parsing
        assert request is not None
        parser = self.parser
        request.method = parser.get_method().decode("ascii")
        request.keep_alive = parser.should_keep_alive()
        if len(self.state.connections) > self.max_connections:
            request.refusal = too_many_connections()
        self.queue.append(request)
        if len(self.queue) >= MAX_QUEUED:
            self._pause_reading()
        if self.task is None:
            self._next()

    def on_body(self, body: bytes) -> None:
        request = self.parsing
        if request is None or request.answered:
            return  # an answered request's unread body is dropped
        request.body.append(body)
        request.body_size += len(body)
        if request.body_size > MAX_BUFFERED_BODY:
            self._pause_reading()
        request.wake()

    def on_message_complete(self) -> None:
        self._disarm()
        self.head.in_headers = True  # whatever comes next is the next request's head
        request = self.parsing
        if request is not None:
            request.complete = True
            request.wake()
        self.parsing = None
        if self.lingering:
            self.close()  # the rest of an answered request's body has arrived

    # --- answering -------------------------------------------------------------------------------------
    def _pause_reading(self) -> None:
        if not self.reading_paused and not self.closing:
            self.reading_paused = True
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if self.reading_paused and not self.closing:
            self.reading_paused = False
            self.transport.resume_reading()

    def _next(self) -> None:
        """Start answering the first waiting request, if the connection can take an answer."""
        if self.task is not None or not self.queue or not self.writable or self.closing or self.lingering:
            if not self.queue and self.task is None and not self.closing and self.parsing is None:
                self._idle_until = idle_until = self.loop.time() + self.keepalive_s
                self._wake_at(idle_until)
            return
        request = self.queue[0]
        self.task = self.loop.create_task(self._answer(request))
        after_dispatch = self.state.after_dispatch
        if after_dispatch is not None:
            after_dispatch()

    async def _answer(self, request: _Request) -> None:
        headers: list[tuple[bytes, bytes]] | None
        try:
            if request.refusal is not None:
                error = request.refusal
                status, body, content_type, headers = error.status, error.body(), b"application/json", error.headers()
            else:
                url = request.url
                raw_path, _, query = url.partition(b"?")
                if not raw_path.startswith(b"/"):  # absolute form: http://host/path
                    parsed = httptools.parse_url(url)
                    raw_path, query = parsed.path or b"/", parsed.query or b""
                scope = {"type": "http", "method": request.method, "raw_path": raw_path, "query_string": query,
                         "headers": request.headers, "client": self.client, DEADLINE_KEY: request.deadline}

                async def receive() -> MutableMapping[str, Any]:
                    return await self._receive(request)

                status, body, content_type, headers = await self.state.respond(scope, receive)
        except Exception:  # a bug here, not in a handler (respond answers those): close the connection
            log.exception("unexpected error answering on a connection")
            self.task = None
            self.close()
            return
        self._write(request, status, body, content_type, headers)
        self.task = None
        if self.queue and self.queue[0] is request:
            self.queue.popleft()
        if len(self.queue) < MAX_QUEUED // 2 and (self.parsing is None or self.parsing.body_size <= MAX_BUFFERED_BODY):
            self._resume_reading()
        self._next()

    def _write(self, request: _Request, status: int, body: bytes, content_type: bytes,
               headers: list[tuple[bytes, bytes]] | None) -> None:
        request.answered = True
        if self.closing:
            return
        keep_alive = request.keep_alive and (request.complete or self.parsing is request)
        head = [_STATUS_LINES.get(status) or b"HTTP/1.1 %d \r\n" % status, b"content-type: ", content_type,
                b"\r\ncontent-length: %d\r\n" % len(body), self.state.date_header]
        if headers:
            for name, value in headers:
                if name == b"connection":
                    keep_alive = keep_alive and value != b"close"
                    continue
                head += (name, b": ", value, b"\r\n")
        if not keep_alive:
            head.append(b"connection: close\r\n")
        head.append(b"\r\n")
        if request.method != "HEAD":
            head.append(body)
        self.transport.write(b"".join(head))
        if not keep_alive:
            if request.complete or self.parsing is not request:
                self.close()
            else:
                self._linger(request)
        elif not request.complete:
            request.body.clear()  # the rest of the body is read and dropped; the next request follows it

    def _linger(self, request: _Request) -> None:
        """Read and drop the rest of ``request``'s body (up to :data:`_LINGER_S`), then close."""
        self.lingering = True
        request.body.clear()
        self._resume_reading()
        if self._grace_timer is not None:
            self._grace_timer.cancel()
        self._grace_timer = self.loop.call_later(_LINGER_S, self.close)

    async def _receive(self, request: _Request) -> MutableMapping[str, Any]:
        """The ASGI ``receive`` of a request's body: its chunks as they arrive, or ``http.disconnect``."""
        if request.expect_continue and not request.continue_sent and not request.complete and not self.closing:
            request.continue_sent = True
            self.transport.write(_CONTINUE)
        while not request.body and not request.complete and not self.closing:
            request.waiter = self.loop.create_future()
            self._resume_reading()
            await request.waiter
            request.waiter = None
        if self.closing and not request.complete:
            return {"type": "http.disconnect"}
        body = b"".join(request.body)
        request.body.clear()
        request.body_size = 0
        if len(self.queue) < MAX_QUEUED // 2:
            self._resume_reading()
        return {"type": "http.request", "body": body, "more_body": not request.complete}

    # --- shutdown ------------------------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Close when idle: now, or after the answer in progress."""
        if self.task is None and not self.queue:
            self.close()
        else:
            for request in self.queue:
                request.keep_alive = False
