"""The impression record of every list answer: a ``served`` control message in the user's stream partition.

Each list answer gets a ``rec_id`` (12 random hex digits). For a user, the
server appends ``{"control": "served", rec_id, experiment, variant, items,
sources}`` to the user's event stream (:class:`online.contract.control.Control`),
so the flow meets it in order with the user's events and attributes their
clicks to it (:mod:`online.attribution`).

The write costs no round trip of the request: it is sent **fire-and-forget**
on the server's multiplexed read connection (:meth:`serving.redis_reads.FastReads.post`),
leaving in the same socket write as the reads of the other requests of the
event-loop turn, and its reply is only checked (a failure is counted in
``livereco_serving_impressions_total{status="failed"}``, never answered to the
client: a lost impression costs attribution, never a list). Without the
multiplexed connection (TLS, cluster, an injected client) it is a background
task on redis-py.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Sequence
from typing import Any

import hiredis
import orjson
from prometheus_client import CollectorRegistry, Counter

from online.attribution import SOURCES
from online.contract import RedisKeys
from online.contract.control import CONTROL_FIELD, MAX_SERVED_ITEMS
from serving.redis_reads import FastReads, encode_command

__all__ = ["ImpressionRecorder", "new_rec_id"]

log = logging.getLogger("livereco.serving")
_SOURCES = frozenset(SOURCES)


_RANDOM = bytearray()
"""Random bytes from ``os.urandom``, drawn 6 at a time from the end: one system call per 4,096 ids, not per answer."""
os.register_at_fork(after_in_child=_RANDOM.clear)  # a forked worker draws its own bytes, never its parent's


def new_rec_id() -> str:
    """A short random id for one list answer (48 bits from ``os.urandom``).

    >>> len(new_rec_id()), new_rec_id() != new_rec_id()
    (12, True)
    """
    if len(_RANDOM) < 6:
        _RANDOM[:] = os.urandom(6 * 4096)
    rec_id = _RANDOM[-6:].hex()
    del _RANDOM[-6:]
    return rec_id


class ImpressionRecorder:
    """Appends the impression records; counts them by outcome."""

    def __init__(self, keys: RedisKeys, fast: FastReads | None, client: Any, registry: CollectorRegistry,
                 enabled: bool = True) -> None:
        self.keys = keys
        self.enabled = enabled
        """``LIVERECO_IMPRESSIONS``: record (else every answer still gets its rec_id)."""
        self.fast = fast
        self.client = client
        """A callable answering the redis-py client (made lazily by the app)."""
        self.counter = Counter("livereco_serving_impressions_total", "Impression records of list answers, by outcome"
                               " (recorded: written; failed: Redis refused or was unreachable; anonymous: no user_id,"
                               " nothing recorded).", ["status"], registry=registry)
        self._recorded, self._failed, self._anonymous = (self.counter.labels(status)
                                                          for status in ("recorded", "failed", "anonymous"))
        self._tasks: set[asyncio.Future[Any]] = set()
        # Each partition's XADD up to its payload, in RESP: only the payload is encoded per request.
        self._prefixes = {stream: encode_command(("XADD", stream, "*", CONTROL_FIELD)).replace(
            b"*4\r\n", b"*5\r\n", 1) for stream in keys.streams()}

    def record(self, user_id: str | None, experiment: str, variant: str, items: Sequence[tuple[str, str]]) -> str:
        """The answer's ``rec_id``; for a user, their impression record is on its way to Redis."""
        rec_id = new_rec_id()
        if not self.enabled:
            return rec_id
        if user_id is None:
            self._anonymous.inc()
            return rec_id
        shown = items[:MAX_SERVED_ITEMS]
        # Control.served_list(...).encode()'s JSON, made straight from the answer (tests/test_attribution.py decodes it)
        payload = orjson.dumps({"control": "served", "user_id": user_id, "rec_id": rec_id, "ts": time.time(),
                                "experiment": experiment, "variant": variant, "items": [item for item, _ in shown],
                                "sources": [source if source in _SOURCES else "other" for _, source in shown]})
        stream = self.keys.stream_for_user(user_id)
        if self.fast is not None and self.fast.post(self._prefixes[stream] + b"$%d\r\n%s\r\n" % (len(payload), payload),
                                                    self._replied):
            return rec_id
        future = asyncio.ensure_future(self.client().execute_command("XADD", stream, "*", CONTROL_FIELD, payload))
        self._tasks.add(future)
        future.add_done_callback(self._done)
        return rec_id

    def _replied(self, replies: list[Any] | None, error: BaseException | None) -> None:
        """A record posted on the multiplexed connection: its reply, or the error that lost it."""
        if error is not None or (replies and isinstance(replies[0], hiredis.ReplyError)):
            self._failed.inc()
            log.debug("impression record not written: %s", error or replies)
        else:
            self._recorded.inc()

    def _done(self, future: asyncio.Future[Any]) -> None:
        self._tasks.discard(future)
        if future.cancelled():
            self._failed.inc()
            return
        exc = future.exception()
        reply = future.result() if exc is None else None
        if exc is not None or (isinstance(reply, list) and reply and isinstance(reply[0], hiredis.ReplyError)):
            self._failed.inc()
            log.debug("impression record not written: %s", exc or reply)
        else:
            self._recorded.inc()
