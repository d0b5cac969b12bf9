"""The served-list cache answers exactly what the blend would, and any changed input changes the answer."""

from __future__ import annotations

import asyncio
import time

import redis

from online.contract import CandidateList, RedisKeys, Settings, encode_candidates
from serving.lists import ListAnswer, merged_list
from serving.redis_reads import fast_reads_for
from serving.served_cache import ServedCache
from tests.conftest import LiveServer
from tests.processes import metric_value


def store_list(client: redis.Redis, keys: RedisKeys, user: str, items: list[str],
               exclude: tuple[str, ...] = ()) -> None:
    client.set(keys.user_recs(user), encode_candidates(CandidateList(
        items, [1.0 / (k + 1) for k in range(len(items))], exclude=list(exclude), event_ts=time.time(),
        accepted_ms=int(time.time() * 1000))))


def served(redis_url: str, keys: RedisKeys, user: str, cache: ServedCache | None, n: int = 5,
           weights: dict[str, float] | None = None, exclude: set[str] | None = None) -> list[tuple[str, float, str]]:
    async def ask() -> ListAnswer:
        reads = fast_reads_for(redis_url)
        assert reads is not None
        try:
            return await merged_list(reads, keys, keys.user_recs(user), "personal", n, exclude or set(), weights=weights,
                                     depth=20, cache=cache)
        finally:
            await reads.aclose()

    answer = asyncio.run(ask())
    return [(item.item_id, item.score, item.source) for item in answer.items]


def test_a_cached_answer_is_the_blend_s_answer_and_every_changed_input_changes_it(
        redis_url: str, keys: RedisKeys, redis_client: redis.Redis) -> None:
    cache = ServedCache(100)
    store_list(redis_client, keys, "u1", ["a", "b", "c"])
    redis_client.zadd(keys.trending(), {"t1": 3.0, "t2": 2.0, "t3": 1.0})
    first = served(redis_url, keys, "u1", cache)
    assert first == served(redis_url, keys, "u1", None)
    assert served(redis_url, keys, "u1", cache) == first and cache.hits == 1
    # the user's list changes (the flow stored a new one): a new answer
    store_list(redis_client, keys, "u1", ["c", "d", "e"])
    changed = served(redis_url, keys, "u1", cache)
    assert changed != first and changed == served(redis_url, keys, "u1", None)
    # trending changes
    redis_client.zadd(keys.trending(), {"t9": 9.0})
    trending_changed = served(redis_url, keys, "u1", cache)
    assert trending_changed != changed and trending_changed == served(redis_url, keys, "u1", None)
    assert "t9" in [item for item, _, _ in trending_changed]
    # the ranker weights change
    weights = {"trending": 5.0, "personal": 0.1}
    weighted = served(redis_url, keys, "u1", cache, weights=weights)
    assert weighted == served(redis_url, keys, "u1", None, weights=weights) and weighted != trending_changed
    # another request shape (n, exclusions) is another entry
    assert len(served(redis_url, keys, "u1", cache, n=2)) == 2
    assert "c" not in [item for item, _, _ in served(redis_url, keys, "u1", cache, exclude={"c"})]
    # the stored list's own exclusions change
    store_list(redis_client, keys, "u1", ["c", "d", "e"], exclude=("t9",))
    assert "t9" not in [item for item, _, _ in served(redis_url, keys, "u1", cache)]
    # the list is erased: trending answers
    redis_client.delete(keys.user_recs("u1"))
    assert {source for _, _, source in served(redis_url, keys, "u1", cache)} == {"trending"}


def test_the_cache_keeps_at_most_its_capacity() -> None:
    cache = ServedCache(3)
    for k in range(10):
        cache.put(("list", k), b"blob", None, {}, (), {}, {}, "personal", [], None, 0)
    assert len(cache) == 3
    assert cache.get(("list", 9), b"blob", None, {}, (), {}, {}) is not None
    assert cache.get(("list", 0), b"blob", None, {}, (), {}, {}) is None
    ServedCache(0).put(("list", 0), b"blob", None, {}, (), {}, {}, "personal", [], None, 0)


def test_the_server_exports_the_cache_s_hits_misses_and_size(live_server: LiveServer, redis_client: redis.Redis,
                                                              settings: Settings) -> None:
    store_list(redis_client, settings.keys, "u1", ["a", "b", "c"])
    for _ in range(3):
        assert live_server.json("GET", "/v1/users/u1/recommendations?n=3")[0] == 200
    status, _, body = live_server.request("GET", "/metrics")
    assert status == 200
    text = body.decode()
    assert metric_value(text, "livereco_serving_served_cache_lookups_total", 'result="miss"') == 1
    assert metric_value(text, "livereco_serving_served_cache_lookups_total", 'result="hit"') == 2
    assert metric_value(text, "livereco_serving_served_cache_entries") == 1
