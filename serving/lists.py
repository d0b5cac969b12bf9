"""Reading lists from Redis and applying request-time rules.

Every lookup is one pipelined round trip: the personal (or neighbour) list
together with the trending list it may fall back to or be padded with.
In Redis Cluster the list (tagged ``{u:<user>}`` or ``{i:<item>}``) and the
trending list usually live on different masters; the cluster pipeline sends
each its part concurrently, so it is still one round trip of wall time.
Rules applied here, at request time: exclusions (``exclude=``), never the
subject item itself, de-duplication, and padding a short list with trending
items (each item says where it came from).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import orjson

from online.contract import CandidateList, RedisKeys, decode_candidates
from serving.redis_connect import AsyncRedisClient

__all__ = ["ListAnswer", "merged_list", "read_profile", "read_trending"]


@dataclass(slots=True)
class ListAnswer:
    source: str
    """``personal`` / ``similar`` when the subject's own list answered, else ``trending``."""
    items: list[dict[str, Any]] = field(default_factory=list)
    fallback: str | None = None
    """Why trending was used: ``unknown`` (no list), ``short`` (padded)."""
    accepted_ms: int = 0


def _relative(scores: Any) -> list[tuple[str, float]]:
    """Trending log scores as popularity relative to the top item (1.0)."""
    if not scores:
        return []
    top = scores[0][1]
    return [(member.decode(), round(math.exp(score - top), 6)) for member, score in scores]


def _fill(answer: ListAnswer, ranked: list[tuple[str, float]], source: str, n: int, skip: set[str]) -> None:
    for item, score in ranked:
        if len(answer.items) >= n:
            return
        if item in skip:
            continue
        skip.add(item)
        answer.items.append({"item_id": item, "score": score, "source": source})


async def merged_list(client: AsyncRedisClient, keys: RedisKeys, list_key: str, own_source: str, n: int,
                      exclude: set[str], trending_category: str | None = None) -> ListAnswer:
    """The list under ``list_key`` without ``exclude``, padded from trending up to ``n``."""
    pipe = client.pipeline(transaction=False)
    pipe.get(list_key)
    pipe.zrevrange(keys.trending(trending_category), 0, n + len(exclude), withscores=True)
    blob, trending = await pipe.execute()
    candidates: CandidateList | None = decode_candidates(blob) if blob else None
    skip = set(exclude)
    if candidates and candidates.items:
        answer = ListAnswer(source=own_source, accepted_ms=candidates.accepted_ms)
        _fill(answer, list(zip(candidates.items, candidates.scores, strict=True)), own_source, n, skip)
        if not answer.items:
            answer.source = "trending"
            answer.fallback = "unknown"
        elif len(answer.items) < n:
            answer.fallback = "short"
    else:
        answer = ListAnswer(source="trending", fallback="unknown")
    _fill(answer, _relative(trending), "trending", n, skip)
    return answer


async def read_trending(client: AsyncRedisClient, keys: RedisKeys, n: int, category: str | None) -> list[dict[str, Any]]:
    scores = await client.zrevrange(keys.trending(category), 0, n - 1, withscores=True)
    return [{"item_id": item, "score": score} for item, score in _relative(scores)]


async def read_profile(client: AsyncRedisClient, keys: RedisKeys, user_id: str) -> dict[str, Any] | None:
    blob = await client.get(keys.user_profile(user_id))
    if blob is None:
        return None
    profile: dict[str, Any] = orjson.loads(blob)
    profile["recent"] = [{"item_id": i, "weight": w, "ts": ts} for i, w, ts in profile.get("recent", [])]
    return profile
