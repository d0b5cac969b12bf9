"""A Bytewax source over the catalog's change stream: every item change, once, in version order.

One partition (the catalog is one stream, ``RedisKeys.catalog_changes()``,
whose entry ids are the catalog versions ``<version>-0``: see
:mod:`online.catalog.protocol`). Its resume state is the last version it
handed on: with recovery on, a restarted flow reads the changes after the
last consistent snapshot again, and a change applied twice sets the same
state (every entry carries the item's whole state), so the catalog keeps
exactly-once effects.

**Bootstrap.** A flow that starts with nothing (version 0) or whose position
fell behind the stream's trimmed start (the stream keeps ~100k changes)
cannot follow the stream alone. As the server's replica does
(:class:`online.catalog.snapshot.CatalogReplica`), it then reads the version,
scans the items hash (``HSCAN``, one step per batch) and hands on each item as
a change of that version with ``at_ms = 0`` (a bootstrap change is no news:
it does not make an item an exploration candidate), then follows the stream
from that version (entries the scan already saw are applied again:
harmless). The resume state stays at the old position until the scan is
complete, so a restart mid-scan scans again. An item deleted while the flow
was that far behind stays known to the flow (the scan cannot see deletions):
a fact about an item that no longer sells, which the server's catalog filter
hides anyway.

**Loaded.** Once the partition has read the catalog as it stood when it
started (the scan done, the stream followed to its end), it sets the
source's ``loaded`` event, which the flow's event source waits for: no event
is learned before its item's catalog facts are known.

``stop_at_end`` (replays, tests) ends the partition once it has read
everything present. On Redis errors the partition backs off as the event
source does (:class:`~flows.redis_client.Backoff`).
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from typing_extensions import override

from flows.metrics import REDIS_ERRORS
from flows.redis_client import REDIS_EXCEPTIONS, Backoff, RedisClient, connect
from online.catalog.item import decode_item
from online.catalog.protocol import CatalogChange, decode_change
from online.contract import RedisKeys

__all__ = ["CatalogSource"]

log = logging.getLogger(__name__)

PARTITION = "catalog"


def _fields(fields: Any) -> dict[Any, Any]:
    if isinstance(fields, dict):
        return fields
    pairs = iter(fields)
    return dict(zip(pairs, pairs, strict=True))


class _CatalogPartition(StatefulSourcePartition[CatalogChange, int]):
    def __init__(self, client: RedisClient, keys: RedisKeys, version: int, read_count: int, poll_interval_s: float,
                 stop_at_end: bool, scan_count: int = 2000, loaded: threading.Event | None = None):
        self._client = client
        self._loaded = loaded
        self._keys = keys
        self._version = version
        """The last version handed on (the resume state)."""
        self._read_count = read_count
        self._scan_count = scan_count
        self._poll = timedelta(seconds=poll_interval_s)
        self._stop_at_end = stop_at_end
        self._awake: datetime | None = None
        self._backoff = Backoff("reading the catalog changes", log)
        self._scan: tuple[int, int] | None = None
        """While bootstrapping: (the version the scan stands for, the next HSCAN cursor)."""
        self.bootstraps = 0

    @override
    def next_batch(self) -> list[CatalogChange]:
        try:
            batch = self._scan_step() if self._scan is not None else self._follow()
        except REDIS_EXCEPTIONS as exc:
            REDIS_ERRORS.labels("read").inc()
            self._awake = datetime.now(UTC) + timedelta(seconds=self._backoff.failed(exc))
            return []  # the position stays on the last change handed on
        self._backoff.succeeded()
        return batch

    def _follow(self) -> list[CatalogChange]:
        keys = self._keys
        pipe = self._client.pipeline(transaction=False)
        pipe.get(keys.catalog_version())
        pipe.xrange(keys.catalog_changes(), f"{self._version + 1}-0", "+", count=self._read_count)
        current_raw, entries = pipe.execute()
        current = int(current_raw or 0)
        changes = [decode_change(entry_id, _fields(fields)) for entry_id, fields in entries]
        if self._loaded is not None and not self._scan and self._read_to(current, changes):
            self._loaded.set()
        if (changes and changes[0].version != self._version + 1) or (not changes and current > self._version) \
                or current < self._version:  # trimmed past us (or never read), or the catalog was wiped
            self._scan = (current, 0)
            self.bootstraps += 1
            log.info("catalog: bootstrapping from the items hash at version %d (the flow was at %d)",
                     current, self._version)
            return self._scan_step()
        if not changes:
            if self._stop_at_end:
                raise StopIteration
            self._awake = datetime.now(UTC) + self._poll
            return []
        self._awake = None
        self._version = changes[-1].version
        return changes

    def _read_to(self, current: int, changes: list[CatalogChange]) -> bool:
        """Whether this read reaches the catalog's ``current`` version (with no bootstrap to do first)."""
        last = changes[-1].version if changes else self._version
        return self._version <= current <= last and (not changes or changes[0].version == self._version + 1)

    def _scan_step(self) -> list[CatalogChange]:
        assert self._scan is not None
        version, cursor = self._scan
        next_cursor, flat = self._client.hscan(self._keys.catalog_items(), cursor, count=self._scan_count)
        values = flat.values() if isinstance(flat, dict) else flat[1::2]
        batch = []
        for blob in values:
            item = decode_item(blob)
            batch.append(CatalogChange(version, item.item_id, item, 0))
        if int(next_cursor) == 0:
            self._scan = None
            self._version = version
        else:
            self._scan = (version, int(next_cursor))
        self._awake = None
        return batch

    @override
    def next_awake(self) -> datetime | None:
        return self._awake

    @override
    def snapshot(self) -> int:
        return self._version

    @override
    def close(self) -> None:
        self._client.close()


class CatalogSource(FixedPartitionedSource[CatalogChange, int]):
    """The catalog's changes (one partition), resuming after the last version a snapshot holds."""

    def __init__(self, redis_url: str, keys: RedisKeys, *, read_count: int = 1000, poll_interval_s: float = 0.1,
                 stop_at_end: bool = False):
        self.loaded = threading.Event()
        """Set once the partition has read the catalog as it stood at start-up (see the module)."""
        self.redis_url = redis_url
        self.keys = keys
        self.read_count = read_count
        self.poll_interval_s = poll_interval_s
        self.stop_at_end = stop_at_end

    @override
    def list_parts(self) -> list[str]:
        return [PARTITION]

    @override
    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _CatalogPartition:
        return _CatalogPartition(connect(self.redis_url), self.keys, resume_state or 0, self.read_count,
                                 self.poll_interval_s, self.stop_at_end, loaded=self.loaded)
