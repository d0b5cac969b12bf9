"""The Bytewax recovery store of ``livereco flow``: create it, check it, read the state it would resume with.

A recovery store is a directory of SQLite files ``part-<i>.sqlite3``, the
**recovery partitions** (Bytewax 0.21). Each file records which partition it
is and how many there are (table ``parts``), the executions and their
progress (``exs``, ``fronts``, ``commits``) and the state snapshots
(``snaps``: one row per ``step_id``, ``state_key`` and ``snap_epoch``, the
value pickled by Bytewax; ``NULL`` when the key was discarded). The number
of partitions is fixed when the store is created.

:func:`prepare_store` is what ``livereco flow -r DIR`` runs first: it creates
and initialises an empty or missing directory, leaves a consistent store as
it is, and refuses a store whose partition count differs from the one asked
for. :func:`resume_state` reads back, from the files alone, the state a
restart would resume with (the same rule Bytewax applies: for each key, the
newest snapshot of an epoch before the resume epoch); tests use it to count
what the model state holds.

Examples
--------
>>> import tempfile
>>> from pathlib import Path
>>> store = Path(tempfile.mkdtemp()) / "recovery"
>>> prepare_store(store, partitions=3)
(3, True)
>>> prepare_store(store)                       # already there: left as it is
(3, False)
>>> try:
...     prepare_store(store, partitions=4)
... except RecoveryStoreError as exc:
...     print(str(exc).split(": ")[0].removeprefix(str(store)))
 has 3 recovery partitions, not 4
>>> resume_epoch(store) is None, resume_state(store, "livereco.items")   # nothing has run yet
(True, {})
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pickle
import re
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from online.compiled import compiled_modules, describe

__all__ = [
    "DEFAULT_PARTITIONS",
    "STATE_FORMAT",
    "RecoveryStoreError",
    "discard_uncompleted_snapshots",
    "partition_count",
    "partition_files",
    "prepare_store",
    "resume_epoch",
    "resume_state",
    "state_build",
    "state_format",
]

DEFAULT_PARTITIONS = 4
"""Partitions of a new store unless asked otherwise (or more, when the cluster has more workers)."""

STATE_FORMAT = 11
"""The format of the stage state this livereco snapshots. Bump it when a state class changes so
that older snapshots no longer load (a field without a default, a new tuple layout). 1: stores
written before the format was recorded; 2: the ranker's exploration pool and 6-field pending
trending updates (2026-11-21); 3: the user list's pool keeps the user's affinities and the
ranker's state its per-category trending (affinity candidates; a slots dataclass pickled with
fewer fields does not load); 4: an item's state records the event time of its popularity
(trending updates in event-time order), and the stages' states are compiled classes; 5: the
ranker's state records the list length it learns to fill (``BlendRanker.list_length``); 6: the
ranker's state keeps its context popularity (context features); 7: the stages' states pickle
through their constructors (``online.init_pickle``: their ``__init__`` is compiled, and a compiled
``__init__`` refuses the empty instance older pickles start from); 8: a user's history keeps its
event ids by event time (``UserHistory.dedup``, an ``online.event_dedup.EventDedup``), not in a ring of 64; 9: the
catalog stage keeps each catalog item's facts (``online.item_facts.ItemFacts``), the catalog source resumes from a
catalog version, a user's list state keeps their whole-history exclusions (``online.excluded_items.ExcludedItems``)
and an exploration arm records whether the catalog launched it (``Arm.launched``); 10: a user's history state keeps
the lists they were served (``UserHistoryState.attribution``, an ``online.attribution.AttributionMemory``); 11: a user's
history keeps its recent items and purchases in plain dicts and its session's items and latest purchases in lists
(``online.user_history.UserHistory``; a compiled build refuses the ``OrderedDict``/``deque`` of older snapshots)."""

_FORMAT_FILE = "livereco-state-format"

_PART = re.compile(r"^part-(\d+)\.sqlite3$")
_LOCK = ".livereco-init.lock"


class RecoveryStoreError(ValueError):
    """The recovery directory cannot be used as it is (the message says why and what to do)."""


def partition_files(directory: Path) -> dict[int, Path]:
    """``{partition index: file}`` of the ``part-<i>.sqlite3`` files in ``directory`` (empty if none)."""
    if not directory.is_dir():
        return {}
    found = {}
    for path in directory.iterdir():
        match = _PART.match(path.name)
        if match:
            found[int(match.group(1))] = path
    return found


@contextlib.contextmanager
def _read_only(path: Path) -> Iterator[sqlite3.Connection]:
    # A normal connection made query-only (a mode=ro one cannot replay the write-ahead log a killed flow
    # left behind); SQLite's own locking makes this safe while a flow is writing the file.
    conn = sqlite3.connect(path, timeout=10.0)
    try:
        conn.execute("PRAGMA query_only = ON")
        yield conn
    finally:
        conn.close()


def partition_count(directory: Path) -> int | None:
    """How many partitions the store in ``directory`` was created with; ``None`` when there is no store.

    Raises :class:`RecoveryStoreError` when the files disagree with each other
    (files from two different stores mixed in one directory).
    """
    files = partition_files(directory)
    if not files:
        return None
    counts: dict[int, list[int]] = {}
    for index, path in sorted(files.items()):
        try:
            with _read_only(path) as conn:
                rows = conn.execute("SELECT part_index, part_count FROM parts").fetchall()
        except sqlite3.DatabaseError as exc:
            raise RecoveryStoreError(f"{path} is not a Bytewax recovery partition ({exc})") from exc
        if len(rows) != 1 or rows[0][0] != index:
            raise RecoveryStoreError(f"{path} does not describe partition {index} (parts table: {rows})")
        counts.setdefault(int(rows[0][1]), []).append(index)
    if len(counts) > 1:
        detail = "; ".join(f"{count} in part {', '.join(map(str, parts))}" for count, parts in sorted(counts.items()))
        raise RecoveryStoreError(f"{directory}: recovery partitions from different stores ({detail})")
    (count, indices), = counts.items()
    if max(indices) >= count:
        raise RecoveryStoreError(f"{directory}: partition {max(indices)} of a store of {count}")
    return count


def prepare_store(directory: Path, partitions: int | None = None, *, default: int = DEFAULT_PARTITIONS,
                  initialise: bool = True, wait_s: float = 0.0) -> tuple[int, bool]:
    """Make ``directory`` a usable recovery store; ``(partition count, whether it was created now)``.

    A missing or empty directory gets ``partitions`` new partitions (if not
    given, ``default``) when ``initialise`` is true; processes of one
    machine sharing the directory serialise on a lock file, so exactly one of
    them creates it. With ``initialise`` false (cluster processes other than
    process 0) the call waits up to ``wait_s`` for another process to create
    the store. An existing store is kept; if ``partitions`` is given and
    differs from its count, :class:`RecoveryStoreError` (the count cannot
    change: the state of every key is filed under ``hash(key) mod count``).
    """
    if partitions is not None and partitions < 1:
        raise RecoveryStoreError(f"recovery partitions must be at least 1, not {partitions}")
    directory.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait_s
    while True:
        with _locked(directory):
            count = partition_count(directory)
            created = False
            if count is None and initialise:
                from bytewax.recovery import init_db_dir

                count = partitions or default
                init_db_dir(directory, count)
                created = True
            if count is not None:
                _check_state_format(directory, created)
        if count is not None or time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    if count is None:
        return 0, False  # this process holds no partition: the other processes' files make the store
    if not created and len(partition_files(directory)) == count:
        discard_uncompleted_snapshots(directory)
    if partitions is not None and partitions != count:
        raise RecoveryStoreError(
            f"{directory} has {count} recovery partitions, not {partitions}: the count is fixed when the store "
            f"is created; pass --recovery-partitions {count}, or delete the store to start over from the "
            "beginning of the streams")
    return count, created


def state_format(directory: Path) -> int:
    """The state format the store in ``directory`` was written with (1: written before formats were recorded)."""
    return _marker(directory)[0]


def state_build(directory: Path) -> str | None:
    """Which build wrote the store's snapshots: ``compiled`` or ``pure`` (``None``: not recorded, before format 4).

    The stages' states are native classes in the compiled build and plain ones in pure Python, and
    their pickles do not load across builds.
    """
    return _marker(directory)[1]


def _marker(directory: Path) -> tuple[int, str | None]:
    """The store's format marker: its state format and the build that wrote it (``1, None`` without one)."""
    marker = directory / _FORMAT_FILE
    if not marker.is_file():
        return 1, None
    words = marker.read_text().split()
    return int(words[0]), (words[1] if len(words) > 1 else None)


def _this_build() -> str:
    return "compiled" if compiled_modules() else "pure"


def _has_snapshots(directory: Path) -> bool:
    for path in partition_files(directory).values():
        with _read_only(path) as conn:
            if conn.execute("SELECT 1 FROM snaps LIMIT 1").fetchone() is not None:
                return True
    return False


def _check_state_format(directory: Path, created: bool) -> None:
    """Record this livereco's state format in a store without snapshots; refuse snapshots of another format.

    Loading them would fail deep inside a stage (a missing field, a tuple of
    another length) after the flow started; this says so before it does.
    """
    (found, build), this_build = _marker(directory), _this_build()
    if found == STATE_FORMAT and build == this_build:
        return
    if created or not _has_snapshots(directory):
        (directory / _FORMAT_FILE).write_text(f"{STATE_FORMAT} {this_build}\n")
        return
    if found == STATE_FORMAT:
        raise RecoveryStoreError(
            f"{directory} holds snapshots written by the {build} build of livereco, and this one runs the "
            f"{this_build} build ({describe()}): the stages' states pickle differently in the two, so run the "
            f"{build} build on this store (LIVERECO_PURE_PYTHON, README: Compiled build), or use a new recovery "
            "directory; the flow then rebuilds its state from the streams it can still read")
    raise RecoveryStoreError(
        f"{directory} holds snapshots of livereco state format {found}, and this livereco reads format "
        f"{STATE_FORMAT} (its stages' state changed since): use a new recovery directory, or delete this one; "
        "the flow then rebuilds its state from the streams it can still read")


@contextlib.contextmanager
def _locked(directory: Path, shared: bool = False) -> Iterator[None]:
    """The store's creation lock: exclusive while creating, shared while reading (never half-created files)."""
    fd = os.open(directory / _LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _complete_partition_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    with _locked(directory, shared=True):  # waits while another process is creating the store
        return list(partition_files(directory).values())


def resume_epoch(directory: Path) -> int | None:
    """The epoch a restart would resume from (``None``: no execution recorded yet).

    Bytewax's rule: take the newest execution; each of its workers has got as
    far as its highest recorded frontier (at least the epoch the execution
    resumed from); the cluster resumes at the lowest of these.
    """
    executions: dict[int, tuple[int, int]] = {}
    fronts: dict[tuple[int, int], int] = {}
    for path in _complete_partition_files(directory):
        with _read_only(path) as conn:
            for ex_num, worker_count, epoch in conn.execute("SELECT ex_num, worker_count, resume_epoch FROM exs"):
                executions[ex_num] = (worker_count, epoch)
            for ex_num, worker, frontier in conn.execute("SELECT ex_num, worker_index, worker_frontier FROM fronts"):
                fronts[ex_num, worker] = max(frontier, fronts.get((ex_num, worker), frontier))
    if not executions:
        return None
    latest = max(executions)
    worker_count, started_at = executions[latest]
    return min(max(started_at, fronts.get((latest, w), started_at)) for w in range(worker_count))


def resume_state(directory: Path, step_id: str, *, decode: bool = True) -> dict[str, Any]:
    """``{state key: snapshot}`` of one stateful step, as a restart would load it.

    ``step_id`` is the full Bytewax id (``"livereco.items"``). Snapshots are
    unpickled once for Bytewax's own encoding; the livereco stages snapshot
    pickled bytes, which ``decode`` unpickles too. Keys whose newest snapshot
    is a deletion are left out.
    """
    epoch = resume_epoch(directory)
    if epoch is None:
        return {}
    newest: dict[str, tuple[int, bytes | None]] = {}
    for path in _complete_partition_files(directory):
        with _read_only(path) as conn:
            rows = conn.execute("SELECT state_key, snap_epoch, ser_change FROM snaps WHERE step_id = ? AND snap_epoch < ?",
                                (step_id, epoch))
            for key, snap_epoch, ser in rows:
                if key not in newest or snap_epoch > newest[key][0]:
                    newest[key] = (snap_epoch, ser)
    state: dict[str, Any] = {}
    for key, (_, ser) in newest.items():
        if ser is None:
            continue
        value = pickle.loads(ser)
        state[key] = pickle.loads(value) if decode and isinstance(value, bytes) else value
    return state


def discard_uncompleted_snapshots(directory: Path) -> int:
    """Delete the snapshots of epochs the store's last execution did not complete; how many rows went.

    Bytewax writes an epoch's snapshots before it records the epoch complete,
    and a restart resumes at the first epoch not completed, re-running the
    epoch numbers from there; it overwrites the dead execution's snapshot of a
    key only if it touches that key in the same epoch number, and it never
    deletes the others. A key the new execution touches later, or not at all,
    would keep the dead execution's snapshot, which becomes that key's newest
    committed one as soon as the new execution completes the epoch, while the
    source positions of that epoch are the new execution's: the events between
    are then counted twice (seen after kill -9 as every event of some users
    counted twice). No snapshot at or after the resume epoch can be part of a
    consistent state, so ``livereco flow`` deletes them before Bytewax starts.
    Run only on a complete store (every partition file here) and before any
    process of the cluster starts its dataflow (they all connect first).
    """
    epoch = resume_epoch(directory)
    if epoch is None:
        return 0
    deleted = 0
    for path in _complete_partition_files(directory):
        with contextlib.closing(sqlite3.connect(path, timeout=30.0)) as conn, conn:
            deleted += conn.execute("DELETE FROM snaps WHERE snap_epoch >= ?", (epoch,)).rowcount
    return deleted
