"""``livereco replay FILE``: stream a CSV / TSV / JSONL / ``::``-separated log into the event streams.

Parsing (:func:`iter_log_events`: one raw event dict per data line) is kept
apart from writing (:func:`replay`: validate each dict with the contract's
:func:`~online.contract.parse_event`, write valid events in batches with
:class:`~flows.event_writer.EventWriter`, report every bad line with its
number and reason). :func:`add_arguments` and :func:`run` are the CLI.

Reading the file (formats, column mapping, :func:`iter_log_events`) is :mod:`flows.event_log`.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import redis

from flows.catalog import GENRE_RULES, attach_category, read_movie_genres
from flows.event_log import (
    FORMATS,
    Columns,
    ReadPosition,
    detect_format,
    iter_log_events,
    parse_columns,
)
from flows.event_writer import EventWriter
from flows.progress import Progress
from flows.redis_client import RedisClient, connect
from online.contract import Event, EventError, EventLimits, Settings, parse_event

__all__ = [
    "FORMATS",
    "Columns",
    "ReadPosition",
    "Rejection",
    "ReplayReport",
    "add_arguments",
    "detect_format",
    "iter_log_events",
    "parse_columns",
    "replay",
    "run",
]


_REPORTED_REJECTIONS = 10


# --- writing ---------------------------------------------------------------


@dataclass(frozen=True)
class Rejection:
    """One bad line: its number and the reason (the :class:`EventError` text)."""

    line: int
    message: str


@dataclass
class ReplayReport:
    """What one replay did. ``read`` counts data lines (valid or not)."""

    read: int = 0
    written: int = 0
    rejected: int = 0
    seconds: float = 0.0
    rejections: list[Rejection] = field(default_factory=list)
    strict_failure: Rejection | None = None
    interrupted: bool = False
    value_range: tuple[float, float] | None = None

    @property
    def events_per_s(self) -> float:
        return self.written / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        """The one-line summary ``livereco replay`` prints.

        >>> ReplayReport(read=12, written=10, rejected=2, seconds=0.5).summary()
        'replayed 10 events (2 rejected) in 0.5 s, 20 events/s'
        """
        return (
            f"replayed {self.written:,} events ({self.rejected:,} rejected) in {self.seconds:.1f} s,"
            f" {self.events_per_s:,.0f} events/s"
        )


class _Stop(Exception):
    """Raised from the error handler to end the read (``--strict``, ``--limit``)."""


def replay(
    path: str | Path,
    settings: Settings,
    client: RedisClient,
    *,
    fmt: str = "auto",
    columns: Columns | str | None = None,
    default_type: str | None = None,
    value_type: str | None = None,
    rate: float = 0.0,
    batch: int = 500,
    limit: int | None = None,
    strict: bool = False,
    time_shift: str = "none",
    progress: bool = False,
    err: TextIO | None = None,
    max_printed: int = 100,
    categories: Mapping[str, str] | None = None,
) -> ReplayReport:
    """Validate each line of ``path`` with the contract and append the valid events to the streams.

    Bad lines are printed to ``err`` (default stderr) as ``FILE:LINE: reason``
    (the first ``max_printed``; all are counted) and do not stop the replay,
    unless ``strict``: then the events before the bad line are written and the
    replay stops (``report.strict_failure``). ``rate`` (events/s, 0: as fast
    as possible) holds the average rate; ``limit`` caps the data lines read.
    ``time_shift="now"`` moves every timestamp by the same amount so the first
    valid event happens now; an event shifted more than the contract's
    future bound (24 h) ahead of the clock is rejected. ``categories``
    (item -> category, e.g. from a ``movies.dat``: :mod:`flows.catalog`) become
    the ``context.category`` of their items' events that name none, as
    ``livereco eval`` gives them.
    """
    if batch < 1:
        raise ValueError(f"batch {batch}: must be at least 1")
    if rate < 0:
        raise ValueError(f"rate {rate}: must be 0 (unlimited) or positive")
    if time_shift not in ("none", "now"):
        raise ValueError(f"time shift {time_shift!r}: expected none or now")
    err = sys.stderr if err is None else err
    path = Path(path)
    report = ReplayReport()
    pos = ReadPosition()
    writer = EventWriter(client, settings.keys, settings.stream_maxlen)
    weights = settings.weights
    max_future_s = EventLimits().max_future_s
    # under a rate limit, write at least ~10 times a second so the rate is smooth
    batch_size = min(batch, max(1, int(rate / 10))) if rate > 0 else batch
    size = _size(path)
    # on a terminal one redrawn line; in a log a line every 5 s
    bar = Progress(None, "replay", unit="events written", stream=err, log_every_s=5.0, enabled=progress)

    def show() -> None:
        bar.update(report.written, pos.bytes_read / size if size else None)
    pending: list[Event] = []
    shift: float | None = None
    low: float | None = None
    high: float | None = None
    t0 = time.monotonic()

    def reject(line: int, error: EventError) -> None:
        report.rejected += 1
        rejection = Rejection(line, str(error))
        if len(report.rejections) < _REPORTED_REJECTIONS:
            report.rejections.append(rejection)
        if report.rejected <= max_printed:
            bar.note(f"{path}:{line}: rejected: {error}")
            if report.rejected == max_printed:
                bar.note(f"{path}: further rejected lines are counted, not printed")
        if strict:
            report.strict_failure = rejection
            raise _Stop

    def on_read_error(line: int, error: EventError) -> None:
        if limit is not None and report.read >= limit:
            raise _Stop
        report.read += 1
        reject(line, error)

    def flush() -> None:
        if pending:
            writer.append(pending)
            report.written += len(pending)
            pending.clear()
        if rate > 0:
            delay = t0 + report.written / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        show()

    events = iter_log_events(
        path, fmt, columns, default_type, value_type=value_type, on_error=on_read_error, position=pos
    )
    try:
        now = time.time()
        for line, raw in events:
            if limit is not None and report.read >= limit:
                break
            report.read += 1
            if categories:
                attach_category(raw, categories)
            try:
                event = parse_event(raw, now=now, weights=weights)
                if time_shift == "now":
                    if shift is None:
                        shift = time.time() - event.ts
                    event = dataclasses.replace(event, ts=event.ts + shift)
                    if event.ts > now + max_future_s:
                        raise EventError(
                            "ts",
                            f"shifted by --time-shift now to {event.ts:.0f}, more than {max_future_s:.0f} s in the"
                            " future (the log runs on more than a day past its first event)",
                        )
            except EventError as exc:
                reject(line, exc)
                show()
                continue
            if event.type == "rating" and event.value is not None:
                low = event.value if low is None else min(low, event.value)
                high = event.value if high is None else max(high, event.value)
            pending.append(event)
            if len(pending) >= batch_size:
                flush()
                now = time.time()
        flush()
    except _Stop:
        flush()
    except KeyboardInterrupt:
        report.interrupted = True
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()
        report.seconds = time.monotonic() - t0
        show()
        bar.close()
    if low is not None and high is not None:
        report.value_range = (low, high)
        lo, hi = weights.rating_range
        if low < lo or high > hi:
            err.write(
                f"note: ratings span {low:g}..{high:g} but LIVERECO_RATING_RANGE is {lo:g},{hi:g};"
                f" values outside it count as the nearest end (set LIVERECO_RATING_RANGE={low:g},{high:g}?)\n"
            )
    return report


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


# --- CLI -------------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} must be 0 (as fast as possible) or a positive rate")
    return value


def _columns(text: str) -> Columns:
    try:
        return parse_columns(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``livereco replay`` options."""
    parser.add_argument("file", help="the log: .csv, .tsv, .jsonl/.json/.ndjson or a '::'-separated .dat")
    parser.add_argument("--format", choices=FORMATS, default="auto",
                        help="the file's format (default: by extension, else by sniffing the first line)")
    parser.add_argument("--columns", type=_columns, default=None, metavar="MAPPING",
                        help="field=Column,... for a file with a header (user_id=SessionId,item_id=ItemId,ts=Time),"
                        " or field,field,... by position for one without (user_id,item_id,value,ts; _ skips);"
                        " default: a preset (rsc15 header, MovieTweetings ratings.dat) or a header of event fields")
    parser.add_argument("--type", default=None, metavar="TYPE",
                        help="event type of rows without a type column (default: view; rating for ratings.dat)")
    parser.add_argument("--value-type", default=None, metavar="TYPE",
                        help="event type of rows with a value (e.g. rating), when there is no type column")
    parser.add_argument("--rate", type=_rate, default=0.0, metavar="EVENTS_PER_S",
                        help="average events per second (default 0: as fast as possible)")
    parser.add_argument("--batch", type=_positive_int, default=500, metavar="N",
                        help="events per MULTI/EXEC round trip (default 500)")
    parser.add_argument("--limit", type=_positive_int, default=None, metavar="N",
                        help="read at most N data lines")
    parser.add_argument("--no-progress", action="store_true", help="no progress display on stderr")
    parser.add_argument("--time-shift", choices=("none", "now"), default="none",
                        help="now: shift every timestamp so the first event happens now (default none)")
    parser.add_argument("--strict", action="store_true",
                        help="stop at the first bad line (exit code 2) instead of reporting it and going on")
    parser.add_argument("--genres", choices=GENRE_RULES, default="first",
                        help="with a movies.* file beside the log: which of a movie's genres becomes its events'"
                        " category, as livereco eval does (first listed, rarest in the catalog, all combined as one,"
                        " or none: no categories)")


def _categories_beside(log: Path, rule: str) -> dict[str, str] | None:
    """Item categories from a ``movies.*`` file beside ``log`` under genre ``rule`` (``None``: no file, or ``none``)."""
    found = sorted(log.parent.glob("movies.*")) if rule != "none" else []
    if not found:
        return None
    catalog = read_movie_genres(found[0])
    categories = catalog.categories(rule)
    print(f"livereco replay: {found[0].name}: {rule} genre as the category of {len(categories):,} movies' events"
          + (f"; {len(catalog.rejected)} lines not valid, skipped (first: {catalog.rejected[0]})"
             if catalog.rejected else ""), file=sys.stderr)
    return categories


def run(args: argparse.Namespace, settings: Settings) -> int:
    """``livereco replay``: 0 when done, 2 for a missing or unreadable file or a ``--strict`` failure."""
    path = Path(args.file)
    if not path.is_file():
        reason = "is a directory" if path.is_dir() else "no such file"
        print(f"livereco replay: {path}: {reason}", file=sys.stderr)
        return 2
    try:
        client = connect(settings.redis_url)
    except (ValueError, redis.ConnectionError) as exc:  # a cluster client asks for the slot map right away
        print(f"livereco replay: {exc}", file=sys.stderr)
        return 2
    try:
        categories = _categories_beside(path, args.genres)
        report = replay(
            path, settings, client,
            fmt=args.format, columns=args.columns, default_type=args.type, value_type=args.value_type,
            rate=args.rate, batch=args.batch, limit=args.limit, strict=args.strict,
            time_shift=args.time_shift, progress=not args.no_progress, categories=categories,
        )
    except (ValueError, OSError) as exc:
        print(f"livereco replay: {exc}", file=sys.stderr)
        return 2
    except redis.RedisError as exc:
        print(f"livereco replay: Redis at {settings.redis_url}: {exc}", file=sys.stderr)
        return 1
    finally:
        client.close()
    print(report.summary())
    if report.strict_failure is not None:
        failure = report.strict_failure
        print(f"livereco replay: stopped at {path}:{failure.line} (--strict): {failure.message}", file=sys.stderr)
        return 2
    if report.interrupted:
        return 130
    return 0
