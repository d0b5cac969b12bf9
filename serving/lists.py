"""Reading lists from Redis and applying request-time rules.

Every lookup is one pipelined round trip: the personal (or neighbour) list
together with the trending list it may fall back to or be padded with.
In Redis Cluster the list (tagged ``{u:<user>}`` or ``{i:<item>}``) and the
trending list usually live on different masters; the cluster pipeline sends
each its part concurrently, so it is still one round trip of wall time.
Rules applied here, at request time: the final ranking (the stored list
blended with live trending by the flow's learned ranker weights, see
:mod:`online.ranker`), exclusions (``exclude=`` and the user's own: purchased,
disliked, consumed), never the subject item itself, de-duplication, the
exploration slot (a new item, see :mod:`online.exploration`); each item says
where it came from. A user whose list carries category affinities
(``LIVERECO_AFFINITY_CATEGORIES``) also gets the trending items of those
categories (:mod:`online.affinity_candidates`): one more round trip, for those
categories' trending sets, which only the list can name.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from online.affinity_candidates import affinity_candidates, affinity_categories
from online.blend import Pool, blend
from online.contract import CandidateList, Profile, RedisKeys, decode_candidates, decode_profile
from serving.api import ItemSourced, TrendingItem
from serving.redis_connect import AsyncRedisClient
from serving.redis_reads import FastReads
from serving.served_cache import ServedCache

Reads = AsyncRedisClient | FastReads
"""Either redis-py client, or the server's multiplexed reader (:mod:`serving.redis_reads`)."""

__all__ = ["ListAnswer", "merged_list", "read_profile", "read_trending"]


@dataclass(slots=True)
class ListAnswer:
    source: str
    """``personal`` / ``similar`` when the subject's own list answered, else ``trending``."""
    items: list[ItemSourced] = field(default_factory=list)
    fallback: str | None = None
    """Why trending was used: ``unknown`` (no list), ``short`` (padded)."""
    accepted_ms: int = 0
    segment: str | None = None
    """A user without a list: the segment (``attribute=value``) whose trending answered."""


def _zrevrange_withscores(client: Any, key: str, stop: int) -> Any:
    """``ZREVRANGE key 0 stop WITHSCORES`` without redis-py's reply conversion; read it with :func:`_score_pairs`.

    redis-py (8.x, RESP3 wire with RESP2-shaped "legacy" replies) re-encodes
    every score to bytes and parses it back, which was a sixth of the
    server's CPU at saturation; raw, a score is parsed once, and only for the
    members used. ``client`` is a client or a pipeline (then the reply comes
    from ``execute``).
    """
    return client.execute_command("ZREVRANGE", key, 0, stop, "WITHSCORES")


def _score_pairs(reply: Any) -> Any:
    """A raw ``WITHSCORES`` reply as ``(member, score)`` pairs, whichever protocol the connection speaks.

    >>> _score_pairs([b"a", b"2", b"b", b"1.5"]), _score_pairs([[b"a", 2.0], [b"b", 1.5]]), _score_pairs([])
    ([(b'a', b'2'), (b'b', b'1.5')], [[b'a', 2.0], [b'b', 1.5]], [])
    """
    if not reply or isinstance(reply[0], list | tuple):  # RESP3: [[member, score], ...]
        return reply
    pairs = iter(reply)  # RESP2: [member, score, member, score, ...]
    return list(zip(pairs, pairs, strict=True))


_RELATIVE_CACHE: dict[Any, tuple[Any, list[tuple[str, float]]]] = {}
_RELATIVE_CACHE_SIZE = 128
"""Trending lists remembered decoded: the global one and each category's (affinity candidates, category pages)."""


def _trending_pool(reply: Any, limit: int | None = None, cache_key: Any = None) -> list[tuple[str, float]]:
    """``_relative(_score_pairs(reply), limit)``, remembering the last answer per ``cache_key``.

    Every request reads the same trending list, and it changes far less often
    than it is read: when the reply equals the previous one for this key (a
    C-level list comparison) its decoded members and relative scores are
    reused, so the answer is the same as computing it again. The caller gets
    its own list (a slice), never the cached one.
    """
    if cache_key is None:
        return _relative(_score_pairs(reply), limit)
    return _trending_state(reply, cache_key)[1][:limit]


def _trending_state(reply: Any, cache_key: Any) -> tuple[Any, list[tuple[str, float]]]:
    """The remembered ``(reply, decoded pool)`` of ``cache_key``: the same object while Redis returns the same reply,
    a new one when the reply differs (what :class:`serving.served_cache.ServedCache` checks by identity)."""
    cached = _RELATIVE_CACHE.get(cache_key)
    if cached is not None and (cached[0] is reply or cached[0] == reply):  # a shared reply: the same list
        return cached
    state = (reply, _relative(_score_pairs(reply)))
    if len(_RELATIVE_CACHE) >= _RELATIVE_CACHE_SIZE:
        _RELATIVE_CACHE.clear()
    _RELATIVE_CACHE[cache_key] = state
    return state


def _relative(pairs: Any, limit: int | None = None) -> list[tuple[str, float]]:
    """The first ``limit`` trending log scores as popularity relative to the top item (1.0).

    >>> _relative([(b"a", b"2"), (b"b", b"1")]) == [("a", 1.0), ("b", math.exp(-1.0))]
    True
    """
    if not pairs:
        return []
    top = float(pairs[0][1])
    return [(member.decode(), math.exp(float(score) - top)) for member, score in pairs[:limit]]


async def merged_list(client: Reads, keys: RedisKeys, list_key: str, own_source: str, n: int,
                      exclude: set[str], trending_category: str | None = None,
                      weights: Mapping[str, float] | None = None, depth: int = 0,
                      stored_exclude_max: int = 0, explore: Sequence[str] = (), explore_at: int = 0,
                      affinity_top: int = 0, affinity_items: int = 20, device: Mapping[str, float] | None = None,
                      hour: Mapping[str, float] | None = None, cache: ServedCache | None = None) -> ListAnswer:
    """The list under ``list_key`` blended with live trending by ``weights``, without ``exclude``.

    The stored list's own exclusions (purchased, disliked, consumed items)
    apply to trending too. The trending pool is ``max(n, depth)`` items beyond
    the exclusions, as in the flow's ranker stage (``depth``: the flow's
    ``LIVERECO_CANDIDATES``), so the list served here is the list the flow
    scores. ``stored_exclude_max`` bounds the stored list's own exclusions,
    so one read fetches enough trending items whatever they turn out to be.
    Without weights (an untrained ranker, or similar items) the own list
    comes first and trending pads it. ``explore`` (the flow's exploration
    order) fills the ``explore_at``-th place with a new item, as the flow does
    (:func:`online.blend.explore_slot`), honouring every exclusion.
    ``affinity_top`` (``LIVERECO_AFFINITY_CATEGORIES``) and ``affinity_items``
    (``LIVERECO_AFFINITY_ITEMS``): the affinity candidates, from the
    categories the stored list names and their trending sets, as the flow's
    ranker stage builds them (:func:`online.affinity_candidates.affinity_candidates`).
    ``device`` and ``hour``: the popular items of the request's context segments, for the
    ranker's context features (:class:`online.context_popularity.ContextPopularity`).
    ``cache``: the answer is reused while the stored list, trending and the blend's inputs are unchanged
    (:class:`serving.served_cache.ServedCache`).
    """
    pool_size = max(n, depth)
    trending_key = keys.trending(trending_category)
    trending_stop = pool_size + len(exclude) + stored_exclude_max - 1
    if isinstance(client, FastReads):  # trending read once per event-loop turn, its reply shared
        blob, trending = await client.read_with_shared(("GET", list_key),
                                                       ("ZREVRANGE", trending_key, 0, trending_stop, "WITHSCORES"))
    else:
        pipe = client.pipeline(transaction=False)
        pipe.get(list_key)
        _zrevrange_withscores(pipe, trending_key, trending_stop)
        blob, trending = await pipe.execute()
    trending_state = _trending_state(trending, (trending_key, trending_stop))
    weights = weights or {}
    device, hour = device or {}, hour or {}
    key = None
    if cache is not None:
        key = (list_key, own_source, n, frozenset(exclude) if exclude else None, trending_category, depth,
               stored_exclude_max, explore_at, affinity_top, affinity_items)
        hit = cache.get(key, blob, trending_state, weights, explore, device, hour)
        if hit is not None:
            return ListAnswer(source=hit.source, items=list(hit.items), fallback=hit.fallback,
                              accepted_ms=hit.accepted_ms)
    candidates: CandidateList | None = decode_candidates(blob) if blob else None
    if candidates is None:
        candidates = CandidateList([], [])
    stored_exclude = set(candidates.exclude)
    affinity = await _affinity_pool(client, keys, candidates.affinities, affinity_top, affinity_items)
    ranked = blend(Pool(personal=list(zip(candidates.items, candidates.scores, strict=True)),
                        trending=trending_state[1][:pool_size + len(stored_exclude) + len(exclude)],
                        repeats={candidates.items[i] for i in candidates.repeats if i < len(candidates.items)},
                        exclude=stored_exclude | exclude, affinity=affinity, device=device, hour=hour),
                   weights, n, explore, explore_at)
    answer = ListAnswer(source=own_source, accepted_ms=candidates.accepted_ms)
    answer.items = [ItemSourced(item, round(score, 6), own_source if source == "personal" else source)  # type: ignore[arg-type]
                    for item, score, source in ranked]
    available = sum(1 for item in candidates.items if item not in exclude and item not in stored_exclude)
    if not available:
        answer.source, answer.fallback = "trending", "unknown"
    elif available < n:
        answer.fallback = "short"
    if cache is not None and not affinity_categories(candidates.affinities, affinity_top):
        cache.put(key, blob, trending_state, weights, explore, device, hour, answer.source,
                  list(answer.items), answer.fallback, answer.accepted_ms)
    return answer


async def _affinity_pool(client: Reads, keys: RedisKeys, affinities: Sequence[tuple[str, float]], top: int,
                         per_category: int) -> list[tuple[str, float]]:
    """The affinity candidates of a user whose list names ``affinities``: one pipelined read of their categories."""
    categories = affinity_categories(affinities, top)
    if not categories:
        return []
    pipe = client.pipeline(transaction=False)
    for category in categories:
        _zrevrange_withscores(pipe, keys.trending(category), per_category - 1)
    replies = await pipe.execute()
    tops = {category: _trending_pool(reply, None, (keys.trending(category), per_category - 1))
            for category, reply in zip(categories, replies, strict=True)}
    return affinity_candidates(affinities, lambda category, k: tops[category][:k], top, per_category)


async def read_trending(client: Reads, keys: RedisKeys, n: int, category: str | None) -> list[TrendingItem]:
    reply = await _zrevrange_withscores(client, keys.trending(category), n - 1)
    return [TrendingItem(item, round(score, 6)) for item, score in _relative(_score_pairs(reply))]


async def read_profile(client: Reads, keys: RedisKeys, user_id: str) -> Profile | None:
    blob = await client.get(keys.user_profile(user_id))
    if blob is None:
        return None
    return decode_profile(blob)
