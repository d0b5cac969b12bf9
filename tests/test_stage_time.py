"""livereco_flow_stage_cpu_seconds_total: each stage's CPU time, from sampled batches, read at each scrape."""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest
import redis
from bytewax.testing import run_main
from prometheus_client import REGISTRY, generate_latest

from flows import stage_time
from flows.dataflow import build_flow
from flows.event_writer import EventWriter
from flows.stage_time import STAGES, add, totals
from online.contract import Event, Settings

T0 = 1_700_000_000.0


def test_every_stage_of_a_real_run_adds_its_time_and_no_more_than_the_run_took(
        redis_client: redis.Redis, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stage_time, "SAMPLE_EVERY", 1)  # every batch timed: a short run's few parse batches too
    settings = dataclasses.replace(settings, partitions=1)
    events = [Event(f"u{u}", f"i{(u + step) % 40}", "view", T0 + 10 * u + step) for u in range(200) for step in range(4)]
    EventWriter(redis_client, settings.keys).append(events)
    before = totals()
    started = time.perf_counter()
    run_main(build_flow(settings, stop_at_end=True))
    elapsed = time.perf_counter() - started
    spent = {stage: seconds - before.get(stage, 0.0) for stage, seconds in totals().items()}
    for stage in ("parse", "user_history", "items", "user_lists", "ranker", "sink"):
        assert spent.get(stage, 0.0) > 0.0, stage
    assert sum(spent.values()) < elapsed  # one worker: the stages' CPU is part of the run's wall time
    text = generate_latest(REGISTRY).decode()
    assert 'livereco_flow_stage_cpu_seconds_total{stage="user_lists"}' in text
    assert set(spent) <= set(STAGES)  # a closed set of labels


def test_threads_add_without_losing_time() -> None:
    before = totals().get("catalog", 0.0)

    def work() -> None:
        for _ in range(10_000):
            add("catalog", 1000)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert abs(totals()["catalog"] - before - 4 * 10_000 * 1000 / 1e9) < 1e-9
