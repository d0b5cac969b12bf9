"""Reading event logs: a CSV / TSV / JSONL / ``::``-separated file, one raw event dict per data line.

:func:`iter_log_events` reads; :mod:`flows.replay` validates what it reads and writes it to the
event streams, and the evaluation reads its logs with it too.

Column mapping (``--columns``):

* ``user_id=SessionId,item_id=ItemId,ts=Time``: the file has a header; each
  event field takes the named column (one column may feed several fields).
* ``user_id,item_id,value,ts``: the file has no header; fields by position,
  ``_`` skips a column.
* targets are the contract's fields (``user_id``, ``item_id``, ``type``,
  ``ts``, ``session_id``, ``value``, ``event_id``) and ``context.<key>``.

Without ``--columns``: a ``SessionId ItemId Time`` header (RecSys 2015,
rsc15) is a click log of anonymous sessions; a headerless ``::`` file of four
fields is MovieTweetings ``ratings.dat`` (``user::movie::rating::epoch``); a
header naming contract fields maps them by name; JSONL lines are event
objects already.

Examples
--------
>>> import tempfile
>>> from online.contract import parse_event
>>> from pathlib import Path
>>> folder = Path(tempfile.mkdtemp())
>>> log = folder / "clicks.tsv"
>>> _ = log.write_text("SessionId\\tItemId\\tTime\\n3\\t214716935\\t1396437466.94\\n")
>>> for line, raw in iter_log_events(log):
...     print(line, raw)
2 {'user_id': '3', 'session_id': '3', 'item_id': '214716935', 'ts': '1396437466.94', 'type': 'view'}
>>> ratings = folder / "ratings.dat"
>>> _ = ratings.write_text("1::0104257::8::1365029107\\n")
>>> [parse_event(raw).to_dict() for _, raw in iter_log_events(ratings)]
[{'user_id': '1', 'item_id': '0104257', 'type': 'rating', 'ts': 1365029107.0, 'value': 8.0}]
>>> parse_columns("user_id,_,item_id")
Columns(mapping=None, positional=('user_id', None, 'item_id'))
"""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from online.contract import EventError

__all__ = ["FORMATS", "Columns", "ErrorHandler", "ReadPosition", "detect_format", "iter_log_events", "parse_columns"]


FORMATS = ("auto", "csv", "tsv", "jsonl", "dat")
_EXTENSIONS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".dat": "dat"}
_SEPARATORS = {"tsv": "\t", "dat": "::"}
_PLAIN_TARGETS = ("user_id", "item_id", "type", "ts", "session_id", "value", "event_id")
_RSC15_HEADER = ["SessionId", "ItemId", "Time"]
_RSC15_MAPPING = {"user_id": "SessionId", "session_id": "SessionId", "item_id": "ItemId", "ts": "Time"}
_MOVIETWEETINGS_COLUMNS = ("user_id", "item_id", "value", "ts")

ErrorHandler = Callable[[int, EventError], None]


# --- column mapping --------------------------------------------------------


def _is_target(name: str) -> bool:
    return name in _PLAIN_TARGETS or (name.startswith("context.") and len(name) > len("context."))


def _check_target(name: str, spec: str) -> str:
    if _is_target(name):
        return name
    known = ", ".join(_PLAIN_TARGETS)
    raise ValueError(f"--columns {spec!r}: {name!r} is not an event field ({known}, context.<key>, or _ to skip)")


@dataclass(frozen=True)
class Columns:
    """A column mapping: by header name (``mapping``: field -> column) or by position (``positional``)."""

    mapping: dict[str, str] | None = None
    positional: tuple[str | None, ...] | None = None

    def targets(self) -> list[str]:
        if self.mapping is not None:
            return list(self.mapping)
        return [t for t in self.positional or () if t is not None]


def parse_columns(spec: str) -> Columns:
    """Read ``field=Column,...`` (a header mapping) or ``field,field,_,...`` (positions, ``_`` skips).

    >>> parse_columns("user_id=SessionId,session_id=SessionId,item_id=ItemId").mapping
    {'user_id': 'SessionId', 'session_id': 'SessionId', 'item_id': 'ItemId'}
    >>> parse_columns("user_id=a,itemid=b")
    Traceback (most recent call last):
    ...
    ValueError: --columns 'user_id=a,itemid=b': 'itemid' is not an event field (user_id, item_id, type, ts, session_id, value, event_id, context.<key>, or _ to skip)
    """
    parts = [p.strip() for p in spec.split(",")]
    if not any(parts):
        raise ValueError("--columns is empty")
    if any("=" in p for p in parts):
        mapping: dict[str, str] = {}
        for part in parts:
            target, sep, source = (s.strip() for s in part.partition("="))
            if not sep or not target or not source:
                raise ValueError(f"--columns {spec!r}: {part!r} is not field=Column (do not mix names and positions)")
            if target in mapping:
                raise ValueError(f"--columns {spec!r}: {target!r} is mapped twice")
            mapping[_check_target(target, spec)] = source
        columns = Columns(mapping=mapping)
    else:
        positional = tuple(None if p == "_" else _check_target(p, spec) for p in parts)
        named = [p for p in positional if p is not None]
        if len(set(named)) != len(named):
            raise ValueError(f"--columns {spec!r}: a field is named twice")
        columns = Columns(positional=positional)
    return columns


# --- format detection ------------------------------------------------------


def _first_line(path: Path) -> bytes:
    with path.open("rb") as f:
        for raw in f:
            if raw.strip():
                return raw.removeprefix(b"\xef\xbb\xbf")
    return b""


def _sniff(first: bytes) -> str | None:
    text = first.lstrip()
    if text.startswith((b"{", b"[")):
        return "jsonl"
    if b"::" in text:
        return "dat"
    if b"\t" in text:
        return "tsv"
    if b"," in text:
        return "csv"
    return None


def detect_format(path: str | Path) -> str:
    """The log format, by extension, else by sniffing the first line.

    A ``.dat`` file without ``::`` (the original ``yoochoose-clicks.dat`` is
    comma separated) is sniffed too.

    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "log.txt"
    >>> _ = p.write_text("a\\tb\\n")
    >>> detect_format(p), detect_format("x.ndjson")
    ('tsv', 'jsonl')
    """
    path = Path(path)
    fmt = _EXTENSIONS.get(path.suffix.lower())
    if fmt is not None and fmt != "dat":
        return fmt
    first = _first_line(path)
    if fmt == "dat" and b"::" in first:
        return "dat"
    sniffed = _sniff(first)
    if sniffed is None:
        raise ValueError(f"{path}: cannot tell the format from its extension or first line; pass --format")
    return sniffed


# --- reading ---------------------------------------------------------------


@dataclass
class ReadPosition:
    """How far :func:`iter_log_events` got: the current line number and bytes read (for progress)."""

    line: int = 0
    bytes_read: int = 0


def _raise(line: int, error: EventError) -> None:
    raise error


def _numbered(lines: Iterable[bytes], pos: ReadPosition) -> Iterator[bytes]:
    for raw in lines:
        pos.line += 1
        pos.bytes_read += len(raw)
        yield raw.removeprefix(b"\xef\xbb\xbf") if pos.line == 1 else raw


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EventError("line", f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})") from None


def _fields(fmt: str, text: str) -> list[str]:
    text = text.rstrip("\r\n")
    if fmt == "csv":
        try:
            return next(csv.reader((text,), strict=True))
        except csv.Error as exc:
            raise EventError("line", f"not valid CSV ({exc})") from None
    return text.split(_SEPARATORS[fmt])


@dataclass
class _Plan:
    """A resolved layout for delimited rows: which field takes which column index."""

    targets: list[tuple[str, int]]
    width: int
    default_type: str
    value_type: str | None


def _resolve_type(obj: dict[str, Any], plan_default: str, value_type: str | None) -> None:
    if obj.get("type") in (None, ""):
        obj["type"] = value_type if value_type is not None and obj.get("value") is not None else plan_default


def _row_to_event(row: list[str], plan: _Plan) -> dict[str, Any]:
    if len(row) != plan.width:
        raise EventError("line", f"has {len(row)} fields; expected {plan.width}")
    obj: dict[str, Any] = {}
    context: dict[str, str] = {}
    for target, index in plan.targets:
        cell = row[index].strip()
        if target == "value":
            if cell:
                try:
                    obj["value"] = float(cell)
                except ValueError:
                    raise EventError("value", f"{cell[:40]!r} is not a number") from None
        elif target.startswith("context."):
            if cell:
                context[target[len("context.") :]] = cell
        elif cell or target in ("user_id", "item_id", "ts"):
            obj[target] = cell
    if context:
        obj["context"] = context
    _resolve_type(obj, plan.default_type, plan.value_type)
    return obj


def _plan_delimited(
    path: Path, fmt: str, first: list[str], columns: Columns | None, default_type: str | None, value_type: str | None
) -> tuple[_Plan, bool]:
    """The plan for a delimited file and whether its first line is a header."""
    explicit_type = default_type or "view"
    if columns is None:
        if fmt in ("tsv", "csv") and [c.strip() for c in first] == _RSC15_HEADER:
            columns = Columns(mapping=dict(_RSC15_MAPPING))
        elif fmt == "dat" and len(first) == len(_MOVIETWEETINGS_COLUMNS):
            columns = Columns(positional=_MOVIETWEETINGS_COLUMNS)
            if default_type is None and value_type is None:
                value_type = "rating"
        else:
            known = {name: name for name in (c.strip() for c in first) if _is_target(name)}
            if "user_id" not in known or "item_id" not in known:
                shown = _SEPARATORS.get(fmt, ",").join(first)[:200]
                raise ValueError(
                    f"{path}: the first line ({shown!r}) is not a header naming user_id and item_id,"
                    " and no preset fits; pass --columns (e.g. user_id=User,item_id=Item,ts=Time, or"
                    " user_id,item_id,_,ts for a file without a header)"
                )
            columns = Columns(mapping=known)
    missing = [t for t in ("user_id", "item_id") if t not in columns.targets()]
    if missing:
        raise ValueError(f"{path}: --columns maps no column to {' and '.join(missing)}")
    if columns.mapping is not None:
        if fmt == "dat":
            raise ValueError(f"{path}: a '::' file has no header; give --columns by position, e.g. user_id,item_id,value,ts")
        header = [c.strip() for c in first]
        index = {name: i for i, name in reversed(list(enumerate(header)))}
        unknown = [source for source in columns.mapping.values() if source not in index]
        if unknown:
            raise ValueError(f"{path}: --columns names {unknown[0]!r}, not a column of the header {header}")
        targets = [(target, index[source]) for target, source in columns.mapping.items()]
        return _Plan(targets, len(header), explicit_type, value_type), True
    positional = columns.positional or ()
    targets = [(target, i) for i, target in enumerate(positional) if target is not None]
    return _Plan(targets, len(positional), explicit_type, value_type), False


def _jsonl_events(
    path: Path, lines: Iterator[bytes], pos: ReadPosition, columns: Columns | None, default_type: str, value_type: str | None,
    on_error: ErrorHandler,
) -> Iterator[tuple[int, dict[str, Any]]]:
    renames = list(columns.mapping.items()) if columns is not None and columns.mapping is not None else []
    for raw in lines:
        if not raw.strip():
            continue
        try:
            try:
                obj = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                if pos.line == 1 and raw.lstrip().startswith(b"["):
                    raise ValueError(f"{path}: a JSON array; JSONL wants one event object per line") from None
                raise EventError("line", f"not valid JSON ({exc})") from None
            if pos.line == 1 and isinstance(obj, list):
                raise ValueError(f"{path}: a JSON array; JSONL wants one event object per line")
            if isinstance(obj, dict):
                if renames:
                    moved = {target: obj[source] for target, source in renames if source in obj}
                    for _, source in renames:
                        obj.pop(source, None)
                    for target, value in moved.items():
                        if target.startswith("context."):
                            context = obj.setdefault("context", {})
                            if isinstance(context, dict):
                                context[target[len("context.") :]] = value
                        else:
                            obj[target] = value
                _resolve_type(obj, default_type, value_type)
        except EventError as exc:
            on_error(pos.line, exc)
            continue
        yield pos.line, obj


def _delimited_events(
    lines: Iterator[bytes], pos: ReadPosition, fmt: str, plan: _Plan, on_error: ErrorHandler
) -> Iterator[tuple[int, dict[str, Any]]]:
    for raw in lines:
        if not raw.strip():
            continue
        try:
            obj = _row_to_event(_fields(fmt, _decode(raw)), plan)
        except EventError as exc:
            on_error(pos.line, exc)
            continue
        yield pos.line, obj


def iter_log_events(
    path: str | Path,
    fmt: str = "auto",
    columns: Columns | str | None = None,
    default_type: str | None = None,
    *,
    value_type: str | None = None,
    on_error: ErrorHandler | None = None,
    position: ReadPosition | None = None,
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, raw event dict)`` for each data line of ``path``, not yet validated.

    ``default_type`` (``view`` when ``None``) is the type of rows without a
    type column; ``value_type`` the type of rows with a value. A line that
    cannot become a dict at all (invalid UTF-8, malformed JSON or CSV, wrong
    number of fields, non-numeric value) goes to ``on_error(line, EventError)``
    and is skipped; without a handler it raises. Blank lines are skipped.
    The file's layout (format, header, mapping) is checked before the first
    row, raising :class:`ValueError` with a message naming the file.
    ``position`` (if given) follows the line number and bytes read.
    """
    path = Path(path)
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r}: expected one of {', '.join(FORMATS)}")
    if isinstance(columns, str):
        columns = parse_columns(columns)
    if fmt == "auto":
        fmt = detect_format(path)
    if fmt == "jsonl" and columns is not None and columns.mapping is None:
        raise ValueError(f"{path}: --columns by position does not apply to JSONL; rename keys with field=key,...")
    handler = on_error or _raise
    pos = position if position is not None else ReadPosition()
    f = path.open("rb")
    try:
        lines = _numbered(f, pos)
        if fmt == "jsonl":
            return _closing(f, _jsonl_events(path, lines, pos, columns, default_type or "view", value_type, handler))
        first: bytes | None = None
        for raw in lines:
            if raw.strip():
                first = raw
                break
        if first is None:
            return _closing(f, iter(()))
        try:
            header = _fields(fmt, _decode(first))
        except EventError as exc:
            raise ValueError(f"{path}:{pos.line}: {exc}") from None
        plan, has_header = _plan_delimited(path, fmt, header, columns, default_type, value_type)
        if not has_header:
            # the first line is data: put it back in front (``pos`` already counts it)
            lines = itertools.chain([first], lines)
        return _closing(f, _delimited_events(lines, pos, fmt, plan, handler))
    except BaseException:
        f.close()
        raise


def _closing(f: io.BufferedReader, events: Iterator[tuple[int, dict[str, Any]]]) -> Iterator[tuple[int, dict[str, Any]]]:
    with f:
        yield from events
