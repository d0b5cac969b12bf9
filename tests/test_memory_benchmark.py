"""The memory benchmark's parts at tiny sizes: the generator, the RSS soak and the Redis measurements."""

from __future__ import annotations

import types
from collections.abc import Iterator
from itertools import islice

import orjson
import pytest

from benchmarks.memory_workload import full_user_writes, soak_entries, user_id, users_seen_after
from benchmarks.redis_footprint import (
    ALTERNATIVES,
    ITEM_ALTERNATIVES,
    alternative_footprints,
    flow_footprint,
    full_footprint,
)
from benchmarks.rss_soak import soak
from flows.embedded_redis import EmbeddedRedis
from online.contract import Settings, parse_event
from online.item_embedding import DIM


@pytest.fixture(scope="module")
def own_redis_url() -> Iterator[str]:
    """A server of its own: the measurements flush it and read used_memory deltas."""
    with EmbeddedRedis() as server:
        yield server.url


def test_events_are_lazy_valid_and_every_user_comes_round() -> None:
    entries = soak_entries(2_000, users=100, items=300, seed=1)
    assert isinstance(entries, types.GeneratorType)
    events = [parse_event(orjson.loads(e.fields[b"e"])) for e in entries]
    assert len(events) == 2_000
    assert [e.ts for e in events] == sorted(e.ts for e in events)
    assert {e.user_id for e in events} == {user_id(u) for u in range(100)}
    assert len({e.item_id for e in events}) > 50
    first = {orjson.loads(e.fields[b"e"])["user_id"] for e in islice(soak_entries(1_000, 1_000, 300), 1_000)}
    assert len(first) <= users_seen_after(1_000, 1_000) + 64  # + the sessions still open


def test_soak_samples_rss_every_interval() -> None:
    settings = Settings.from_env({}, redis_url="", flow_metrics_port=0)
    result = soak(settings, events=3_000, users=300, items=500, sample_every=1_000)
    assert [s.events for s in result.samples] == [1_000, 2_000, 3_000]
    assert all(s.rss_mib > 0 for s in result.samples)
    assert result.baseline_mib > 0
    assert result.writes["UserListWrite"] > 0
    assert result.writes["ItemSimilarWrite"] > 0
    assert result.events_per_s > 0


def test_redis_footprint_of_the_flow(own_redis_url: str) -> None:
    flow = flow_footprint(own_redis_url, users=100, items=500)
    assert flow.recs_keys == flow.profile_keys == 100
    assert flow.similar_keys > 0
    assert flow.user_bytes > flow.recs_blob + flow.profile_blob > 0
    assert flow.used_memory_per_user > 0
    assert 0 < flow.candidates <= 50
    assert flow.item_bytes > flow.similar_blob > 0


def test_full_lists_and_alternatives(own_redis_url: str) -> None:
    full = full_footprint(own_redis_url, users=200, items=50)
    assert full.user_bytes > full.recs_blob + full.profile_blob
    assert full.recs_key_usage > full.recs_blob > 200  # 50 candidates
    assert full.item_bytes > 0
    alternatives = alternative_footprints(own_redis_url, users=100)
    assert [a.name for a in alternatives] == [*ALTERNATIVES, *(f"per item: {name}" for name in ITEM_ALTERNATIVES)]
    assert all(a.per_user > 0 and a.usage > a.blob > 0 for a in alternatives)
    version_1, version_2, version_3 = alternatives[0], alternatives[1], alternatives[2]
    assert version_2.usage < version_1.usage / 2
    assert version_3.usage < version_2.usage and version_3.per_user <= version_2.per_user, "Redis memory per user rose"


def test_full_users_fill_the_profile() -> None:
    w = next(full_user_writes(1, affinities=16))
    assert len(w.ranked) == 50 and len(w.recent) == 20 and len(w.affinities) == 16
    assert len(w.session_embedding[0]) == DIM and w.session_embedding[1] > 0
