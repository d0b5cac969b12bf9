"""Reading lists from Redis and applying request-time rules.

Every lookup is one pipelined round trip: the personal (or neighbour) list
together with the trending list it may fall back to or be padded with.
In Redis Cluster the list (tagged ``{u:<user>}`` or ``{i:<item>}``) and the
trending list usually live on different masters; the cluster pipeline sends
each its part concurrently, so it is still one round trip of wall time.
Rules applied here, at request time: the final ranking (the stored list
blended with live trending by the flow's learned ranker weights, see
:mod:`online.ranker`), exclusions (``exclude=`` and the user's own: purchased,
disliked, consumed), never the subject item itself, de-duplication; each item
says where it came from.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from online.contract import CandidateList, RedisKeys, decode_candidates
from online.ranker import Pool, blend
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
    return [(member.decode(), math.exp(score - top)) for member, score in scores]


async def merged_list(client: AsyncRedisClient, keys: RedisKeys, list_key: str, own_source: str, n: int,
                      exclude: set[str], trending_category: str | None = None,
                      weights: Mapping[str, float] | None = None, depth: int = 0,
                      stored_exclude_max: int = 0) -> ListAnswer:
    """The list under ``list_key`` blended with live trending by ``weights``, without ``exclude``.

    The stored list's own exclusions (purchased, disliked, consumed items)
    apply to trending too. The trending pool is ``max(n, depth)`` items beyond
    the exclusions, as in the flow's ranker stage (``depth``: the flow's
    ``LIVERECO_CANDIDATES``), so the list served here is the list the flow
    scores. ``stored_exclude_max`` bounds the stored list's own exclusions,
    so one read fetches enough trending items whatever they turn out to be.
    Without weights (an untrained ranker, or similar items) the own list
    comes first and trending pads it.
    """
    pool_size = max(n, depth)
    pipe = client.pipeline(transaction=False)
    pipe.get(list_key)
    pipe.zrevrange(keys.trending(trending_category), 0, pool_size + len(exclude) + stored_exclude_max - 1,
                   withscores=True)
    blob, trending = await pipe.execute()
    candidates: CandidateList | None = decode_candidates(blob) if blob else None
    if candidates is None:
        candidates = CandidateList([], [])
    stored_exclude = set(candidates.exclude)
    ranked = blend(Pool(personal=list(zip(candidates.items, candidates.scores, strict=True)),
                        trending=_relative(trending)[: pool_size + len(stored_exclude) + len(exclude)],
                        repeats={candidates.items[i] for i in candidates.repeats if i < len(candidates.items)},
                        exclude=stored_exclude | exclude),
                   weights or {}, n)
    answer = ListAnswer(source=own_source, accepted_ms=candidates.accepted_ms)
    answer.items = [{"item_id": item, "score": round(score, 6), "source": own_source if source == "personal" else "trending"}
                    for item, score, source in ranked]
    available = sum(1 for item in candidates.items if item not in exclude and item not in stored_exclude)
    if not available:
        answer.source, answer.fallback = "trending", "unknown"
    elif available < n:
        answer.fallback = "short"
    return answer


async def read_trending(client: AsyncRedisClient, keys: RedisKeys, n: int, category: str | None) -> list[dict[str, Any]]:
    scores = await client.zrevrange(keys.trending(category), 0, n - 1, withscores=True)
    return [{"item_id": item, "score": round(score, 6)} for item, score in _relative(scores)]


async def read_profile(client: AsyncRedisClient, keys: RedisKeys, user_id: str) -> dict[str, Any] | None:
    blob = await client.get(keys.user_profile(user_id))
    if blob is None:
        return None
    profile: dict[str, Any] = orjson.loads(blob)
    profile["recent"] = [{"item_id": i, "weight": w, "ts": ts} for i, w, ts in profile.get("recent", [])]
    return profile
