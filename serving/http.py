"""Minimal ASGI plumbing: JSON responses, bounded bodies, the JSON content type, path segments, errors.

The application is a plain ASGI callable (:class:`serving.app.LiverecoApp`);
``livereco serve`` runs it on livereco's own httptools protocol
(:mod:`serving.http_protocol`), which calls its routing directly, or on
uvicorn (``LIVERECO_HTTP_SERVER=uvicorn``): no framework layer between the
socket and the handler either way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import unquote

import msgspec

from serving.api import Error, ErrorDetail

__all__ = ["DEADLINE_KEY", "HTTPError", "json_response", "read_body", "require_json", "split_path"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

_JSON_HEADERS = [(b"content-type", b"application/json")]
_encode = msgspec.json.Encoder().encode

DEADLINE_KEY = "livereco.deadline"
"""Scope key: the event-loop time by which the request's headers and body must have arrived
(set by :mod:`serving.protocol` when the request began; else :func:`read_body` starts the clock)."""


class HTTPError(Exception):
    """An error answered as ``{"error": {"code", "message", "field"?, ...}}``.

    Every 503 carries ``Retry-After`` (``retry_after_s``, default 1 s, also in the
    body); ``close`` ends the connection after the answer (a 408: the rest of a
    slow body is not worth reading); ``allow`` lists a 405's methods.

    >>> HTTPError(400, "bad_parameter", "n: must be an integer", field="n").body()
    b'{"error":{"code":"bad_parameter","message":"n: must be an integer","field":"n"}}'
    >>> HTTPError(503, "redis_unavailable", "retry").headers()
    [(b'retry-after', b'1')]
    """

    def __init__(self, status: int, code: str, message: str, *, field: str | None = None,
                 retry_after_s: int | None = None, close: bool = False, allow: tuple[str, ...] = (), **extra: Any):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.retry_after_s = retry_after_s if retry_after_s is not None else (1 if status == 503 else None)
        self.close = close
        self.allow = allow
        self.extra = extra

    def body(self) -> bytes:
        """The :class:`serving.api.Error` answer (an ``extra`` it does not have is a TypeError: a bug)."""
        return _encode(Error(ErrorDetail(code=self.code, message=self.message, field=self.field,
                                         retry_after_s=self.retry_after_s, **self.extra)))

    def headers(self) -> list[tuple[bytes, bytes]]:
        headers = []
        if self.retry_after_s is not None:
            headers.append((b"retry-after", str(self.retry_after_s).encode()))
        if self.allow:
            headers.append((b"allow", ", ".join(self.allow).encode()))
        if self.close:
            headers.append((b"connection", b"close"))
        if self.status == 401:
            headers.append((b"www-authenticate", b'Bearer realm="livereco"'))
        return headers


async def json_response(send: Send, status: int, body: bytes, content_type: bytes = b"application/json",
                        headers: list[tuple[bytes, bytes]] | None = None) -> None:
    base = _JSON_HEADERS if content_type == b"application/json" else [(b"content-type", content_type)]
    await send({"type": "http.response.start", "status": status,
                "headers": [*base, (b"content-length", str(len(body)).encode()), *(headers or ())]})
    await send({"type": "http.response.body", "body": body})


_JSON_TYPES = (b"application/json",)


def require_json(scope: Scope) -> None:
    """Refuse (415) a body that does not say it is JSON: ``Content-Type: application/json`` (UTF-8).

    A plain HTML form can post ``text/plain`` or ``application/x-www-form-urlencoded``
    to any site without a CORS preflight; requiring the JSON type stops that.

    >>> require_json({"headers": [(b"content-type", b"application/json; charset=UTF-8")]})
    >>> require_json({"headers": [(b"content-type", b"text/plain")]})
    Traceback (most recent call last):
    ...
    serving.http.HTTPError: content-type: 'text/plain' is not accepted; send application/json
    """
    value = next((v for name, v in scope.get("headers", ()) if name == b"content-type"), None)
    if value is None:
        raise HTTPError(415, "unsupported_media_type", "content-type: missing; send application/json",
                        field="content-type")
    media, _, params = value.partition(b";")
    charset = next((p.split(b"=", 1)[1].strip().strip(b'"').lower() for p in params.split(b";")
                    if p.strip().lower().startswith(b"charset=")), b"utf-8")
    if media.strip().lower() not in _JSON_TYPES or charset not in (b"utf-8", b"utf8"):
        shown = value.decode("latin-1")[:100]
        raise HTTPError(415, "unsupported_media_type", f"content-type: {shown!r} is not accepted; send application/json",
                        field="content-type")


async def read_body(scope: Scope, receive: Receive, limit: int, timeout_s: float = 10.0) -> bytes:
    """The request body, refused with 413 as soon as it exceeds ``limit`` bytes and with 408 when it is
    not all there by the request's deadline (``scope[DEADLINE_KEY]``, else ``timeout_s`` from now)."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                declared = int(value)
            except ValueError:
                raise HTTPError(400, "bad_request", "content-length: not a number", field="content-length") from None
            if declared > limit:
                raise HTTPError(413, "body_too_large", f"body: {declared} bytes; the limit is {limit}", field="body",
                                close=True)
    loop = asyncio.get_running_loop()
    deadline = scope.get(DEADLINE_KEY) or loop.time() + timeout_s
    task = asyncio.current_task()
    expired = False

    def expire() -> None:  # one timer for the whole body, cheaper than a wait_for around every receive
        nonlocal expired
        expired = True
        if task is not None:
            task.cancel()

    timer = loop.call_at(deadline, expire)
    chunks: list[bytes] = []
    size = 0
    more = True
    try:
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise HTTPError(400, "bad_request", "body: the client disconnected", field="body")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise HTTPError(413, "body_too_large", f"body: more than {limit} bytes", field="body", close=True)
            chunks.append(chunk)
            more = message.get("more_body", False)
    except asyncio.CancelledError:
        if not expired or task is None:
            raise
        task.uncancel()
        raise HTTPError(408, "request_timeout", f"body: {size} bytes arrived in time, not the whole body; a request"
                        f" must arrive within {timeout_s:g} s", field="body", close=True) from None
    finally:
        timer.cancel()
    return b"".join(chunks)


def split_path(raw_path: bytes) -> list[str]:
    """Path segments, each percent-decoded on its own (so ``%2F`` stays inside an id).

    >>> split_path(b"/v1/users/a%2Fb/recommendations")
    ['v1', 'users', 'a/b', 'recommendations']
    >>> split_path(b"/v1/items/"), split_path(b"/healthz/")
    (['v1', 'items', ''], ['healthz'])
    """
    text = raw_path.decode("latin-1").split("?", 1)[0].lstrip("/")
    if text.endswith("/") and text.count("/") > 1:  # /v1/items/: an empty last segment, as /v1/items//similar has
        return [unquote(part, errors="strict") for part in text.split("/")]
    return [unquote(part, errors="strict") for part in text.strip("/").split("/")] if text.strip("/") else []
