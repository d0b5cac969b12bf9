"""The server's copy of the catalog and the rules, kept within a second of Redis by a background task.

:class:`ServingCatalog` holds a :class:`~online.catalog.snapshot.CatalogReplica`
and the :class:`~online.catalog.rules.Rules` in force. :meth:`ServingCatalog.run`
refreshes both every ``interval_s`` (0.25 s): the catalog's version and the
changes after the copy's in one round trip, the rules' version in another
(the document itself only when its version moved). So a change written
through any server (or ``livereco catalog``) is served by every server
within about a quarter of a second; a server that wrote it refreshes at once.
Requests read :attr:`ServingCatalog.snapshot` and :attr:`ServingCatalog.rules`
without I/O: filters and rules cost no round trip.

The refresh runs on the event loop that answers requests, and applying a
change (decoding it, updating the copy) takes ~13 µs of CPU: read 10,000 at a
time, a bulk import held the loop for ~130 ms at once, every request of that
moment waiting. So while serving, :meth:`ServingCatalog.run` reads at most
:data:`SERVING_BATCH` changes (or, reloading, items) per round trip, and the
loop answers requests between two (about 1.3 ms each); the first load, before
the server listens, keeps the replica's large batches. Requests may see a bulk
import half applied, as they already could past 10,000 changes; each change is
applied whole, and the copy's version moves with it (what the served-list
cache compares).

:func:`run_steps_async` drives the I/O-free operations of
:mod:`online.catalog.protocol` with ``redis.asyncio`` (one pipeline per batch),
as :func:`flows.catalog_store.run_steps` does with redis-py.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, TypeVar

from online.catalog.protocol import CatalogCommands, Command, Steps
from online.catalog.rules import Rules, RulesCommands
from online.catalog.snapshot import CatalogReplica, CatalogSnapshot
from online.contract import RedisKeys
from serving.refresh_loop import refresh_forever

__all__ = ["SERVING_BATCH", "ServingCatalog", "run_steps_async"]

T = TypeVar("T")
log = logging.getLogger("livereco.serving.catalog")

SERVING_BATCH = 100
"""Changes (``XRANGE ... COUNT``) or items (``HSCAN ... COUNT``) read per round trip while the server serves: the
longest the refresh holds the event loop is about this many times ~13 µs."""


async def run_steps_async(client: Any, steps: Steps[T]) -> T:
    """Run an operation of :mod:`online.catalog.protocol` on a ``redis.asyncio`` client: one pipeline per batch."""
    try:
        batch: list[Command] = next(steps)
        while True:
            pipe = client.pipeline(transaction=False)
            for command in batch:
                pipe.execute_command(*command)
            batch = steps.send(await pipe.execute(raise_on_error=False))
    except StopIteration as done:
        return done.value


class ServingCatalog:
    """The catalog snapshot and rules one server process serves with, and the loop that keeps them fresh."""

    def __init__(self, keys: RedisKeys, interval_s: float = 0.25) -> None:
        self.commands = CatalogCommands(keys)
        self.rules_commands = RulesCommands(keys)
        self.replica = CatalogReplica(self.commands)
        self.rules = Rules()
        self.interval_s = interval_s
        self.refreshed_at = 0.0
        """``time.monotonic()`` of the last successful refresh (0: never)."""
        self._lock = asyncio.Lock()

    @property
    def snapshot(self) -> CatalogSnapshot:
        return self.replica.snapshot

    @property
    def active(self) -> bool:
        """Whether anything of the catalog layer applies: a catalog, or rules."""
        return bool(len(self.replica.snapshot) or self.rules.rules)

    async def refresh(self, client: Any) -> None:
        """Bring the catalog and the rules up to date (one refresh at a time)."""
        async with self._lock:
            await run_steps_async(client, self.replica.refresh())
            version = await run_steps_async(client, self.rules_commands.version())
            if version != self.rules.version:
                self.rules = await run_steps_async(client, self.rules_commands.get())
            self.refreshed_at = time.monotonic()

    async def run(self, client: Any) -> None:
        """Refresh every ``interval_s`` until cancelled, :data:`SERVING_BATCH` changes per round trip (the loop answers
        requests between two); a Redis outage is logged once and retried."""
        self.replica.change_count = self.replica.scan_count = SERVING_BATCH
        # a malformed stored rule or item must not stop the refreshes: keep serving, say so
        await refresh_forever(lambda: self.refresh(client), lambda: self.interval_s, "catalog",
                              keep_going_on_any_error=True)
