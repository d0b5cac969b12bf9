"""De-duplication by event time (``online.event_dedup``): its rules, its bounds, and the real flow with recovery.

The rules (``docs/deduplication.md``) are checked against a plain reference
model on random streams (out of order, retries re-stamped, ids that come back
after expiry or eviction); the flow tests send events through a real Redis and
the real dataflow and read what was counted back from trending scores and from
the recovery store.
"""

from __future__ import annotations

import dataclasses
import pickle
import random
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from bytewax.testing import run_main

from benchmarks.cluster_check import flow_env, store_counts
from flows.dataflow import build_flow
from flows.event_writer import EventWriter
from online.contract import Event, RedisKeys, Settings
from online.event_dedup import EventDedup, id_hash
from online.user_history import UserHistory
from tests.processes import ROOT

T0 = 1_700_000_000.0


class Reference:
    """The documented rules, spelled out with a dict (no hashes, no arrays)."""

    def __init__(self, horizon_s: float, max_ids: int):
        self.horizon_s, self.max_ids = horizon_s, max_ids
        self.clock = float("-inf")
        self.remembered: dict[str, tuple[float, int]] = {}  # id -> (first event time, arrival)
        self.arrivals = 0

    def is_duplicate(self, event_id: str, ts: float) -> bool:
        self.arrivals += 1
        if ts > self.clock:
            self.clock = ts
            self.remembered = {i: t for i, t in self.remembered.items() if t[0] >= ts - self.horizon_s}
        if event_id in self.remembered:
            return True
        if ts < self.clock - self.horizon_s:
            return False
        if len(self.remembered) >= self.max_ids:
            oldest = min(self.remembered, key=self.remembered.__getitem__)
            if ts < self.remembered[oldest][0]:
                return False
            del self.remembered[oldest]
        self.remembered[event_id] = (ts, self.arrivals)
        return False


@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize(("horizon", "cap"), [(50.0, 8), (200.0, 30), (0.0, 5), (1e9, 12)])
def test_follows_the_documented_rules_on_random_streams_and_after_pickling(seed: int, horizon: float,
                                                                           cap: int) -> None:
    rng = random.Random(seed)
    dedup, reference = EventDedup(horizon, cap), Reference(horizon, cap)
    ts, answers = 0.0, []
    for n in range(4000):
        ts += rng.choice([0.0, 1.0, 3.0, 10.0])
        at = ts - rng.choice([0.0, 0.0, 0.0, 5.0, 80.0, 400.0])  # out of order, some behind the horizon
        event_id = f"e{rng.randrange(120)}"
        answer = dedup.is_duplicate(event_id, at)
        assert answer == reference.is_duplicate(event_id, at), (n, event_id, at)
        answers.append(answer)
        assert len(dedup) == len(reference.remembered) <= cap
        if n % 500 == 499:
            dedup = pickle.loads(pickle.dumps(dedup, protocol=pickle.HIGHEST_PROTOCOL))
    assert 10 < sum(answers) < len(answers) - 10  # the streams exercise both answers


def test_a_retry_after_many_other_events_counts_once_and_one_after_the_horizon_again() -> None:
    dedup = EventDedup(horizon_s=3600.0, max_ids=2000)
    assert not dedup.is_duplicate("first", T0)
    for n in range(100):
        assert not dedup.is_duplicate(f"other-{n}", T0 + n)
    assert dedup.is_duplicate("first", T0)  # the ring of 64 ids this replaces counted it again
    assert dedup.is_duplicate("first", T0 + 3600.0)  # re-stamped, within the horizon: still a retry
    assert not dedup.is_duplicate("later", T0 + 3600.5)  # the clock passes the horizon of "first"
    assert not dedup.is_duplicate("first", T0)  # counts again, and that far behind is not remembered
    assert not dedup.is_duplicate("first", T0)


def test_a_retry_stamped_beyond_the_horizon_counts_again() -> None:
    dedup = EventDedup(horizon_s=60.0, max_ids=10)
    assert not dedup.is_duplicate("a", 0.0)
    assert not dedup.is_duplicate("a", 61.0)  # its own time moves the clock past "a"'s horizon
    assert dedup.is_duplicate("a", 61.0)  # now remembered with its new time


def test_the_cap_holds_under_ten_thousand_distinct_ids_and_keeps_the_latest() -> None:
    dedup = EventDedup()  # the defaults: a day, 2,000 ids
    assert (dedup.horizon_s, dedup.max_ids) == (Settings().dedup_horizon_s, Settings().dedup_max_ids)
    for n in range(10_000):  # one a second: all within a day
        assert not dedup.is_duplicate(f"id-{n}", T0 + n)
        assert len(dedup) == min(n + 1, 2000)
    assert all(dedup.is_duplicate(f"id-{n}", T0 + n) for n in range(8000, 10_000))
    assert not dedup.is_duplicate("id-7999", T0 + 7999)  # evicted; older than all kept: counted, not remembered
    assert len(dedup) == 2000
    arrays = (dedup._times, dedup._order, dedup._hashes)
    assert all(len(a) == 2000 for a in arrays)
    assert list(dedup._hashes) == sorted(dedup._order) and list(dedup._times) == sorted(dedup._times)
    assert len(pickle.dumps(dedup, protocol=pickle.HIGHEST_PROTOCOL)) <= 16 * 2000 + 200


def test_pickles_compactly_and_comes_back_the_same() -> None:
    dedup = EventDedup(horizon_s=600.0, max_ids=50)
    for n in range(80):
        dedup.is_duplicate(f"id-{n}", float(n if n % 7 else n - 30))  # some out of order
    copy = pickle.loads(pickle.dumps(dedup, protocol=pickle.HIGHEST_PROTOCOL))
    assert (copy.horizon_s, copy.max_ids, copy._clock) == (600.0, 50, 79.0)
    assert (list(copy._times), list(copy._order), list(copy._hashes)) == \
        (list(dedup._times), list(dedup._order), list(dedup._hashes))
    assert len(pickle.dumps(EventDedup(), protocol=pickle.HIGHEST_PROTOCOL)) < 120  # a user with no ids
    later = [(f"id-{n}", float(n)) for n in range(20, 120)]
    assert [copy.is_duplicate(i, t) for i, t in later] == [dedup.is_duplicate(i, t) for i, t in later]


def test_hashes_are_stable_across_processes() -> None:
    """Snapshots keep hashes: they must not depend on PYTHONHASHSEED or the process."""
    code = "from online.event_dedup import id_hash; print(id_hash('order-17/retry'))"
    other = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": "123", "PATH": ""})
    assert int(other.stdout) == id_hash("order-17/retry") and 0 <= id_hash("x") < 2**64


def test_events_without_an_event_id_are_never_deduplicated() -> None:
    history = UserHistory()
    plain = Event("u", "a", "view", T0)
    assert all(history.learn_one(plain, 1.0) is not None for _ in range(3))
    assert history.dedup is None  # nothing to remember, nothing kept
    retried = Event("u", "a", "view", T0, event_id="x")
    assert history.learn_one(retried, 1.0) is not None and history.learn_one(retried, 1.0) is None
    assert history.learn_one(plain, 1.0) is not None
    assert history.events == 5 and history.dedup is not None and len(history.dedup) == 1


def test_user_history_takes_the_settings() -> None:
    history = UserHistory(dedup_horizon_s=5.0, dedup_max_ids=3)
    history.learn_one(Event("u", "a", "view", T0, event_id="x"), 1.0)
    assert history.dedup is not None and (history.dedup.horizon_s, history.dedup.max_ids) == (5.0, 3)
    copy = pickle.loads(pickle.dumps(history, protocol=pickle.HIGHEST_PROTOCOL))
    assert copy.dedup is not None and (copy.dedup.horizon_s, copy.dedup.max_ids) == (5.0, 3)
    assert copy.learn_one(Event("u", "a", "view", T0 + 1, event_id="x"), 1.0) is None


# --- the real flow ----------------------------------------------------------------------------------------------

def run_main_flow(settings: Settings) -> None:
    run_main(build_flow(settings, stop_at_end=True))


def _trending(client: redis.Redis, keys: RedisKeys) -> dict[str, float]:
    return {k.decode(): v for k, v in client.zrange(keys.trending(), 0, -1, withscores=True)}


def _retry_after(others: int, gap_s: float = 1.0) -> list[Event]:
    """User u1 views "a" (id "first"), then ``others`` other items ``gap_s`` apart, then the retry of "first"."""
    first = Event("u1", "a", "view", T0, event_id="first")
    middle = [Event("u1", f"x{n}", "view", T0 + gap_s * (n + 1), event_id=f"other-{n}") for n in range(others)]
    return [first, *middle, first]


@pytest.mark.parametrize(("max_ids", "counted"), [(2000, 1), (50, 2)])
def test_flow_counts_a_retry_after_100_other_events_once(redis_client: redis.Redis, settings: Settings,
                                                        keys: RedisKeys, max_ids: int, counted: int) -> None:
    """With the default cap the retry counts once; with a cap below the 100 ids between, twice (as documented)."""
    settings = dataclasses.replace(settings, dedup_max_ids=max_ids)
    writer = EventWriter(redis_client, keys)
    writer.append(_retry_after(100))
    # The yardstick: "b" viewed ``counted`` times at the same time, each with its own id.
    writer.append([Event("u2", "b", "view", T0, event_id=f"b{n}") for n in range(counted)])
    run_main_flow(settings)
    scores = _trending(redis_client, keys)
    assert scores["a"] == pytest.approx(scores["b"])


def test_flow_counts_a_retry_again_after_the_horizon(redis_client: redis.Redis, settings: Settings,
                                                     keys: RedisKeys) -> None:
    settings = dataclasses.replace(settings, dedup_horizon_s=3600.0)
    writer = EventWriter(redis_client, keys)
    writer.append(_retry_after(3, gap_s=1800.0))  # the last other event is 7,200 s after "first"
    writer.append([Event("u2", "b", "view", T0, event_id=f"b{n}") for n in range(2)])
    run_main_flow(settings)
    scores = _trending(redis_client, keys)
    assert scores["a"] == pytest.approx(scores["b"])  # counted twice: documented


def test_dedup_survives_a_restart_from_the_recovery_store(redis_url: str, redis_client: redis.Redis,
                                                          namespace: str, tmp_path: Path) -> None:
    env = flow_env(redis_url, namespace, 0)
    keys = RedisKeys(namespace, 2)
    writer = EventWriter(redis_client, keys)
    events = [Event("u1", f"i{n}", "view", T0 + n, event_id=f"e{n}") for n in range(150)]
    events += [Event("u2", "b", "view", T0, event_id="b0")]
    writer.append(events)
    store = tmp_path / "recovery"

    def flow() -> None:
        done = subprocess.run([sys.executable, "-m", "flows.cli", "flow", "-r", str(store), "--stop-at-end",
                               "-s", "0.1"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr

    flow()
    assert store_counts(store)[1] == {"u1": 150, "u2": 1}
    # After the restart: retries of the first event (150 ids ago) and of a middle one, and five new events.
    writer.append([events[0], events[100], *(Event("u1", f"i{n}", "view", T0 + n, event_id=f"e{n}")
                                             for n in range(150, 155))])
    flow()
    assert store_counts(store)[1] == {"u1": 155, "u2": 1}
    scores = _trending(redis_client, keys)
    assert scores["i0"] == pytest.approx(scores["b"])  # same time, counted once each
