"""uvicorn's httptools protocol with the limits a public HTTP server needs, all answered in livereco's JSON shape.

The fallback server (``LIVERECO_HTTP_SERVER=uvicorn``); ``livereco serve``
runs :mod:`serving.http_protocol` by default, which keeps the same limits.

uvicorn (0.55) bounds neither how long a client may take to send a request nor
how large its headers may be (``h11_max_incomplete_event_size`` exists only for
the h11 stack; httptools/llhttp has no size option), and its
``limit_concurrency`` answers a plain-text 503 without ``Retry-After``. This
subclass of its :class:`HttpToolsProtocol` adds, per connection:

* **request timeout** (``LIVERECO_HTTP_REQUEST_TIMEOUT_S``): from a connection's
  start, or a request's first byte, the request (headers and body) must arrive
  within the limit. Headers late: 408 and close, here. Body late: the request's
  deadline is in the scope (:data:`serving.http.DEADLINE_KEY`), the handler
  reading the body answers 408 and closes; a connection still sending a body 1 s
  past the deadline is closed whatever the handler does. A body trickled at one
  byte a second is cut off.
* **idle keep-alive** (``LIVERECO_HTTP_KEEPALIVE_S``): uvicorn's own timer.
* **connection limit** (``LIVERECO_HTTP_MAX_CONNECTIONS``): a request on a
  connection beyond the limit is answered 503 with ``Retry-After`` and the
  connection closed (it still costs a socket and a parse, as uvicorn's does).
* **header size** (:data:`MAX_HEADER_BYTES`, 16 KiB for the request line and
  all headers, as Node.js; :data:`MAX_HEADERS`, 100 lines): 431 and close.
* **malformed HTTP**: 400 in the JSON shape instead of uvicorn's plain text.

``http="serving.protocol:LiverecoHttpProtocol"`` selects it; its settings come
from the environment (as every worker process's do), or from :meth:`configured`
in tests.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from online.contract import Settings
from serving.http import DEADLINE_KEY, HTTPError, Receive, Scope, Send
from serving.http_protocol import (  # the same limits and error answers as livereco's protocol
    BODY_GRACE_S,
    MAX_HEADER_BYTES,
    MAX_HEADERS,
    HeadLimits,
    raw_error_answer,
    too_many_connections,
)

__all__ = ["MAX_HEADERS", "MAX_HEADER_BYTES", "LiverecoHttpProtocol"]


class LiverecoHttpProtocol(HttpToolsProtocol):
    """HttpToolsProtocol plus request deadlines, a header size limit and a connection limit (see the module)."""

    settings: ClassVar[Settings | None] = None

    @classmethod
    def configured(cls, settings: Settings) -> type[LiverecoHttpProtocol]:
        """A subclass using ``settings`` instead of the environment (for a server built in-process)."""
        return type("ConfiguredLiverecoHttpProtocol", (cls,), {"settings": settings})

    def __init__(self, config: Any, server_state: Any, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        cls = type(self)
        if cls.settings is None:
            cls.settings = Settings.from_env()
        self.request_timeout_s = cls.settings.http_request_timeout_s
        self.max_connections = cls.settings.http_max_connections
        self._deadline_timer: asyncio.TimerHandle | None = None
        self._deadline = 0.0
        self.head = HeadLimits()
        self._refusal: HTTPError | None = None  # set by a parser callback that stops the parse

    # --- the request deadline -------------------------------------------------------------------------
    def _arm(self) -> None:
        self._disarm()
        deadline = self.loop.time() + self.request_timeout_s
        self._deadline_timer = self.loop.call_at(deadline, self._deadline_passed)
        self._deadline = deadline

    def _disarm(self) -> None:
        if self._deadline_timer is not None:
            self._deadline_timer.cancel()
            self._deadline_timer = None

    def _deadline_passed(self) -> None:
        self._deadline_timer = None
        if self.transport.is_closing():
            return
        if self.head.in_headers:
            self._refuse(self.head.late(self.request_timeout_s))
            return
        cycle = self.cycle
        if cycle is None or cycle.response_complete:
            self.transport.close()  # answered already; the rest of the body is not worth reading
            return
        cycle.keep_alive = False  # the handler answers 408 (serving.http.read_body); if it does not, close anyway
        self._deadline_timer = self.loop.call_later(BODY_GRACE_S, self._close_late_body)

    def _close_late_body(self) -> None:
        self._deadline_timer = None
        if self.cycle is not None and not self.cycle.more_body:
            return
        self.transport.close()

    def _refuse(self, error: HTTPError) -> None:
        self._disarm()
        self.transport.write(raw_error_answer(error))
        self.transport.close()

    # --- asyncio.Protocol -----------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()  # a connection that never sends a request is closed too

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self.head.on_data(len(data))
        super().data_received(data)
        refusal = self.head.over_received()
        if refusal is not None and not self.transport.is_closing():
            self._refuse(refusal)

    def send_400_response(self, msg: str) -> None:
        self._refuse(self._refusal or HTTPError(400, "bad_request", f"request: not valid HTTP/1.1 ({msg})",
                                                field="request"))

    def _stop_parse(self, error: HTTPError) -> None:
        self._refusal = error
        raise httptools.HttpParserError(error.message)  # uvicorn's data_received answers by send_400_response

    # --- parser callbacks ------------------------------------------------------------------------------
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()
        self.head.begin()
        self.scope[DEADLINE_KEY] = self._deadline  # type: ignore[literal-required]

    def on_url(self, url: bytes) -> None:
        self.head.on_url(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        refusal = self.head.on_header(name, value)
        if refusal is not None:
            self._stop_parse(refusal)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        refusal = self.head.on_complete()
        if refusal is not None:
            self._stop_parse(refusal)
        if len(self.connections) > self.max_connections:
            app = self.app
            self.app = _over_capacity
            try:
                super().on_headers_complete()
            finally:
                self.app = app
            return
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        self.head.in_headers = True  # whatever comes next is the next request's head
        super().on_message_complete()


async def _over_capacity(scope: Scope, receive: Receive, send: Send) -> None:
    error = too_many_connections()
    body = error.body()
    await send({"type": "http.response.start", "status": 503,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *error.headers()]})
    await send({"type": "http.response.body", "body": body})
