"""Minimal ASGI plumbing: JSON responses, bounded bodies, query parameters, errors.

The server is a plain ASGI callable on uvicorn (uvloop + httptools): no
framework layer between the socket and the handler, which is where the
README's serving numbers come from.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs, unquote

import orjson

__all__ = ["HTTPError", "Query", "json_response", "read_body", "split_path"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

_JSON_HEADERS = [(b"content-type", b"application/json")]


class HTTPError(Exception):
    """An error answered as ``{"error": {"code", "message", "field"?, ...}}``.

    >>> e = HTTPError(400, "bad_parameter", "n: must be an integer", field="n")
    >>> orjson.loads(e.body())["error"]["field"]
    'n'
    """

    def __init__(self, status: int, code: str, message: str, *, field: str | None = None, **extra: Any):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.extra = extra

    def body(self) -> bytes:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            error["field"] = self.field
        error.update(self.extra)
        return orjson.dumps({"error": error})


async def json_response(send: Send, status: int, body: bytes, content_type: bytes = b"application/json") -> None:
    headers = _JSON_HEADERS if content_type == b"application/json" else [(b"content-type", content_type)]
    await send({"type": "http.response.start", "status": status,
                "headers": [*headers, (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it exceeds ``limit`` bytes."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                declared = int(value)
            except ValueError:
                raise HTTPError(400, "bad_request", "content-length: not a number", field="content-length") from None
            if declared > limit:
                raise HTTPError(413, "body_too_large", f"body: {declared} bytes; the limit is {limit}", field="body")
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise HTTPError(400, "bad_request", "body: the client disconnected", field="body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise HTTPError(413, "body_too_large", f"body: more than {limit} bytes", field="body")
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


def split_path(raw_path: bytes) -> list[str]:
    """Path segments, each percent-decoded on its own (so ``%2F`` stays inside an id).

    >>> split_path(b"/v1/users/a%2Fb/recommendations")
    ['v1', 'users', 'a/b', 'recommendations']
    """
    text = raw_path.decode("latin-1").split("?", 1)[0]
    return [unquote(part, errors="strict") for part in text.strip("/").split("/")] if text.strip("/") else []


class Query:
    """Typed access to query parameters with errors that name the parameter.

    >>> q = Query(b"n=5&exclude=a,b&exclude=c")
    >>> q.integer("n", 10, 1, 100), q.id_list("exclude")
    (5, ['a', 'b', 'c'])
    >>> Query(b"n=0").integer("n", 10, 1, 100)
    Traceback (most recent call last):
    ...
    serving.http.HTTPError: n: must be between 1 and 100, got 0
    """

    def __init__(self, query_string: bytes):
        try:
            self._params = parse_qs(query_string.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            raise HTTPError(400, "bad_parameter", "query: not valid UTF-8", field="query") from None

    def integer(self, name: str, default: int, lo: int, hi: int) -> int:
        values = self._params.get(name)
        if not values:
            return default
        try:
            value = int(values[-1])
        except ValueError:
            raise HTTPError(400, "bad_parameter", f"{name}: must be an integer, got {values[-1][:40]!r}",
                            field=name) from None
        if not lo <= value <= hi:
            raise HTTPError(400, "bad_parameter", f"{name}: must be between {lo} and {hi}, got {value}", field=name)
        return value

    def text(self, name: str, max_length: int = 256) -> str | None:
        values = self._params.get(name)
        if not values or not values[-1]:
            return None
        if len(values[-1]) > max_length:
            raise HTTPError(400, "bad_parameter", f"{name}: longer than {max_length} characters", field=name)
        return values[-1]

    def id_list(self, name: str, max_items: int = 500) -> list[str]:
        items = [part for value in self._params.get(name, ()) for part in value.split(",") if part]
        if len(items) > max_items:
            raise HTTPError(400, "bad_parameter", f"{name}: more than {max_items} ids", field=name)
        return items

    def flag(self, name: str) -> bool:
        values = self._params.get(name)
        if not values:
            return False
        return values[-1].lower() in ("1", "true", "yes")
