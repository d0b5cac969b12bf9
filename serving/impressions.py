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
import secrets
import time
from collections.abc import Sequence
from typing import Any

import hiredis
from prometheus_client import CollectorRegistry, Counter

from online.attribution import SOURCES
from online.contract import RedisKeys
from online.contract.control import CONTROL_FIELD, Control
from serving.redis_reads import FastReads

__all__ = ["ImpressionRecorder", "new_rec_id"]

log = logging.getLogger("livereco.serving")


def new_rec_id() -> str:
    """A short random id for one list answer.

    >>> len(new_rec_id()), new_rec_id() != new_rec_id()
    (12, True)
    """
    return secrets.token_hex(6)


class ImpressionRecorder:
    """Appends the impression records; counts them by outcome."""

    def __init__(self, keys: RedisKeys, fast: FastReads | None, client: Any, registry: CollectorRegistry) -> None:
        self.keys = keys
        self.fast = fast
        self.client = client
        """A callable answering the redis-py client (made lazily by the app)."""
        self.counter = Counter("livereco_serving_impressions_total", "Impression records of list answers, by outcome"
                               " (recorded: written; failed: Redis refused or was unreachable; anonymous: no user_id,"
                               " nothing recorded).", ["status"], registry=registry)
        for status in ("recorded", "failed", "anonymous"):
            self.counter.labels(status)
        self._tasks: set[asyncio.Future[Any]] = set()

    def record(self, user_id: str | None, experiment: str, variant: str, items: Sequence[tuple[str, str]]) -> str:
        """The answer's ``rec_id``; for a user, their impression record is on its way to Redis."""
        rec_id = new_rec_id()
        if user_id is None:
            self.counter.labels("anonymous").inc()
            return rec_id
        control = Control.served_list(user_id, rec_id, time.time(), experiment, variant,
                                      tuple(item for item, _ in items),
                                      tuple(source if source in SOURCES else "other" for _, source in items))
        command = ("XADD", self.keys.stream_for_user(user_id), "*", CONTROL_FIELD, control.encode())
        future = self.fast.post(command) if self.fast is not None else None
        if future is None:
            future = asyncio.ensure_future(self.client().execute_command(*command))
            self._tasks.add(future)
        future.add_done_callback(self._done)
        return rec_id

    def _done(self, future: asyncio.Future[Any]) -> None:
        self._tasks.discard(future)
        if future.cancelled():
            self.counter.labels("failed").inc()
            return
        exc = future.exception()
        reply = future.result() if exc is None else None
        if exc is not None or (isinstance(reply, list) and reply and isinstance(reply[0], hiredis.ReplyError)):
            self.counter.labels("failed").inc()
            log.debug("impression record not written: %s", exc or reply)
        else:
            self.counter.labels("recorded").inc()
