"""The catalog's Redis protocol, without I/O: what to send for each operation, and what the replies mean.

Each operation is a generator of command batches (the "sans-I/O" style of
h11): it yields a list of commands, receives their replies (errors as
exception objects, not raised) and finally returns its result. A driver runs
it against a client: :func:`flows.catalog_store.run_steps` with redis-py, and
the server's with ``redis.asyncio`` (the same ten lines with ``await``). So
the flow's loader, the CLI and the HTTP API write items the same way, and
``online/`` stays free of I/O.

The layout (:class:`~online.contract.keys.RedisKeys`, all tagged
``{catalog}``): a hash ``items`` (id -> item JSON), a counter ``version`` and
a stream ``changes`` whose entry ids are the versions (``<version>-0``). One
Lua script (:data:`WRITE_SCRIPT`) writes an item, raises the version and
appends the change together, so a reader that has version ``v`` and reads the
stream from ``v + 1`` misses nothing; a gap (the stream was trimmed past it)
means a full reload (:mod:`online.catalog.snapshot`). Writing what is already
stored changes nothing and costs no version, so loading the same file twice
is free. A patch is read-modify-write: the script applies it only if the item
is still the one the patch was computed from, and the patch is retried
otherwise.

Examples
--------
>>> from online.contract import RedisKeys
>>> commands = CatalogCommands(RedisKeys("lr"))
>>> steps = commands.get("sku-1")
>>> next(steps)
[('HGET', 'lr:{catalog}:items', 'sku-1')]
>>> try:
...     steps.send([b'{"item_id":"sku-1","price":5.0}'])
... except StopIteration as done:
...     print(done.value)
Item(item_id='sku-1', title=None, categories=(), brand=None, price=5.0, in_stock=True, available_from=None, available_until=None, tags=(), attributes={}, created_at=None)
>>> change = decode_change(b"7-0", {b"id": b"sku-1", b"item": b"", b"t": b"1700000000000"})
>>> change.version, change.item_id, change.item
(7, 'sku-1', None)
"""

from __future__ import annotations

import hashlib
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec

from online.catalog.item import CatalogError, Item, apply_patch, decode_item, encode_item, parse_item
from online.contract.keys import RedisKeys

__all__ = [
    "WRITE_SCRIPT",
    "BulkResult",
    "CatalogChange",
    "CatalogCommands",
    "Command",
    "Steps",
    "decode_change",
    "parse_bulk",
]

T = TypeVar("T")
Command = tuple[Any, ...]
Steps = Generator[list[Command], list[Any], T]
"""An operation: yields command batches, is sent each batch's replies, returns its result."""

WRITE_SCRIPT = """
local current = redis.call('HGET', KEYS[1], ARGV[1])
if ARGV[3] ~= '*' and current ~= ARGV[3] then return -1 end
if ARGV[2] == '' and not current then return -2 end
if current == ARGV[2] then return 0 end
local version = tonumber(redis.call('GET', KEYS[2]) or '0') + 1
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], version .. '-0', 'id', ARGV[1], 'item', ARGV[2], 't', ARGV[5])
if ARGV[2] == '' then redis.call('HDEL', KEYS[1], ARGV[1]) else redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
redis.call('SET', KEYS[2], version)
return version
"""
"""KEYS: items, version, changes. ARGV: item id, new JSON ('' deletes), expected JSON ('*': any), stream
MAXLEN, time (ms). Returns the new version, 0 (unchanged), -1 (the item changed since it was read),
-2 (deleting an absent item). The XADD comes first: if it fails, nothing was written."""

_WRITE_SHA = hashlib.sha1(WRITE_SCRIPT.encode()).hexdigest()
_CONFLICT, _ABSENT = -1, -2


@dataclass(frozen=True, slots=True)
class CatalogChange:
    """One entry of the change stream: ``item`` is ``None`` when the item was deleted."""

    version: int
    item_id: str
    item: Item | None
    at_ms: int


def decode_change(entry_id: bytes | str, fields: Mapping[Any, Any]) -> CatalogChange:
    """A change stream entry (``XRANGE``/``XREAD`` reply: id and fields, bytes or str)."""
    def field(name: str) -> Any:
        value = fields.get(name.encode(), fields.get(name))
        return value.decode() if isinstance(value, bytes) else value

    version = int(str(entry_id.decode() if isinstance(entry_id, bytes) else entry_id).partition("-")[0])
    item_json = field("item")
    return CatalogChange(version, field("id"), decode_item(item_json) if item_json else None, int(field("t") or 0))


@dataclass(slots=True)
class BulkResult:
    """What a bulk write did: how many items were written, unchanged, and each bad line's error."""

    written: int = 0
    unchanged: int = 0
    errors: list[tuple[int, CatalogError]] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The answer's shape: ``{"written", "unchanged", "rejected", "errors": [{"index", "field", "message"}]}``."""
        errors = self.errors or []
        return {"written": self.written, "unchanged": self.unchanged, "rejected": len(errors),
                "errors": [{"index": index, "field": error.field, "message": error.message} for index, error in errors]}


def parse_bulk(body: bytes, max_items: int = 10_000) -> tuple[list[tuple[int, Item]], list[tuple[int, CatalogError]]]:
    """The items of a bulk body, a JSON array or NDJSON (one object a line), and each bad one's error.

    Indexes are 0-based positions in the array, or 1-based line numbers of NDJSON (blank lines skipped).

    >>> good, bad = parse_bulk(b'{"item_id": "a"}\\n\\n{"item_id": "b", "price": "x"}\\n{"item_id": "c"}\\n')
    >>> [(line, item.item_id) for line, item in good], [(line, str(error)) for line, error in bad]
    ([(1, 'a'), (4, 'c')], [(3, 'price: Expected `float | null`, got `str`')])
    >>> parse_bulk(b'[{"item_id": "a"}, 7]')[1][0][1].message
    'must be a JSON object, not int'
    """
    good: list[tuple[int, Item]] = []
    bad: list[tuple[int, CatalogError]] = []
    stripped = body.lstrip()
    if stripped.startswith(b"["):
        try:
            rows: Iterable[tuple[int, Any]] = enumerate(msgspec.json.decode(stripped))
        except msgspec.DecodeError as exc:
            raise CatalogError("body", f"not a valid JSON array ({exc})") from None
    else:
        rows = _ndjson(body)
    for index, obj in rows:
        if len(good) + len(bad) >= max_items:
            raise CatalogError("body", f"holds more than {max_items} items")
        if isinstance(obj, CatalogError):
            bad.append((index, obj))
            continue
        try:
            good.append((index, parse_item(obj)))
        except CatalogError as exc:
            bad.append((index, exc))
    return good, bad


def _ndjson(body: bytes) -> Iterator[tuple[int, Any]]:
    for number, line in enumerate(body.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield number, msgspec.json.decode(line)
        except msgspec.DecodeError as exc:
            yield number, CatalogError("line", f"not valid JSON ({exc})")


def _is_noscript(reply: Any) -> bool:
    """Redis does not know the script yet (redis-py turns ``NOSCRIPT ...`` into ``No matching script...``)."""
    return isinstance(reply, Exception) and ("NOSCRIPT" in str(reply) or "No matching script" in str(reply))


def _check(reply: Any) -> Any:
    if isinstance(reply, Exception):
        raise reply
    return reply


class CatalogCommands:
    """The catalog operations as :data:`Steps`, for any driver.

    ``changes_maxlen`` bounds the change stream (approximately, ``MAXLEN ~``):
    a server or flow further behind than that reloads the whole catalog.
    ``now_ms`` stamps each change; the driver passes the wall clock.
    """

    def __init__(self, keys: RedisKeys, changes_maxlen: int = 100_000, max_patch_attempts: int = 8) -> None:
        self.keys = keys
        self.changes_maxlen = changes_maxlen
        self.max_patch_attempts = max_patch_attempts
        self._keys = (keys.catalog_items(), keys.catalog_version(), keys.catalog_changes())

    def _write(self, item_id: str, blob: bytes, expected: bytes | str, now_ms: int) -> Command:
        return ("EVALSHA", _WRITE_SHA, 3, *self._keys, item_id, blob, expected, self.changes_maxlen, now_ms)

    def _run_writes(self, writes: list[Command]) -> Steps[list[int]]:
        """``writes`` in one batch; loads the script and sends them again if Redis does not know it yet."""
        replies = yield writes
        if any(_is_noscript(reply) for reply in replies):
            replies = (yield [("SCRIPT", "LOAD", WRITE_SCRIPT), *writes])[1:]
        return [int(_check(reply)) for reply in replies]

    def get(self, item_id: str) -> Steps[Item | None]:
        """The stored item, or ``None``."""
        (blob,) = yield [("HGET", self.keys.catalog_items(), item_id)]
        return None if blob is None else decode_item(_check(blob))

    def put(self, item: Item, now_ms: int) -> Steps[int]:
        """Create or replace ``item``: its new version, or 0 when it was stored already as it is."""
        (version,) = yield from self._run_writes([self._write(item.item_id, encode_item(item), "*", now_ms)])
        return version

    def put_many(self, items: Sequence[Item], now_ms: int) -> Steps[list[int]]:
        """Create or replace each of ``items`` (each atomically, all in one round trip): each one's version or 0."""
        if not items:
            return []
        return (yield from self._run_writes([self._write(item.item_id, encode_item(item), "*", now_ms)
                                             for item in items]))

    def delete(self, item_id: str, now_ms: int) -> Steps[bool]:
        """Remove the item; ``False`` when there was none."""
        (version,) = yield from self._run_writes([self._write(item_id, b"", "*", now_ms)])
        return version != _ABSENT

    def patch(self, item_id: str, patch: Any, now_ms: int) -> Steps[Item | None]:
        """Apply a merge patch (:func:`~online.catalog.item.apply_patch`); ``None`` when the item does not exist.

        Raises :class:`CatalogError` for a bad patch, or when the item kept changing under it.
        """
        for _ in range(self.max_patch_attempts):
            (blob,) = yield [("HGET", self.keys.catalog_items(), item_id)]
            if _check(blob) is None:
                return None
            changed = apply_patch(decode_item(blob), patch)
            (version,) = yield from self._run_writes([self._write(item_id, encode_item(changed), blob, now_ms)])
            if version == _ABSENT:
                return None
            if version != _CONFLICT:
                return changed
        raise CatalogError("item", f"changed {self.max_patch_attempts} times while being patched; try again")

    def write_bulk(self, body: bytes, now_ms: int, max_items: int = 10_000) -> Steps[BulkResult]:
        """A bulk body (:func:`parse_bulk`): every good item written, each bad one reported, in one round trip."""
        good, bad = parse_bulk(body, max_items)
        versions = yield from self.put_many([item for _, item in good], now_ms)
        unchanged = sum(1 for version in versions if version == 0)
        return BulkResult(written=len(versions) - unchanged, unchanged=unchanged, errors=bad)

    def version(self) -> Steps[int]:
        """The catalog's current version (0: never written)."""
        (raw,) = yield [("GET", self.keys.catalog_version())]
        return int(_check(raw) or 0)

    def scan(self, cursor: int, count: int = 2000) -> Command:
        """One ``HSCAN`` step of the whole catalog (its reply: next cursor, ``[id, json, id, json, ...]``)."""
        return ("HSCAN", self.keys.catalog_items(), cursor, "COUNT", count)

    def changes_after(self, version: int, count: int = 10_000) -> Command:
        """The changes after ``version``, oldest first (``XRANGE``; decode each with :func:`decode_change`)."""
        return ("XRANGE", self.keys.catalog_changes(), f"{version + 1}-0", "+", "COUNT", count)
