"""What ``livereco eval`` scores: a log read with its own timestamps, its protocol and its candidate rule.

Logs
----
* **Session split**: a folder with ``train.*`` and ``test.*`` (e.g. rsc15-100k).
  The test part starts with the first test event.
* **User log**: one file, or a folder with a ``ratings.*`` file (e.g.
  MovieTweetings). ``--train-fraction f`` makes its first ``f`` of the events
  (in time order) the training part, ``--warmup-fraction w`` the next ``w`` a
  warm-up part: both are learned and never scored; frozen models learn on the
  training part only. A ``movies.*`` file beside it gives each movie's genres
  as its events' ``context.category`` (:mod:`flows.catalog`).

A historical log is read with :data:`~online.contract.HISTORICAL_LIMITS`: a
1998 rating is a 1998 rating (the live "not before 2000, not more than a day
ahead" check is for live ingestion). Bad lines are counted and named; a log
with no usable event, or nothing to score, is an error.

Protocols (``--mode``)
----------------------
* **session**: every event of a session after its first is predicted from the
  list the user had just before it. A session split's test sessions are its
  test users; in a user log a session ends after ``LIVERECO_SESSION_GAP_S`` of
  inactivity or when ``session_id`` changes, and only positive events are
  predicted. **Candidate rule: nothing is excluded** (a quarter of RSC15's next
  clicks repeat the current item); what a model leaves out on its own
  (livereco: purchases and dislikes) is its own choice.
* **user**: every positive event (a rating at or above ``--positive``, or an
  event of positive weight) of a user seen before is predicted. **Candidate
  rule: every item the user touched before** (rated, bought, viewed, disliked:
  any event, in the training and warm-up parts too) **is removed from every
  model's list before scoring**, and a prediction whose item the user already
  touched is not scored (no model may list it; counted as ``repeats``).

Validation part (tuned baselines choose their parameter on it): for a session
split, the sessions of train that start in its last day (items unseen before
then and one-event sessions dropped, as :mod:`benchmarks.validation_split`
writes it); for a user log, the predictions of the warm-up part.

>>> from online.contract import Event, Settings
>>> log = [Event("ann", "a", "view", 1.0), Event("ann", "b", "view", 2.0), Event("ann", "a", "view", 3.0),
...        Event("bob", "a", "view", 4.0), Event("bob", "c", "view", 5.0)]
>>> data = protocol("toy", log, Settings(), "user", train_fraction=0.0, warmup_fraction=0.0)
>>> data.scored, data.repeats, data.exclude_consumed
([False, True, False, False, True], 1, True)
>>> protocol("toy", log, Settings(), "session", 0.0, 0.0).scored
[False, True, True, False, True]
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from flows.catalog import attach_category, read_movie_genres
from flows.replay import Columns, iter_log_events
from online.contract import HISTORICAL_LIMITS, Event, EventError, Settings, parse_event

__all__ = ["MODES", "EvalData", "load", "protocol"]

MODES = ("session", "user")
DEFAULT_WARMUP = 0.2
"""A user log's warm-up part when ``--warmup-fraction`` is not given: the validation part of its tuned baselines."""


@dataclass
class EvalData:
    """Time-ordered events, where the test part starts, which events are scored, and under which candidate rule."""

    name: str
    events: list[Event]
    test_start: int
    scored: list[bool]
    catalog: set[str] = field(default_factory=set)
    """Items the log showed before its last prediction: coverage's denominator."""
    popularity: dict[str, float] = field(default_factory=dict)
    rejected: int = 0
    """Log lines that were not valid events (counted and reported, never silently dropped)."""
    categories: str = ""
    """Where the events' categories came from, and how many events have one (empty: none attached)."""
    mode: str = "session"
    exclude_consumed: bool = False
    """The candidate rule: remove every item the user touched before from every model's list (user mode)."""
    validation: EvalData | None = None
    repeats: int = 0
    """Positive events not scored because the user had touched the item before (user mode)."""
    parts: str = ""
    """The log's parts as run, for the output."""

    @property
    def test_start_ts(self) -> float:
        return self.events[self.test_start].ts if self.test_start < len(self.events) else float("inf")


def _read(path: Path, settings: Settings, rejected: list[str], categories: Mapping[str, str] | None = None,
          columns: Columns | None = None) -> list[Event]:
    """Valid events of ``path`` in time order; each bad line is appended to ``rejected`` as ``file:line: reason``."""
    now = time.time()
    events: list[Event] = []
    with path.open("rb") as f:
        if not f.read(1 << 16).strip() and not f.read(1):
            return events  # empty, or blank lines only: nothing to read (its format cannot be told either)

    def reject(line: int, error: EventError) -> None:
        rejected.append(f"{path}:{line}: {error}")

    for line, raw in iter_log_events(path, columns=columns, on_error=reject):
        if categories:
            attach_category(raw, categories)
        try:
            events.append(parse_event(raw, now=now, weights=settings.weights, limits=HISTORICAL_LIMITS))
        except EventError as error:
            reject(line, error)
    events.sort(key=lambda e: e.ts)  # stable: ties keep file order
    return events


def _is_positive(event: Event, settings: Settings, positive: float) -> bool:
    if event.type == "rating" and event.value is not None:
        return event.value >= positive
    return settings.weights.weight_of(event) > 0


def _finish(data: EvalData) -> EvalData:
    events, test_start = data.events, data.test_start
    train_counts = Counter(e.item_id for e in (events[:test_start] if test_start else events))
    ranked = sorted(train_counts, key=train_counts.__getitem__)
    data.popularity = {item: (i + 1) / len(ranked) for i, item in enumerate(ranked)}
    last = max((i for i, s in enumerate(data.scored) if s), default=0)
    data.catalog = {e.item_id for e in events[:last]}
    return data


def protocol(name: str, events: list[Event], settings: Settings, mode: str, train_fraction: float,
             warmup_fraction: float, positive: float = 7.0) -> EvalData:
    """A user log (time-ordered ``events``) under ``mode``, with its training and warm-up parts (fractions of the events)."""
    if mode not in MODES:
        raise ValueError(f"mode {mode!r}: expected one of {', '.join(MODES)}")
    test_start = int(train_fraction * len(events))
    score_from = int((train_fraction + warmup_fraction) * len(events))
    scored, repeats = _flags(events, settings, mode, positive, score_from, test_start)
    data = EvalData(name, events, test_start, scored, mode=mode, exclude_consumed=mode == "user", repeats=repeats)
    data.parts = (f"training part {test_start:,} events, warm-up {score_from - test_start:,}, "
                  f"scored part {len(events) - score_from:,}")
    if score_from > test_start:
        head = events[:score_from]
        flags, head_repeats = _flags(head, settings, mode, positive, test_start, test_start)
        if any(flags):
            data.validation = _finish(EvalData(f"{name} (warm-up)", head, test_start, flags, mode=mode,
                                               exclude_consumed=mode == "user", repeats=head_repeats))
    return _finish(data)


def _flags(events: list[Event], settings: Settings, mode: str, positive: float, score_from: int,
           test_start: int, every_event: bool = False) -> tuple[list[bool], int]:
    """Which events are predictions under ``mode``; and how many positives user mode skips as repeats."""
    scored: list[bool] = []
    repeats = 0
    if mode == "user":
        consumed: dict[str, set[str]] = {}
        for index, e in enumerate(events):
            mine = consumed.get(e.user_id)
            wanted = index >= score_from and mine is not None and (every_event or _is_positive(e, settings, positive))
            if wanted and mine is not None and e.item_id in mine:
                repeats += 1
                wanted = False
            scored.append(wanted)
            consumed.setdefault(e.user_id, set()).add(e.item_id)
        return scored, repeats
    last: dict[str, tuple[float, str | None]] = {}
    session_users: set[str] = set()  # a split's test sessions: a user's first test event starts their session
    for index, e in enumerate(events):
        previous = last.get(e.user_id)
        if every_event:  # a session split: every test event after the user's first in the test part
            wanted = index >= score_from and e.user_id in session_users
            if index >= test_start:
                session_users.add(e.user_id)
        else:
            same_session = previous is not None and e.ts - previous[0] <= settings.session_gap_s \
                and previous[1] == e.session_id
            wanted = index >= score_from and same_session and _is_positive(e, settings, positive)
        scored.append(wanted)
        last[e.user_id] = (e.ts, e.session_id)
    return scored, repeats


def _split(name: str, train: list[Event], test: list[Event], settings: Settings, mode: str, positive: float,
           validation: bool = True) -> EvalData:
    events = train + test
    # Session mode scores every test event after a test session's first (the session-rec protocol); user mode,
    # every positive test event of a user seen before whose item is new to them.
    scored, repeats = _flags(events, settings, mode, positive, len(train), len(train), every_event=mode == "session")
    data = EvalData(name, events, len(train), scored, mode=mode, exclude_consumed=mode == "user", repeats=repeats,
                    parts=f"train {len(train):,} events, test {len(test):,}")
    if validation and train:
        cut = train[-1].ts - 86400.0
        starts: dict[str, float] = {}
        for e in train:
            starts.setdefault(e.user_id, e.ts)
        before = [e for e in train if starts[e.user_id] < cut]
        known = {e.item_id for e in before}
        after = [e for e in train if starts[e.user_id] >= cut and e.item_id in known]
        size = Counter(e.user_id for e in after)
        after = [e for e in after if size[e.user_id] >= 2]
        if after:
            data.validation = _split(f"{name} (validation: train's last day)", before, after, settings, mode,
                                     positive, validation=False)
    return _finish(data)


def load(path: str | Path, settings: Settings, positive: float = 7.0, genres: str = "first", *,
         mode: str | None = None, train_fraction: float = 0.0, warmup_fraction: float | None = None,
         columns: Columns | None = None) -> EvalData:
    """A session split (folder with train/test files) or a single user log, under ``mode`` (default: by the log).

    Raises :class:`ValueError` for a log with no usable event or no prediction to score,
    and :class:`FileNotFoundError` for a missing one.
    """
    path = Path(path)
    if mode is not None and mode not in MODES:
        raise ValueError(f"mode {mode!r}: expected one of {', '.join(MODES)}")
    if not 0.0 <= train_fraction < 1.0 or not 0.0 <= (warmup_fraction or 0.0) < 1.0 \
            or train_fraction + (warmup_fraction or 0.0) >= 1.0:
        raise ValueError("--train-fraction and --warmup-fraction must be in [0, 1) and leave a part to score")
    rejected: list[str] = []
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    if path.is_dir():
        train_files, test_files = sorted(path.glob("train.*")), sorted(path.glob("test.*"))
        if train_files and test_files:
            if train_fraction or warmup_fraction:
                raise ValueError(f"{path}: a session split's training part is its {train_files[0].name}; "
                                 "--train-fraction and --warmup-fraction are for a single log")
            train = _read(train_files[0], settings, rejected, columns=columns)
            test = _read(test_files[0], settings, rejected, columns=columns)
            _check(path, train + test, rejected)
            data = _split(path.name, train, test, settings, mode or "session", positive)
            return _scorable(path, data, rejected)
        logs = sorted(path.glob("ratings.*"))
        if not logs:
            raise FileNotFoundError(f"{path}: expected train.* and test.* files, or a ratings.* log")
        path = logs[0]
    catalog_files = sorted(path.parent.glob("movies.*")) if genres != "none" else []
    categories: dict[str, str] | None = None
    if catalog_files:
        catalog = read_movie_genres(catalog_files[0])
        categories = catalog.categories(genres)
        if catalog.rejected:
            print(f"livereco eval: {len(catalog.rejected)} lines of {catalog.path} are not valid and were skipped "
                  f"(their movies' ratings count, without a category); first: {catalog.rejected[0]}", file=sys.stderr)
    events = _read(path, settings, rejected, categories, columns=columns)
    _check(path, events, rejected)
    warmup = DEFAULT_WARMUP if warmup_fraction is None else warmup_fraction
    data = protocol(path.name, events, settings, mode or "user", train_fraction, warmup, positive)
    if catalog_files:
        with_category = sum(1 for e in events if "category" in e.context)
        rated = {e.item_id for e in events}
        movies = len(set(categories or {}).intersection(rated))
        data.categories = (f"{catalog_files[0].name}, {genres} genre as category, for {movies:,} of {len(rated):,} "
                           f"rated movies ({with_category:,} of {len(events):,} events)")
    return _scorable(path, data, rejected)


def _check(path: Path, events: list[Event], rejected: list[str]) -> None:
    if rejected:
        print(f"livereco eval: {len(rejected)} log lines are not valid events and were skipped; first: {rejected[0]}",
              file=sys.stderr)
    if not events:
        detail = f"all {len(rejected):,} lines were rejected; first: {rejected[0]}" if rejected else "it has no data line"
        raise ValueError(f"{path}: no usable event to evaluate ({detail})")


def _scorable(path: Path, data: EvalData, rejected: list[str]) -> EvalData:
    data.rejected = len(rejected)
    if not any(data.scored):
        raise ValueError(f"{path}: {len(data.events):,} events but no prediction to score under the {data.mode} protocol"
                         f" ({data.parts}; {data.repeats:,} repeats of an item the user had)")
    return data
