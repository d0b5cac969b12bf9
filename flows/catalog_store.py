"""The catalog in Redis, from Python and from the command line: ``livereco catalog load FILE``.

:func:`run_steps` drives the I/O-free operations of
:mod:`online.catalog.protocol` with a redis-py client (the server drives the
same operations with ``redis.asyncio``); :class:`CatalogStore` wraps them.
:func:`load_catalog` reads a CSV or JSONL file (one item a row or line),
validates each item with :func:`online.catalog.item.parse_item`, writes them
in pipelined batches (each item atomically) and reports every bad line with
its number and reason. :func:`add_arguments` and :func:`run` are the CLI.

Column mapping (``--columns``, CSV with a header): ``item_id=sku,title=name,
price=price_eur,categories=path,attr.color=colour``; without it, columns named
like the item's fields are taken as they are and ``attr.<name>`` columns
become attributes. ``categories`` and ``tags`` cells hold several values
separated by ``|`` (``--separator``); an empty cell leaves the field out.
``in_stock`` reads ``true/false/1/0/yes/no``; attributes from CSV are strings
(a filter's ``attr.size=42`` matches the string ``"42"`` and the number 42).

Examples
--------
>>> import tempfile
>>> from pathlib import Path
>>> path = Path(tempfile.mkdtemp()) / "items.csv"
>>> _ = path.write_text("sku,name,path,price,stock,colour\\nt1,Treadmill,sports/fitness/treadmills|sale,499,yes,black\\n")
>>> columns = parse_columns("item_id=sku,title=name,categories=path,price=price,in_stock=stock,attr.color=colour")
>>> [(line, raw) for line, raw in iter_catalog_rows(path, columns)]
[(2, {'item_id': 't1', 'title': 'Treadmill', 'categories': ['sports/fitness/treadmills', 'sale'], 'price': 499.0, 'in_stock': True, 'attributes': {'color': 'black'}})]
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import redis

from flows.progress import Progress
from flows.redis_client import connect
from online.catalog.item import FIELDS, CatalogError, Item, parse_item
from online.catalog.protocol import BulkResult, CatalogCommands, Command, Steps
from online.catalog.rules import Rules, RulesCommands, parse_rules
from online.contract import RedisKeys, Settings

__all__ = ["CatalogStore", "LoadReport", "add_arguments", "iter_catalog_rows", "load_catalog", "parse_columns",
           "run", "run_steps"]

T = TypeVar("T")
_LISTS = ("categories", "tags")
_NUMBERS = ("price",)
_TIMES = ("available_from", "available_until", "created_at")


def run_steps(client: Any, steps: Steps[T]) -> T:
    """Run an operation of :mod:`online.catalog.protocol` on a redis-py client: one pipeline per batch.

    The server's asyncio driver is the same with ``await pipe.execute(...)``.
    """
    try:
        batch: list[Command] = next(steps)
        while True:
            pipe = client.pipeline(transaction=False)
            for command in batch:
                pipe.execute_command(*command)
            batch = steps.send(pipe.execute(raise_on_error=False))
    except StopIteration as done:
        return done.value


class CatalogStore:
    """Catalog and rules operations on a redis-py client (synchronous)."""

    def __init__(self, client: Any, keys: RedisKeys, changes_maxlen: int = 100_000) -> None:
        self.client = client
        self.commands = CatalogCommands(keys, changes_maxlen)
        self.rules_commands = RulesCommands(keys)

    def put(self, item: Item) -> int:
        return run_steps(self.client, self.commands.put(item, _now_ms()))

    def put_many(self, items: Sequence[Item]) -> list[int]:
        return run_steps(self.client, self.commands.put_many(items, _now_ms()))

    def patch(self, item_id: str, patch: Mapping[str, Any]) -> Item | None:
        return run_steps(self.client, self.commands.patch(item_id, patch, _now_ms()))

    def get(self, item_id: str) -> Item | None:
        return run_steps(self.client, self.commands.get(item_id))

    def delete(self, item_id: str) -> bool:
        return run_steps(self.client, self.commands.delete(item_id, _now_ms()))

    def write_bulk(self, body: bytes) -> BulkResult:
        return run_steps(self.client, self.commands.write_bulk(body, _now_ms()))

    def version(self) -> int:
        return run_steps(self.client, self.commands.version())

    def put_rules(self, rules: Rules) -> int:
        return run_steps(self.client, self.rules_commands.put(rules))

    def get_rules(self) -> Rules:
        return run_steps(self.client, self.rules_commands.get())


def _now_ms() -> int:
    return int(time.time() * 1000)


# --- the loader ----------------------------------------------------------------------------------------------
def _is_target(name: str) -> bool:
    return name in FIELDS or (name.startswith("attr.") and len(name) > len("attr."))


def parse_columns(spec: str) -> dict[str, str]:
    """``field=Column,...`` as ``{field: column}``; fields are the item's and ``attr.<name>``.

    >>> parse_columns("item_id=sku, attr.size=Size")
    {'item_id': 'sku', 'attr.size': 'Size'}
    >>> parse_columns("sku=item_id")
    Traceback (most recent call last):
    ...
    ValueError: --columns: 'sku' is not an item field (known: attributes, available_from, available_until, brand, categories, created_at, in_stock, item_id, price, tags, title, attr.<name>)
    """
    mapping: dict[str, str] = {}
    for part in spec.split(","):
        target, sep, column = (text.strip() for text in part.partition("="))
        if not part.strip():
            continue
        if not sep or not column:
            raise ValueError(f"--columns: {part.strip()!r}: expected field=Column")
        if not _is_target(target) or target == "attributes":
            raise ValueError(f"--columns: {target!r} is not an item field (known: {', '.join(sorted(FIELDS))}, attr.<name>)")
        mapping[target] = column
    return mapping


def _cell(target: str, text: str, separator: str, line: int) -> Any:
    if target in _LISTS:
        return [part.strip() for part in text.split(separator) if part.strip()]
    if target in _NUMBERS:
        try:
            return float(text)
        except ValueError:
            raise CatalogError(target, f"{text[:40]!r} is not a number") from None
    if target == "in_stock":
        lowered = text.strip().lower()
        if lowered in ("true", "1", "yes", "y"):
            return True
        if lowered in ("false", "0", "no", "n"):
            return False
        raise CatalogError(target, f"{text[:40]!r}: expected true or false")
    if target in _TIMES:
        try:
            return float(text)
        except ValueError:
            return text.strip()  # ISO 8601: the item validates it
    return text


def iter_catalog_rows(path: Path, columns: Mapping[str, str] | None = None, separator: str = "|",
                      fmt: str = "auto") -> Iterator[tuple[int, dict[str, Any] | CatalogError]]:
    """``(line number, raw item or the error of that line)`` for each data line of a CSV or JSONL file."""
    kind = fmt if fmt != "auto" else ("jsonl" if path.suffix.lower() in (".jsonl", ".ndjson", ".json") else "csv")
    with path.open("rb") as raw:
        if kind == "jsonl":
            for number, line in enumerate(raw, start=1):
                if line.strip():
                    try:
                        yield number, msgspec.json.decode(line)
                    except msgspec.DecodeError as exc:
                        yield number, CatalogError("line", f"not valid JSON ({exc})")
            return
        text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
        reader = csv.reader(text, dialect="excel-tab" if path.suffix.lower() == ".tsv" else "excel")
        header = next(reader, None) or []
        mapping = dict(columns) if columns else {name: name for name in header if _is_target(name)}
        missing = [column for column in mapping.values() if column not in header]
        if missing:
            raise ValueError(f"{path}: no column {missing[0]!r} in the header ({', '.join(header)[:200]})")
        where = [(target, header.index(column)) for target, column in mapping.items()]
        for row in reader:
            number = reader.line_num
            try:
                item: dict[str, Any] = {}
                for target, index in where:
                    cell = row[index] if index < len(row) else ""
                    if cell == "":
                        continue
                    if target.startswith("attr."):
                        item.setdefault("attributes", {})[target[len("attr."):]] = cell
                    else:
                        item[target] = _cell(target, cell, separator, number)
                yield number, item
            except CatalogError as exc:
                yield number, exc


@dataclass
class LoadReport:
    """What a load did; ``errors`` holds the first 100 bad lines as ``file:line: field: reason``."""

    written: int = 0
    unchanged: int = 0
    rejected: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        total = self.written + self.unchanged
        rate = total / self.seconds if self.seconds > 0 else 0.0
        return (f"livereco catalog load: {self.written:,} items written, {self.unchanged:,} unchanged, "
                f"{self.rejected:,} rejected in {self.seconds:.1f} s ({rate:,.0f} items/s)")


def load_catalog(path: Path, store: CatalogStore, columns: Mapping[str, str] | None = None, separator: str = "|",
                 fmt: str = "auto", batch: int = 1000, progress: bool = True) -> LoadReport:
    """Validate and write every item of ``path``, ``batch`` items per round trip; bad lines are reported, not fatal."""
    report = LoadReport()
    shown = Progress(None, "livereco catalog load", unit="items", enabled=progress)
    started = time.monotonic()
    pending: list[Item] = []

    def flush() -> None:
        versions = store.put_many(pending)
        unchanged = sum(1 for version in versions if version == 0)
        report.written += len(versions) - unchanged
        report.unchanged += unchanged
        pending.clear()

    for number, raw in iter_catalog_rows(path, columns, separator, fmt):
        try:
            if isinstance(raw, CatalogError):
                raise raw
            pending.append(parse_item(raw))
        except CatalogError as exc:
            report.rejected += 1
            if len(report.errors) < 100:
                report.errors.append(f"{path}:{number}: {exc}")
                shown.note(report.errors[-1])
        if len(pending) >= batch:
            flush()
            shown.update(report.written + report.unchanged)
    if pending:
        flush()
    report.seconds = time.monotonic() - started
    shown.update(report.written + report.unchanged)
    shown.close()
    return report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``livereco catalog`` options: ``load FILE`` (and ``rules FILE``, a rules document)."""
    parser.add_argument("action", choices=("load", "rules"), help="load: items from a CSV/JSONL file;"
                        " rules: replace the merchandising rules with a JSON document")
    parser.add_argument("file", help="the items (.csv, .tsv, .jsonl/.ndjson) or the rules (.json)")
    parser.add_argument("--format", choices=("auto", "csv", "jsonl"), default="auto",
                        help="the file's format (default: by extension)")
    parser.add_argument("--columns", type=parse_columns, default=None, metavar="MAPPING",
                        help="field=Column,... (item_id=sku,title=name,attr.color=colour); default: columns named"
                        " like the item's fields")
    parser.add_argument("--separator", default="|", help="between the values of a categories or tags cell (default |)")
    parser.add_argument("--batch", type=int, default=1000, metavar="N", help="items per round trip (default 1000)")
    parser.add_argument("--no-progress", action="store_true", help="no progress display on stderr")


def run(args: argparse.Namespace, settings: Settings) -> int:
    """``livereco catalog``: 0 when done, 1 for a Redis failure, 2 for a missing or bad file."""
    path = Path(args.file)
    if not path.is_file():
        print(f"livereco catalog: {path}: no such file", file=sys.stderr)
        return 2
    try:
        client = connect(settings.redis_url)
    except (ValueError, redis.ConnectionError) as exc:
        print(f"livereco catalog: {exc}", file=sys.stderr)
        return 2
    store = CatalogStore(client, settings.keys)
    try:
        if args.action == "rules":
            version = store.put_rules(parse_rules(msgspec.json.decode(path.read_bytes())))
            print(f"livereco catalog rules: version {version}")
            return 0
        report = load_catalog(path, store, args.columns, args.separator, args.format, args.batch,
                              progress=not args.no_progress)
    except (ValueError, OSError, msgspec.DecodeError) as exc:
        print(f"livereco catalog: {exc}", file=sys.stderr)
        return 2
    except redis.RedisError as exc:
        print(f"livereco catalog: Redis: {exc}", file=sys.stderr)
        return 1
    finally:
        client.close()
    print(report.summary())
    return 0
