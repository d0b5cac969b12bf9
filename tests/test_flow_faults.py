"""Redis killed and restarted under load: the flow backs off, resumes, and loses and double counts nothing.

How Redis is stopped: ``SIGKILL``, as a crash or an OOM kill would, the
harshest stop there is (no shutdown save, every client connection reset, a
command in flight left without an answer). The data survives because the
server runs with the append-only file and ``appendfsync always``
(``EmbeddedRedis(durable=True)``): Redis writes and fsyncs every write before
it answers, so everything any client saw acknowledged is there after the
restart. (``everysec`` may answer before writing when a background fsync is
slow, so a kill could lose acknowledged stream entries; ``SHUTDOWN SAVE``
would be a polite stop that real outages are not; ``SHUTDOWN NOSAVE`` loses
the streams.) The server comes back on the same port from the same data
directory, as a supervisor would restart it.

Three tests, from the parts to the whole, and one of the alert:

* the source, against a Redis it can no longer reach: it backs off (50 ms
  doubling to 2 s), keeps its position (its resume state) on the last entry it
  emitted, logs the outage once, and after the restart reads exactly the
  entries after that position;
* the sink, with a batch on the wire when Redis dies: Redis is frozen
  (``SIGSTOP``) until the pipelined batch sits unread in its socket, then
  killed, so the batch fails part-way through ``execute`` (the case where
  redis-py empties the pipeline); after the restart every key of that batch
  must be written;
* the real ``livereco flow`` process, recovery on with a snapshot every 0.25 s
  (a dozen epoch boundaries fall due during the outage), while rsc15 events
  are replayed into its streams with ``livereco replay``'s own code: steadily,
  then a burst; Redis is killed once the flow is working through the burst
  (so, usually, the sink meets the outage holding lists to write; otherwise
  the source does), kept down for a few seconds and restarted, and the rest
  is replayed steadily. The kill falls between the producer's batches, so every
  event either was acknowledged before it or is written after the restart: the
  truth is the log itself (a producer writing through the kill would not know
  whether its last batch landed; that is the producer's problem, not the
  flow's). The model state must count each event exactly once (per-item and
  per-user event counts read from the recovery store, as in
  ``tests/test_recovery.py``; rsc15 lines carry no ``event_id``, so
  de-duplication cannot hide an event read twice), every user must have a
  list and a profile showing their last event, the errors counter must have
  risen with one log line per stage per outage, and the flow must still be
  running;
* ``LiverecoFlowRedisFailing`` (``promtool test rules``): quiet after a
  3-second blip, firing when the flow keeps failing for two minutes.
"""

from __future__ import annotations

import itertools
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from prometheus_client import REGISTRY

from benchmarks.cluster_check import flow_env, log_counts, replay_log, running_flow, store_counts
from flows.embedded_redis import EmbeddedRedis, free_port
from flows.redis_sink import ItemSimilarWrite, RankerWrite, RedisSink, SinkOptions, TrendingWrite, UserListWrite
from flows.redis_source import RedisStreamSource
from online.contract import RedisKeys, StreamProgress, decode_profile
from online.contract.progress import entry_order
from tests.processes import ROOT, get, metric_value

OUTAGE_S = 3.0
"""How long Redis stays down in the flow test: several backoff steps, a dozen snapshot epochs."""
EVENTS = (1200, 800, 1000)
"""rsc15-100k train lines replayed: steadily before the kill, in one burst just before it, steadily after the restart."""
RATE = 600.0
"""Events per second the producer writes (in batches of 50)."""
ERRORS = "livereco_flow_redis_errors_total"


@pytest.fixture
def durable_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A Redis of the test's own (it gets killed), with every acknowledged write on disk."""
    server = EmbeddedRedis(data_dir=str(tmp_path / "redis"), durable=True).start()
    yield server
    server.stop()



def wait_for(condition: Callable[[], bool], timeout_s: float, what: str,
             alive: Callable[[], bool] = lambda: True, every_s: float = 0.02) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``timeout_s`` or as soon as ``alive`` fails."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert alive(), f"exited while waiting for {what}"
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s} s"
        time.sleep(every_s)


def errors_counted(operation: str) -> float:
    """This process's ``livereco_flow_redis_errors_total{operation}``."""
    return REGISTRY.get_sample_value(ERRORS, {"operation": operation}) or 0.0


def unread_bytes(port: int) -> int:
    """Bytes waiting unread in the established sockets of the server listening on ``port`` (Linux /proc)."""
    total = 0
    for table in (Path("/proc/net/tcp"), Path("/proc/net/tcp6")):
        if not table.exists():
            continue
        for row in table.read_text().splitlines()[1:]:
            fields = row.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == "01":  # 01: ESTABLISHED
                total += int(fields[4].split(":")[1], 16)
    return total


def outage_messages(records: list[logging.LogRecord], logger: str) -> tuple[int, int]:
    """``(outages begun, outages ended)`` as ``logger`` reported them."""
    mine = [r for r in records if r.name == logger]
    begun = sum(1 for r in mine if r.levelno == logging.WARNING and "Redis failed" in r.getMessage())
    ended = sum(1 for r in mine if r.levelno == logging.INFO and "Redis answers again" in r.getMessage())
    return begun, ended


# --- the source ------------------------------------------------------------------------------------------------
def test_source_backs_off_keeps_its_position_and_resumes_after_it(
        durable_redis: EmbeddedRedis, namespace: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="flows.redis_source")
    keys = RedisKeys(namespace, 2)
    stream = keys.stream(0)
    client = redis.Redis.from_url(durable_redis.url, decode_responses=True)
    part = RedisStreamSource(durable_redis.url, keys, read_count=100).build_part("streams", stream, None)
    try:
        read = [str(client.xadd(stream, {"e": n})) for n in range(3)]
        assert [e.entry_id for e in part.next_batch()] == read
        unread = [str(client.xadd(stream, {"e": n})) for n in range(3, 5)]
        client.close()
        durable_redis.kill()

        for delay_s in (0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0):  # doubling from 50 ms, capped at 2 s
            before = datetime.now(UTC)
            assert part.next_batch() == []
            after = datetime.now(UTC)
            awake = part.next_awake()
            assert awake is not None
            delay = timedelta(seconds=delay_s)
            assert before + delay <= awake <= after + delay, f"asked to be woken {awake - after} later, not {delay}"
            assert part.snapshot() == read[-1], "the position moved while nothing was read"
        assert outage_messages(caplog.records, "flows.redis_source") == (1, 0), "one warning per outage, not per retry"

        durable_redis.start()
        assert [e.entry_id for e in part.next_batch()] == unread
        assert part.snapshot() == unread[-1]
        assert outage_messages(caplog.records, "flows.redis_source") == (1, 1)
    finally:
        part.close()


# --- the sink --------------------------------------------------------------------------------------------------
def sample_writes(stamp: float) -> list[Any]:
    """One write of each kind that goes to a key (the dead-letter stream aside: see the sink's docstring)."""
    return [
        UserListWrite("u1", [("i2", 0.9), ("i3", 0.5)], event_ts=stamp, accepted_ms=int(stamp * 1000),
                      session_id="s1", recent=[("i1", 1.0, stamp)]),
        ItemSimilarWrite("i1", [("i2", 0.7)], event_ts=stamp),
        TrendingWrite("i1", "shoes", log_score=stamp / 1e6, ts=stamp),
        RankerWrite(0, {"personal": 1.0}, pairs=3),
    ]


def test_sink_rewrites_the_batch_that_was_on_the_wire_when_redis_died(
        durable_redis: EmbeddedRedis, namespace: str, caplog: pytest.LogCaptureFixture) -> None:
    if not Path("/proc/net/tcp").exists():
        pytest.skip("needs Linux /proc/net/tcp to see the batch reach the frozen server")
    caplog.set_level(logging.INFO, logger="flows.redis_sink")
    keys = RedisKeys(namespace, 2)
    options = SinkOptions(keys, user_ttl_s=3600, item_ttl_s=3600, trending_size=10, dead_letter_maxlen=100)
    sink = RedisSink(durable_redis.url, options).build("redis", 0, 1)
    process = durable_redis.process
    assert process is not None
    try:
        sink.write_batch(sample_writes(1.0))  # the sink's connection is open before the outage
        errors_before = errors_counted("write")
        os.kill(process.pid, signal.SIGSTOP)  # frozen: the kernel still takes the batch, nobody reads it
        writing = threading.Thread(target=sink.write_batch, args=(sample_writes(2.0),), daemon=True)
        writing.start()
        wait_for(lambda: unread_bytes(durable_redis.port) > 0, 10, "the batch waiting in the frozen server's socket")
        durable_redis.kill()  # works on a stopped process; the sink's connection is reset mid-execute
        wait_for(lambda: errors_counted("write") > errors_before, 10, "the sink counting the failed write")
        assert writing.is_alive(), "write_batch returned while Redis was down"
        durable_redis.start()
        writing.join(timeout=15)
        assert not writing.is_alive(), "the sink did not finish its batch after Redis came back"
    finally:
        sink.close()

    client = redis.Redis.from_url(durable_redis.url)
    try:
        expected = sample_writes(2.0)
        assert client.get(keys.user_recs("u1")) == expected[0].recs_blob(), "the user list of the batch was lost"
        assert client.get(keys.user_profile("u1")) == expected[0].profile_blob()
        assert client.get(keys.item_similar("i1")) == expected[1].blob()
        assert client.zscore(keys.trending(), "i1") == pytest.approx(2.0 / 1e6)
        assert client.zscore(keys.trending("shoes"), "i1") == pytest.approx(2.0 / 1e6)
        assert client.hget(keys.ranker(), "shard0") == expected[3].blob()
    finally:
        client.close()
    assert outage_messages(caplog.records, "flows.redis_sink") == (1, 1), "one warning per outage, one when it ends"


# --- the real flow process -------------------------------------------------------------------------------------
def write_log_parts(source: Path, folder: Path, sizes: tuple[int, ...]) -> list[Path]:
    """The first ``sum(sizes)`` data lines of ``source``, cut into files of ``sizes`` lines, each with the header."""
    parts = []
    with source.open() as lines:
        header = next(lines)
        for index, size in enumerate(sizes):
            part = folder / f"part{index}{source.suffix}"
            part.write_text(header + "".join(itertools.islice(lines, size)))
            parts.append(part)
    return parts


def last_events(parts: list[Path]) -> dict[str, tuple[str, float]]:
    """Each session's last ``(item, time)`` in rsc15 files (the user is the session)."""
    last: dict[str, tuple[str, float]] = {}
    for part in parts:
        for line in part.read_text().splitlines()[1:]:
            session, item, ts = line.split("\t")
            last[session] = (item, float(ts))
    return last


class FlowMetrics:
    """Reads the flow's ``/metrics`` (served by the flow process itself, so it answers during the outage)."""

    def __init__(self, url: str):
        self.url = url

    def value(self, name: str, labels: str = "") -> float:
        status, text = get(self.url)
        assert status == 200, f"{self.url} answered {status}"
        return metric_value(text.decode(), name, labels)

    def parsed(self) -> float:
        return self.value("livereco_flow_events_total", 'type="view"')

    def redis_errors(self) -> float:
        return self.value(ERRORS, 'operation="read"') + self.value(ERRORS, 'operation="write"')


def assert_outputs_show_every_last_event(client: redis.Redis, keys: RedisKeys, parts: list[Path]) -> None:
    """Every user has a candidate list, and a profile whose newest item is their last event (no sink batch lost)."""
    last = last_events(parts)
    users = sorted(last)
    recs: list[Any] = client.mget([keys.user_recs(u) for u in users])
    assert [u for u, blob in zip(users, recs, strict=True) if blob is None] == [], "users without a list"
    blobs: list[Any] = client.mget([keys.user_profile(u) for u in users])
    newest = {u: decode_profile(blob).recent[0] for u, blob in zip(users, blobs, strict=True)}
    # Profiles keep whole seconds.
    stale = {u: ((newest[u][0], newest[u][2]), last[u]) for u in users
             if (newest[u][0], int(newest[u][2])) != (last[u][0], int(last[u][1]))}
    assert not stale, f"profiles not at the user's last event ((item, ts), expected): {list(stale.items())[:5]}"


@pytest.mark.slow
def test_flow_survives_redis_killed_and_restarted_under_load(
        durable_redis: EmbeddedRedis, shared_data: Path, tmp_path: Path, namespace: str) -> None:
    started = time.monotonic()
    parts = write_log_parts(shared_data / "rsc15-100k" / "train.tsv", tmp_path, EVENTS)
    steady, burst, after = parts
    truth_items, truth_users = log_counts(parts)
    total = sum(EVENTS)
    assert sum(truth_users.values()) == total
    store, url, flow_log = tmp_path / "recovery", durable_redis.url, tmp_path / "flow-0.log"

    with running_flow(flow_env(url, namespace, free_port()), 1, store, "-s", "0.25",
                      log_dir=tmp_path) as ([flow], [metrics_url]):
        metrics = FlowMetrics(metrics_url)

        def alive() -> bool:
            assert flow.poll() is None, f"the flow exited with {flow.returncode}:\n{flow_log.read_text()[-4000:]}"
            return True

        assert replay_log(url, namespace, steady, rate=RATE, batch=50) == EVENTS[0]
        wait_for(lambda: metrics.parsed() >= EVENTS[0], 30, "the flow keeping up with the steady events", alive)
        # A burst, and the kill once the flow is working through it: usually its sink then meets the outage
        # with lists to write (the sink test above makes sure of that case); else its source meets it.
        assert replay_log(url, namespace, burst) == EVENTS[1]
        wait_for(lambda: metrics.parsed() > EVENTS[0], 30, "the flow reading the burst", alive, every_s=0.005)
        errors_before = metrics.redis_errors()
        durable_redis.kill()
        down_since = time.monotonic()
        wait_for(lambda: metrics.redis_errors() > errors_before, 15, "the flow counting Redis errors", alive)
        wait_for(lambda: time.monotonic() - down_since >= OUTAGE_S, OUTAGE_S + 15, "the outage to last", alive)
        durable_redis.start()
        assert replay_log(url, namespace, after, rate=RATE, batch=50) == EVENTS[2]

        def drained() -> bool:
            # Cheap check first (events parsed), then the state a restart would resume with: the resume
            # epoch only passes an epoch once every step of it, the sink included, has finished.
            return metrics.parsed() >= total and sum(store_counts(store)[1].values()) >= total

        wait_for(drained, 30, f"the flow counting all {total} events in its state", alive, every_s=0.2)
        assert alive(), "the flow backed off and resumed without exiting"
        errors = metrics.redis_errors()

    items, users = store_counts(store)
    assert users == dict(truth_users), "per-user event counts differ from the log after the outage"
    assert items == dict(truth_items), "per-item event counts differ from the log after the outage"
    keys = RedisKeys(namespace, 2)
    client = redis.Redis.from_url(url)
    try:
        # The producer trims the streams, but never past the flow's safe point (entries a restart could need):
        # with every event counted above, the oldest entry each stream keeps is at or before that point.
        progress = client.hgetall(keys.flow_progress())
        for stream in keys.streams():
            oldest = client.xrange(stream, count=1)
            if oldest and stream.encode() in progress:
                safe = StreamProgress.decode(progress[stream.encode()]).safe_id
                assert entry_order(oldest[0][0].decode()) <= entry_order(safe), f"{stream} trimmed past {safe}"
        assert_outputs_show_every_last_event(client, keys, parts)
    finally:
        client.close()

    messages = flow_log.read_text()
    begun, ended = messages.count("Redis failed"), messages.count("Redis answers again")
    assert 1 <= begun <= len(keys.streams()) + 1, f"one warning per stage per outage, not per retry:\n{messages}"
    assert ended == begun, f"every stage that met the outage reported its end:\n{messages}"
    assert errors > errors_before + begun, "the errors counter counts every failed attempt"
    met = sorted({line.split(": Redis failed")[0].split(" WARNING ")[-1]
                  for line in messages.splitlines() if "Redis failed" in line})
    print(f"outage {OUTAGE_S:.0f} s met by {met}: {errors - errors_before:.0f} Redis errors retried;"
          f" test took {time.monotonic() - started:.1f} s")


# --- the alert -------------------------------------------------------------------------------------------------
ALERT_TESTS = """
rule_files: [{rules}]
evaluation_interval: 15s
tests:
  - interval: 15s   # a 3 s outage: 18 failed attempts, then none
    input_series:
      - series: 'livereco_flow_redis_errors_total{{operation="read"}}'
        values: '0 0 0 18 18+0x30'
    alert_rule_test:
      - {{eval_time: 8m, alertname: LiverecoFlowRedisFailing, exp_alerts: []}}
  - interval: 15s   # Redis gone for good: the sink retries every 2 s
    input_series:
      - series: 'livereco_flow_redis_errors_total{{operation="write"}}'
        values: '0 0 0+8x30'
    alert_rule_test:
      - {{eval_time: 1m, alertname: LiverecoFlowRedisFailing, exp_alerts: []}}
      - eval_time: 5m
        alertname: LiverecoFlowRedisFailing
        exp_alerts:
          - exp_labels: {{severity: critical}}
            exp_annotations:
              summary: "{summary}"
              description: "32 failed Redis calls in the last minute (the flow retries at most every 2 s)."
              runbook: "docs/monitoring.md#liverecoflowredisfailing"
"""


@pytest.mark.skipif(shutil.which("promtool") is None, reason="no 'promtool': install Debian's prometheus package")
def test_alert_fires_when_the_flow_keeps_failing_on_redis_not_after_a_blip(tmp_path: Path) -> None:
    rules = ROOT / "deploy" / "prometheus" / "alerts.yml"
    summary = ("the flow has failed to read or write Redis for 2 minutes (it backs off and retries):"
               " lists are not being updated")
    cases = tmp_path / "alert_tests.yml"
    cases.write_text(ALERT_TESTS.format(rules=rules, summary=summary))
    result = subprocess.run(["promtool", "test", "rules", str(cases)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
