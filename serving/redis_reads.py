"""The serving hot path's Redis reads: one multiplexed connection per server process.

Every recommendation costs two reads (the stored list and the trending
list, sent together). Through redis-py's asyncio client they cost about
twice the CPU of everything else in the request together: a connection
checked out of the pool and back, retry and timeout wrappers, one socket
write and one read wake-up per request. This reader keeps one connection
and pipelines *across* requests: the commands of every request handled in
one event-loop turn leave in one write, replies (Redis answers in order)
are read with hiredis and handed back in order, so under load a single
write and a single read wake-up serve many requests.

It only reads, only for plain ``redis://`` URLs (:func:`fast_reads_for`
returns ``None`` for TLS, unix sockets, clusters and URL options, and the
server uses redis-py for those); writes, startup checks and everything
else still go through redis-py. Failures raise redis-py's exceptions
(:class:`redis.ConnectionError`, :class:`redis.TimeoutError`,
:class:`redis.ResponseError`), so the server answers an outage with the
same 503. A command whose connection dropped is retried once on a new one
(reads are idempotent), as redis-py retries; a command not answered within
``timeout_s`` fails every command on that connection, which is closed.

Examples
--------
>>> fast_reads_for("redis://:secret@127.0.0.1:6380/2").address
('127.0.0.1', 6380, 2)
>>> [fast_reads_for(url) for url in ("rediss://h:1/0", "unix:///tmp/r.sock", "redis://h:1/0?socket_timeout=5",
...                                  "redis+cluster://h:1/")]
[None, None, None, None]
>>> encode_command(("GET", "k")) + encode_command(("ZREVRANGE", b"t", 0, 9, "WITHSCORES"))
b'*2\\r\\n$3\\r\\nGET\\r\\n$1\\r\\nk\\r\\n*5\\r\\n$9\\r\\nZREVRANGE\\r\\n$1\\r\\nt\\r\\n$1\\r\\n0\\r\\n$1\\r\\n9\\r\\n$10\\r\\nWITHSCORES\\r\\n'
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlsplit

import hiredis
import redis

__all__ = ["FastReads", "encode_command", "fast_reads_for"]

Command = tuple[Any, ...]


def _arg(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value).encode()
    raise redis.DataError(f"invalid argument type {type(value).__name__} for a Redis command")


def encode_command(args: Command) -> bytes:
    """One command in RESP, as Redis reads it."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = _arg(arg)
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


Replied = Callable[[list[Any] | None, BaseException | None], None]
"""Called with a posted command's replies, or with the error that lost them (:meth:`FastReads.post`)."""

_SHARED_ENCODED: dict[Command, bytes] = {}
"""The shared reads (trending ranges) in RESP, encoded once: every request of every turn sends the same few."""
_SHARED_ENCODED_MAX = 256


class _Batch:
    """The commands of one caller, answered together (a pipeline or a single command): a future to set, or a
    callback to call (a fire-and-forget write's outcome: no future, no extra loop turn)."""

    __slots__ = ("callback", "future", "remaining", "replies", "sent_at")

    def __init__(self, future: asyncio.Future[list[Any]] | None, count: int, sent_at: float,
                 callback: Replied | None = None):
        self.future = future
        self.callback = callback
        self.remaining = count
        self.replies: list[Any] = []
        self.sent_at = sent_at


class _Connection(asyncio.Protocol):
    """One TCP connection to Redis with any number of batches in flight, answered in order."""

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout_s: float):
        self.loop = loop
        self.timeout_s = timeout_s
        self.transport: Any = None
        self.reader = hiredis.Reader()
        self.pending: deque[_Batch] = deque()
        self.out: list[bytes] = []
        self.flush_scheduled = False
        self._flush_handle: asyncio.Handle | None = None
        self.shared: dict[Command, asyncio.Future[list[Any]]] = {}
        """Shared reads waiting for this turn's write: command -> the future every caller of it awaits."""
        self.watchdog: asyncio.TimerHandle | None = None
        self.closed = False

    # --- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        reader, pending = self.reader, self.pending
        woke = False
        try:
            reader.feed(data)
            reply = reader.gets()
            while reply is not False:
                if not pending:
                    raise redis.ConnectionError("Redis sent a reply nobody asked for")
                batch = pending[0]
                batch.replies.append(reply)
                batch.remaining -= 1
                if not batch.remaining:
                    pending.popleft()
                    future = batch.future
                    if future is None:
                        batch.callback(batch.replies, None)  # type: ignore[misc]  # a batch has one or the other
                    elif not future.done():
                        future.set_result(batch.replies)
                        woke = True
                reply = reader.gets()
        except (hiredis.ProtocolError, redis.ConnectionError) as exc:
            self.abort(redis.ConnectionError(f"Redis protocol error: {exc}"))
            return
        if woke:  # the requests just woken write next turn (impression records): in one write, that turn
            self.flush_after_ready()

    def connection_lost(self, exc: Exception | None) -> None:
        self.abort(redis.ConnectionError(f"Connection to Redis lost: {exc or 'closed by server'}"))

    # --- sending ---------------------------------------------------------------------------
    def send(self, commands: list[Command]) -> asyncio.Future[list[Any]]:
        return self.send_encoded(b"".join([encode_command(args) for args in commands]), len(commands))

    def send_encoded(self, data: bytes, count: int) -> asyncio.Future[list[Any]]:
        """Send ``count`` commands already in RESP (``data``); their replies come together."""
        future: asyncio.Future[list[Any]] = self.loop.create_future()
        self._queue(data, _Batch(future, count, time.monotonic()))
        return future

    def post(self, data: bytes, callback: Replied) -> None:
        """Send one command already in RESP; ``callback`` gets its reply (or the error that lost it) when it comes."""
        self._queue(data, _Batch(None, 1, time.monotonic(), callback))

    def _queue(self, data: bytes, batch: _Batch) -> None:
        if self.closed:
            raise redis.ConnectionError("Connection to Redis closed")
        self.out.append(data)
        self.pending.append(batch)
        if not self.flush_scheduled:
            self.flush_scheduled = True
            self._flush_handle = self.loop.call_soon(self._flush)
        if self.watchdog is None:
            self.watchdog = self.loop.call_later(self.timeout_s, self._check_timeout)

    def flush_after_ready(self) -> None:
        """Flush after every callback already scheduled to run (the requests just started or woken), not one turn
        later: what they send leaves in one write in the turn they run, instead of the turn after (the event loop
        runs the callbacks scheduled while it runs its ready ones on its next turn). Any flush already scheduled
        moves behind them."""
        if self.closed:
            return
        if self._flush_handle is not None:
            self._flush_handle.cancel()
        self.flush_scheduled = True
        self._flush_handle = self.loop.call_soon(self._flush)

    def send_shared(self, command: Command) -> asyncio.Future[list[Any]]:
        """``send([command])``, or the future of the same command already waiting for this turn's write."""
        future = self.shared.get(command)
        if future is None:
            data = _SHARED_ENCODED.get(command)
            if data is None:
                if len(_SHARED_ENCODED) >= _SHARED_ENCODED_MAX:
                    _SHARED_ENCODED.clear()
                data = _SHARED_ENCODED[command] = encode_command(command)
            future = self.shared[command] = self.send_encoded(data, 1)
        return future

    def _flush(self) -> None:
        self.flush_scheduled = False
        self._flush_handle = None
        self.shared.clear()
        if self.out and not self.closed:
            data = b"".join(self.out)
            self.out.clear()
            self.transport.write(data)

    def _check_timeout(self) -> None:
        self.watchdog = None
        if not self.pending or self.closed:
            return
        overdue = self.pending[0].sent_at + self.timeout_s - time.monotonic()
        if overdue <= 0:
            self.abort(redis.TimeoutError(f"Redis did not answer within {self.timeout_s:g} s"))
        else:
            self.watchdog = self.loop.call_later(overdue, self._check_timeout)

    def abort(self, exc: redis.RedisError) -> None:
        """Fail everything in flight with ``exc`` and close; the reader opens a new connection next time."""
        if self.watchdog is not None:
            self.watchdog.cancel()
            self.watchdog = None
        self.closed = True
        self.out.clear()
        self.shared.clear()
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        while self.pending:
            batch = self.pending.popleft()
            if batch.future is None:
                batch.callback(None, exc)  # type: ignore[misc]  # a batch has one or the other
            elif not batch.future.done():
                batch.future.set_exception(exc)
        if self.transport is not None:
            self.transport.close()


class FastReads:
    """Reads over one multiplexed connection; the subset of redis-py's client that serving's reads use."""

    def __init__(self, host: str, port: int, db: int = 0, username: str | None = None, password: str | None = None,
                 connect_timeout_s: float = 1.0, timeout_s: float = 2.0):
        self.address = (host, port, db)
        self.username = username
        self.password = password
        self.connect_timeout_s = connect_timeout_s
        self.timeout_s = timeout_s
        self._connection: _Connection | None = None
        self._connecting: asyncio.Task[_Connection] | None = None

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        host, port, db = self.address
        try:
            _, connection = await asyncio.wait_for(
                loop.create_connection(lambda: _Connection(loop, self.timeout_s), host, port),
                self.connect_timeout_s)
        except TimeoutError:
            raise redis.TimeoutError(f"Timeout connecting to Redis at {host}:{port}") from None
        except OSError as exc:
            raise redis.ConnectionError(f"Error connecting to Redis at {host}:{port}: {exc}") from None
        setup: list[Command] = []
        if self.password is not None:
            setup.append(("AUTH", self.username, self.password) if self.username else ("AUTH", self.password))
        if db:
            setup.append(("SELECT", db))
        if setup:
            try:
                _check(await asyncio.wait_for(connection.send(setup), self.timeout_s))
            except BaseException:
                connection.abort(redis.ConnectionError("Redis connection setup failed"))
                raise
        return connection

    async def _open(self) -> _Connection:
        connection = self._connection
        if connection is not None and not connection.closed:
            return connection
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._connect())
        task = self._connecting
        try:
            connection = await asyncio.shield(task)
        finally:
            if self._connecting is task and task.done():
                self._connecting = None
        self._connection = connection
        return connection

    async def run(self, commands: list[Command]) -> list[Any]:
        """Replies to ``commands`` (sent back to back); the first error reply raises."""
        connection = await self._open()
        try:
            replies = await connection.send(commands)
        except redis.TimeoutError:
            raise
        except redis.ConnectionError:
            connection = await self._open()  # dropped (idle timeout, Redis restart): once more on a new one
            replies = await connection.send(commands)
        return _check(replies)

    async def execute_command(self, *args: Any) -> Any:
        return (await self.run([args]))[0]

    async def read_with_shared(self, command: Command, shared: Command) -> tuple[Any, Any]:
        """The replies to ``command`` and to ``shared``, a read every request makes (trending): the requests of
        one event-loop turn send it once and share its reply (the same list object: do not change it).

        Sent in the same write as the requests' own commands, so the reply is as fresh as a read of each
        request's own; retried once on a new connection, as :meth:`run` is.
        """
        for attempt in (0, 1):
            connection = self._connection
            if connection is None or connection.closed:
                connection = await self._open()
            own = connection.send([command])
            common = connection.send_shared(shared)
            try:
                replies = await own
                common_replies = await common
            except redis.ConnectionError:  # dropped (idle timeout, Redis restart): once more on a new one
                if common.done() and not common.cancelled():
                    common.exception()  # failed with the connection; retrieved, so asyncio does not warn
                if attempt:
                    raise
                continue
            return _check(replies)[0], _check(common_replies)[0]
        raise AssertionError("unreachable")  # pragma: no cover

    def post(self, encoded: bytes, callback: Replied) -> bool:
        """Send one command, already in RESP (:func:`encode_command`), on the open connection without waiting for
        its reply (a fire-and-forget write: it leaves with the reads of the same event-loop turn); ``False`` when no
        connection is open (nothing sent).

        ``callback(replies, error)`` is called when the reply comes (an error reply is a ``hiredis.ReplyError`` in
        the list) or the connection is lost (``error``), from the connection's own callbacks: it must not raise.
        """
        connection = self._connection
        if connection is None or connection.closed:
            return False
        connection.post(encoded, callback)
        return True

    def flush_after_ready(self) -> None:
        """See :meth:`_Connection.flush_after_ready`: called by the HTTP protocol after it starts answering a request,
        so the request's reads leave in the turn it runs (nothing when no connection is open)."""
        connection = self._connection
        if connection is not None and not connection.closed:
            connection.flush_after_ready()

    async def get(self, key: str) -> Any:
        return await self.execute_command("GET", key)

    def pipeline(self, transaction: bool = False) -> FastPipeline:
        if transaction:
            raise ValueError("FastReads pipelines are not transactions")
        return FastPipeline(self)

    async def aclose(self) -> None:
        if self._connection is not None:
            self._connection.abort(redis.ConnectionError("Connection closed by the server shutting down"))
            self._connection = None


class FastPipeline:
    """Commands queued with ``get`` / ``execute_command``, sent together by ``execute``."""

    def __init__(self, reads: FastReads):
        self.reads = reads
        self.commands: list[Command] = []

    def execute_command(self, *args: Any) -> FastPipeline:
        self.commands.append(args)
        return self

    def get(self, key: str) -> FastPipeline:
        return self.execute_command("GET", key)

    async def execute(self) -> list[Any]:
        commands, self.commands = self.commands, []
        return await self.reads.run(commands)


def _check(replies: list[Any]) -> list[Any]:
    for reply in replies:
        if isinstance(reply, hiredis.ReplyError):
            raise redis.ResponseError(str(reply))
    return replies


def fast_reads_for(url: str, connect_timeout_s: float = 1.0, timeout_s: float = 2.0) -> FastReads | None:
    """A :class:`FastReads` for a plain ``redis://host[:port][/db]`` URL (user and password allowed), else ``None``."""
    try:
        parts = urlsplit(url)
        if parts.scheme != "redis" or parts.query or not parts.hostname:
            return None
        path = parts.path.strip("/")
        db = int(path) if path else 0
        port = parts.port or 6379
    except ValueError:
        return None
    return FastReads(parts.hostname, port, db, unquote(parts.username) if parts.username else None,
                     unquote(parts.password) if parts.password is not None else None,
                     connect_timeout_s, timeout_s)
