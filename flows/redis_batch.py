"""Sending a batch of commands in one round trip and reading their replies, without redis-py's pipeline machinery.

The sink sends ~1,000 commands a batch and needs only to know which of them
Redis refused. redis-py's pipeline runs a response callback, an option lookup
and several Python calls per reply (with its packing, ~a quarter of the sink's
instructions); :class:`CommandBatches` sends the batch packed by one
compiled call (:func:`flows.resp.pack_batch`: its ``SET`` commands written as RESP itself, every
other command by ``hiredis.pack_command``) and reads every reply straight from
the connection's hiredis reader.

That lean path is taken for one Redis server spoken to in RESP2 with hiredis
installed (how :func:`flows.redis_client.connect` connects). A Redis Cluster
client, RESP3, or a connection whose parser is not hiredis goes through a
redis-py pipeline as before (a cluster pipeline routes each command to its
slot's node).

Either way, :meth:`CommandBatches.send` returns one reply per command, in
order: an error reply is its redis-py exception (``ResponseError``, or a
subclass such as ``BusyLoadingError`` for ``LOADING``), returned, not raised,
after every reply of the batch has been read. A connection that fails
raises ``redis.ConnectionError`` or ``redis.TimeoutError`` (the connection
is dropped, so no later batch reads this one's replies), and the caller
sends the whole batch again.

>>> from flows.embedded_redis import EmbeddedRedis
>>> from flows.redis_client import connect
>>> with EmbeddedRedis() as server:
...     client = connect(server.url)
...     batches = CommandBatches(client)
...     replies = batches.send([("SET", "k", b"v", "EX", 60), ("HSET", "k", "f", 1), ("GET", "k")])
...     client.close()
>>> batches.lean, replies[0], type(replies[1]).__name__, replies[2]
(True, b'OK', 'ResponseError', b'v')
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import redis
from redis.utils import HIREDIS_AVAILABLE

try:  # redis-py's internals (5.0 to 8.2 at least): another layout sends every batch through redis-py's pipeline
    from redis._parsers.hiredis import NOT_ENOUGH_DATA, _HiredisParser
except ImportError:  # pragma: no cover - depends on the installed redis-py
    NOT_ENOUGH_DATA, _HiredisParser = object(), None  # type: ignore[misc,assignment]

from flows.redis_client import RedisClient
from flows.resp import pack_batch

__all__ = ["Command", "CommandBatches"]

Command = tuple[Any, ...]
"""A command as sent: its name (one word, such as ``"SET"``) and its arguments (``str``, ``bytes``, ``int``, ``float``)."""


class CommandBatches:
    """Sends batches of commands to ``client``'s Redis, one round trip each (see the module docstring)."""

    def __init__(self, client: RedisClient):
        self._client = client
        kwargs = client.connection_pool.connection_kwargs if isinstance(client, redis.Redis) else {}
        self.lean = (HIREDIS_AVAILABLE and _HiredisParser is not None and isinstance(client, redis.Redis)
                     and kwargs.get("protocol") in (None, 2, "2"))
        """Whether batches skip redis-py's pipeline (one server, RESP2, hiredis); a connection with another
        parser turns it off."""

    def send(self, commands: Sequence[Command]) -> list[Any]:
        """Every command of ``commands`` in order, in one round trip; their replies, an error reply as its exception."""
        if not commands:
            return []
        if self.lean and isinstance(self._client, redis.Redis):
            return self._send_lean(self._client.connection_pool, commands)
        return self._send_pipeline(commands)

    def _send_pipeline(self, commands: Sequence[Command]) -> list[Any]:
        pipe = self._client.pipeline(transaction=False)
        for args in commands:
            pipe.execute_command(*args)  # a cluster pipeline's delete() refuses several keys, even of one slot
        return pipe.execute(raise_on_error=False)

    def _send_lean(self, pool: redis.ConnectionPool, commands: Sequence[Command]) -> list[Any]:
        conn = pool.get_connection()
        try:
            if type(conn._parser) is not _HiredisParser:  # a connection class of its own: redis-py's way from now on
                self.lean = False
                pool.release(conn)
                return self._send_pipeline(commands)
            try:
                packed = [pack_batch(list(commands))]
            except TypeError:  # an argument hiredis does not take: redis-py's packer encodes or refuses it
                packed = conn.pack_commands(commands)
            conn.send_packed_command(packed)  # connects if needed; a failure disconnects and raises ConnectionError
            replies = _read_replies(conn, len(commands))
        finally:
            pool.release(conn)
        return replies


def _read_replies(conn: Any, count: int) -> list[Any]:
    """``count`` replies from ``conn``'s hiredis reader; any failure drops the connection (its replies are lost)."""
    parser = conn._parser
    replies: list[Any] = []
    try:
        gets = parser._reader.gets
        for _ in range(count):
            reply = gets()
            while reply is NOT_ENOUGH_DATA:
                parser.read_from_socket()  # redis.ConnectionError or redis.TimeoutError when the socket fails
                reply = gets()
            replies.append(reply)
    except OSError as exc:
        conn.disconnect()
        raise redis.ConnectionError(f"Error while reading from Redis: {exc}") from exc
    except BaseException:
        conn.disconnect()
        raise
    if conn.health_check_interval:
        conn.next_health_check = time.monotonic() + conn.health_check_interval
    return replies
