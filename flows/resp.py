"""A batch of Redis commands as the bytes sent (RESP), ``SET key blob EX ttl`` written by compiled code.

:class:`~flows.redis_batch.CommandBatches` sent a batch as ``hiredis.pack_command`` of each command: ~9k
instructions a ``SET`` of a list (the argument tuple parsed, every argument converted, a Python bytes per
command, then joined). The sink's batches are mostly such ``SET``\\s (two per user list, one per similar list):
:func:`pack_batch` writes them into one :class:`librt.strings.BytesWriter` itself, in the bytes hiredis
writes (``tests/test_redis_batch.py`` compares them), and hands every other command to hiredis as before.

>>> import hiredis
>>> commands = [("SET", "k", b"v", "EX", 60), ("ZADD", "z", 1.5, "m")]
>>> pack_batch(commands) == b"".join(hiredis.pack_command(c) for c in commands)
True
"""

from __future__ import annotations

from typing import Any

import hiredis
from librt.strings import BytesWriter
from mypy_extensions import i64, u8

__all__ = ["pack_batch"]

_SET_HEAD = b"*5\r\n$3\r\nSET\r\n"
_EX = b"$2\r\nEX\r\n"
_CRLF = b"\r\n"


def _decimal(out: BytesWriter, value: i64) -> None:
    """``value`` (at least 0) in decimal digits."""
    place: i64 = 1
    while place * 10 <= value:
        place *= 10
    while place:
        out.append(u8(48 + value // place % 10))
        place //= 10


def _bulk(out: BytesWriter, data: bytes) -> None:
    """A RESP bulk string: ``$``, the length, CRLF, the bytes, CRLF."""
    out.append(u8(36))
    _decimal(out, len(data))
    out.write(_CRLF)
    out.write(data)
    out.write(_CRLF)


def pack_batch(commands: list[tuple[Any, ...]]) -> bytes:
    """Every command of ``commands`` as RESP, in order: what ``hiredis.pack_command`` gives for each, joined.

    ``TypeError`` (from hiredis) for an argument hiredis does not take, as before.
    """
    out = BytesWriter()
    for args in commands:
        if len(args) == 5 and args[0] == "SET" and args[3] == "EX":
            key, value, ttl = args[1], args[2], args[4]
            if type(key) is str and type(value) is bytes and type(ttl) is int and 0 <= ttl < 2**62:
                out.write(_SET_HEAD)
                _bulk(out, key.encode())
                _bulk(out, value)
                out.write(_EX)
                _bulk(out, str(ttl).encode())
                continue
        out.write(hiredis.pack_command(args))
    return out.getvalue()
