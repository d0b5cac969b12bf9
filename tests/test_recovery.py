"""Recovery: ``livereco flow -r`` creates its store, and a flow killed with SIGKILL loses and double counts nothing.

How the counts are read: the model state is the per-key snapshots Bytewax
writes to the recovery store (SQLite files; table ``snaps``, one row per
step, key and epoch, each value pickled by Bytewax around the stage's own
pickled bytes). :func:`flows.recovery.resume_state` reads, with Bytewax's own
rule, the snapshots a restart would resume with, and unpickles them back into
``ItemState`` (``events``: touches of the item) and ``UserHistory``
(``events``: accepted events of the user). Nothing in the production stages
is changed or instrumented for this. The Redis output is checked too: every
user's profile blob (``lr:{u:<id>}:profile``, written by the sink with
idempotent ``SET``\\ s) must hold what an uninterrupted run wrote (session,
recent items and their weights, affinities: what the user's own events decide).

The rsc15 lines carry no ``event_id``, so the user stage's de-duplication
cannot hide an event read twice: a replayed event that was already in the
restored state would show up as one count too many.
"""

from __future__ import annotations

import itertools
import os
import pickle
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from benchmarks.cluster_check import flow_env, log_counts, replay_log, store_counts
from flows.recovery import (
    STATE_FORMAT,
    RecoveryStoreError,
    partition_count,
    partition_files,
    prepare_store,
    resume_epoch,
    resume_state,
    state_build,
    state_format,
)
from online.contract import RedisKeys, decode_profile
from tests.processes import ROOT

EVENTS = 4000
"""Lines of rsc15-100k train replayed (1,025 sessions, 1,117 items)."""


def flow(env: dict[str, str], *argv: str, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flows.cli", "flow", *argv], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout_s)


# --- the store ------------------------------------------------------------------------------------------------
def test_flow_initialises_the_store_and_refuses_another_partition_count(redis_url: str, namespace: str,
                                                                        tmp_path: Path) -> None:
    env = flow_env(redis_url, namespace, 0)
    store = tmp_path / "missing" / "recovery"
    done = flow(env, "-r", str(store), "--recovery-partitions", "3", "--stop-at-end", "-s", "0.1")
    assert done.returncode == 0, done.stderr
    assert sorted(partition_files(store)) == [0, 1, 2] and partition_count(store) == 3
    assert "initialised recovery store" in done.stderr

    refused = flow(env, "-r", str(store), "--recovery-partitions", "5", "--stop-at-end")
    assert refused.returncode == 2
    assert f"{store} has 3 recovery partitions, not 5" in refused.stderr
    assert "--recovery-partitions 3" in refused.stderr  # says what to do

    again = flow(env, "-r", str(store), "--stop-at-end", "-s", "0.1")  # no count given: the store's is kept
    assert again.returncode == 0, again.stderr
    assert partition_count(store) == 3 and "resuming from its last snapshot" in again.stderr


def test_default_partition_count_covers_the_cluster(tmp_path: Path) -> None:
    assert prepare_store(tmp_path / "a") == (4, True)
    assert prepare_store(tmp_path / "b", default=6) == (6, True)
    assert prepare_store(tmp_path / "b", default=8) == (6, False)  # a default never changes an existing store


def test_snapshots_of_the_other_build_are_refused_before_the_flow_starts(tmp_path: Path) -> None:
    """Compiled, the stages' states are native classes; pure Python, plain ones: their pickles do not load
    across builds (measured: a pure UserHistoryState loads empty in the compiled build, a compiled UserHistory
    does not load at all in pure Python), so a store records its build and the other build refuses it."""
    store = tmp_path / "store"
    prepare_store(store, 2)
    this_build = state_build(store)
    assert this_build in ("compiled", "pure") and state_format(store) == STATE_FORMAT
    other = "pure" if this_build == "compiled" else "compiled"
    (store / "livereco-state-format").write_text(f"{STATE_FORMAT} {other}\n")
    assert prepare_store(store) == (2, False) and state_build(store) == this_build  # no snapshots: adopted
    (store / "livereco-state-format").write_text(f"{STATE_FORMAT} {other}\n")
    with sqlite3.connect(store / "part-0.sqlite3") as conn:
        conn.execute("INSERT INTO snaps (step_id, state_key, snap_epoch, ser_change) VALUES ('s', 'k', 1, x'00')")
    with pytest.raises(RecoveryStoreError, match=f"written by the {other} build of livereco, and this one runs the "
                                                 f"{this_build} build"):
        prepare_store(store)
    assert state_build(store) == other  # left as it was: nothing lost


def test_snapshots_of_another_state_format_are_refused_before_the_flow_starts(tmp_path: Path) -> None:
    store = tmp_path / "old"
    prepare_store(store, 2)
    assert state_format(store) == STATE_FORMAT
    (store / "livereco-state-format").unlink()  # as a store written before formats were recorded
    assert prepare_store(store) == (2, False) and state_format(store) == STATE_FORMAT  # no snapshots: adopted
    (store / "livereco-state-format").write_text("1\n")
    with sqlite3.connect(store / "part-0.sqlite3") as conn:
        conn.execute("INSERT INTO snaps (step_id, state_key, snap_epoch, ser_change) VALUES ('s', 'k', 1, x'00')")
    with pytest.raises(RecoveryStoreError, match=f"state format 1, and this livereco reads format {STATE_FORMAT}"):
        prepare_store(store)
    assert state_format(store) == 1  # left as it was: nothing lost


def test_partitions_of_two_stores_in_one_directory_are_refused(tmp_path: Path) -> None:
    prepare_store(tmp_path / "two", 2)
    prepare_store(tmp_path / "three", 3)
    shutil.copy(tmp_path / "three" / "part-2.sqlite3", tmp_path / "two" / "part-2.sqlite3")
    with pytest.raises(RecoveryStoreError, match="different stores"):
        partition_count(tmp_path / "two")


def test_other_cluster_processes_wait_for_process_0_to_create_the_store(tmp_path: Path) -> None:
    store = tmp_path / "shared"
    assert prepare_store(store, initialise=False, wait_s=0.3) == (0, False)  # never creates one itself
    assert partition_files(store) == {}


def test_a_killed_executions_snapshots_of_an_epoch_it_never_completed_are_not_resumed(
        redis_url: str, namespace: str, shared_data: Path, tmp_path: Path) -> None:
    """Bytewax writes an epoch's snapshots before it records the epoch complete, and never deletes the ones a
    killed execution wrote for epochs it did not complete. The next execution re-runs those epoch numbers from
    the resume epoch: it snapshots every key it loaded at that epoch, but a key the dead execution created
    there (a user first seen in it) keeps the dead execution's snapshot unless the new execution touches it in
    the same epoch number; once that epoch completes, the stale snapshot is the key's newest committed one
    while the source's positions are the new execution's. A restart then loads the user's events in the state
    and reads them again (seen after kill -9 as every event of some users counted twice, e.g. 34 for 17).
    Simulated here: the snapshot row a killed execution leaves for a user first seen in its last epoch."""
    log = tmp_path / "events.tsv"
    with (shared_data / "rsc15-100k" / "train.tsv").open() as source:
        log.write_text("".join(itertools.islice(source, 301)))
    _, truth_users = log_counts([log])
    env = flow_env(redis_url, namespace, 0)
    store = tmp_path / "store"
    assert replay_log(redis_url, namespace, log) == 300
    done = flow(env, "-r", str(store), "-s", "0.1", "--stop-at-end")
    assert done.returncode == 0, done.stderr
    assert store_counts(store)[1] == dict(truth_users)

    epoch = resume_epoch(store)
    assert epoch is not None
    some_user = next(iter(truth_users))
    dead = pickle.dumps(resume_state(store, "livereco.user_history", decode=False)[some_user])
    with sqlite3.connect(partition_files(store)[0]) as conn:  # the killed execution's snapshot of a new user
        conn.execute("INSERT INTO snaps (step_id, state_key, snap_epoch, ser_change) VALUES (?, ?, ?, ?)",
                     ("livereco.user_history", "seen-by-the-killed-run", epoch, dead))

    again = flow(env, "-r", str(store), "-s", "0.1", "--stop-at-end")  # reads nothing new: the user stays unseen
    assert again.returncode == 0, again.stderr
    assert (resume_epoch(store) or 0) > epoch
    assert store_counts(store)[1] == dict(truth_users)


# --- kill -9 ---------------------------------------------------------------------------------------------------
def killed_runs(env: dict[str, str], store: Path, rng: random.Random, kills: int, log: Path,
                replay_done: Callable[[], bool], read_to_end: Callable[[Any], bool]) -> list[tuple[float, int]]:
    """Start the flow and SIGKILL it at a random moment, ``kills`` times; ``(seconds alive, events in state)`` each.

    Each run is killed a random 0-0.6 s after its first snapshot beyond the
    stream positions it resumed from (so every run makes progress and dies
    mid-stream, between or during snapshots, with events in flight), or, once
    the replay is over and nothing is left to read, after its first completed
    epoch. (Progress is watched on the source's small snapshots: unpickling
    all model state in a loop would take CPU from the flow.)
    """
    seen: list[tuple[float, int]] = []
    for _ in range(kills):
        positions, epoch = resume_state(store, "livereco.streams"), resume_epoch(store) or 0
        started = time.monotonic()
        with log.open("ab") as out:
            process = subprocess.Popen([sys.executable, "-m", "flows.cli", "flow", "-r", str(store), "-s", "0.25"],
                                       env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = started + 30
            while not moved(positions, resume_state(store, "livereco.streams")):
                # nothing left to read: no position can move, a completed epoch is the progress to wait for (a
                # restarted flow commits epochs before it reads, so with events left an epoch is not progress)
                if replay_done() and read_to_end(positions) and (resume_epoch(store) or 0) > epoch:
                    break
                assert process.poll() is None, f"the flow exited with {process.returncode}; see {log}"
                assert time.monotonic() < deadline, f"the restarted flow made no progress; see {log}"
                time.sleep(0.05)
            time.sleep(rng.uniform(0.0, 0.6))
            assert process.poll() is None, "the flow exited by itself"
        finally:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
        seen.append((time.monotonic() - started, sum(store_counts(store)[1].values())))
    return seen


def moved(before: dict[str, Any], now: dict[str, Any]) -> bool:
    """Whether the source's resume positions moved: they differ and no stream's position went missing.

    :func:`resume_state` reads the resume epoch and then the snapshots, file by file, while the flow runs:
    if the flow completes an epoch in between, Bytewax's garbage collection may delete a stream's older
    snapshot while the newer one is still at or after the epoch read, and that stream is then missing from
    the answer (a torn read, not progress)."""
    return now != before and set(now) >= set(before or {})


def profiles(client: redis.Redis, keys: RedisKeys, users: list[str]) -> dict[str, Any]:
    """Each user's profile as the user's own events determine it: session, recent items, affinities.

    The session embedding is left out: it is made of item embeddings as they
    stood when the user's events reached them, which depends on how events of
    different users interleave in batches (as the candidate lists do), and a
    restart changes the batches.
    """
    blobs: list[Any] = client.mget([keys.user_profile(u) for u in users])
    own: dict[str, Any] = {}
    for user, blob in zip(users, blobs, strict=True):
        profile = decode_profile(blob) if blob is not None else None
        if profile is not None:
            profile.session_embedding = []
        own[user] = profile
    return own


@pytest.mark.slow
def test_kill_9_three_times_during_a_replay_loses_and_double_counts_nothing(
        redis_url: str, shared_data: Path, tmp_path: Path, redis_client: redis.Redis) -> None:
    seed = int(os.environ.get("LIVERECO_KILL_SEED", random.randrange(1_000_000)))
    print(f"kill seed {seed} (rerun with LIVERECO_KILL_SEED={seed})")
    rng = random.Random(seed)
    log = tmp_path / "events.tsv"
    with (shared_data / "rsc15-100k" / "train.tsv").open() as source:
        log.write_text("".join(itertools.islice(source, EVENTS + 1)))  # header + EVENTS lines
    truth_items, truth_users = log_counts([log])
    assert sum(truth_items.values()) == EVENTS

    # Crashing: events keep arriving (about 12 s of replay) while the flow is killed at random moments...
    suffix = f"{seed}-{time.time_ns() % 10**6}"
    calm_ns, crash_ns = f"calm{suffix}", f"crash{suffix}"
    crash_env = flow_env(redis_url, crash_ns, 0)
    written: list[int] = []
    replayer = threading.Thread(target=lambda: written.append(
        replay_log(redis_url, crash_ns, log, rate=EVENTS / 12, batch=50)))
    replayer.start()
    store = tmp_path / "crash"
    try:
        crash_streams = RedisKeys(crash_ns, 2).streams()

        def read_to_end(positions: Any) -> bool:
            newest: dict[str, Any] = {stream: redis_client.xrevrange(stream, count=1) for stream in crash_streams}
            return all((positions or {}).get(stream) == (entries[0][0].decode() if entries else None)
                       for stream, entries in newest.items())

        crashes = killed_runs(crash_env, store, rng, 3, tmp_path / "flow.log", lambda: not replayer.is_alive(),
                              read_to_end)
    finally:
        replayer.join(timeout=30)
    assert written == [EVENTS]
    print("killed (s alive, events in state):", [(round(a, 2), n) for a, n in crashes])

    # ...then restarted to the end, while an uninterrupted run reads the same events in another namespace.
    assert replay_log(redis_url, calm_ns, log) == EVENTS
    calm = subprocess.Popen([sys.executable, "-m", "flows.cli", "flow", "-r", str(tmp_path / "calm"), "-s", "0.25",
                             "--stop-at-end"], env=flow_env(redis_url, calm_ns, 0), cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    done = flow(crash_env, "-r", str(store), "-s", "0.25", "--stop-at-end")
    assert done.returncode == 0, done.stderr
    crash_items, crash_users = store_counts(store)
    _, calm_err = calm.communicate(timeout=60)
    assert calm.returncode == 0, calm_err.decode()
    calm_items, calm_users = store_counts(tmp_path / "calm")

    # The crashes happened mid-stream: some state was snapshotted, not all of it.
    in_state = [n for _, n in crashes]
    assert all(a < b or a == b == EVENTS for a, b in itertools.pairwise(in_state)), \
        f"each restart resumed and made progress: {crashes}"
    assert 0 < in_state[0] < EVENTS, f"the first crash left partial state: {crashes}"

    assert calm_items == dict(truth_items) and calm_users == dict(truth_users)
    assert crash_users == dict(truth_users), "per-user event counts differ after kill -9 and restart"
    assert crash_items == dict(truth_items), "per-item event counts differ after kill -9 and restart"
    # The source's resume state is each stream's last entry id: everything was read.
    crash_keys = RedisKeys(crash_ns, 2)
    streams = resume_state(store, "livereco.streams")
    for stream in crash_keys.streams():
        newest: Any = redis_client.xrevrange(stream, count=1)
        assert streams[stream] == newest[0][0].decode()
    # And Redis holds what the uninterrupted run wrote (idempotent overwrites, replayed epochs included).
    users = sorted(truth_users)
    calm_profiles = profiles(redis_client, RedisKeys(calm_ns, 2), users)
    assert None not in calm_profiles.values()
    assert profiles(redis_client, crash_keys, users) == calm_profiles
