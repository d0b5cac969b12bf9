"""One served list with the catalog layers: reads → blend → filters and refill → rules → diversity (DESIGN.md
"Serving one list: the layers"), as I/O-free steps that the server and ``livereco export`` both drive.

:func:`served_list` is an operation in the style of :mod:`online.catalog.protocol`:
it yields command batches and is sent their replies. The first batch is the
request's one round trip for the user's data: their candidate list, global
trending and, for a category page, the category's trending (deep enough to
refill what the filters remove), the profile when ``exclude_seen`` needs the
user's recent items, and the user's attributes when segments are configured.
Only two cases read again, as the server did before: a user whose list names
category affinities (those categories' trending), and a user *without* a
list whose attributes name a segment (the segment trending sets, cold start).
Everything the filters and rules ask is answered by the in-process catalog
copy (:class:`~online.catalog.snapshot.CatalogSnapshot`), without I/O.

The server runs it with its multiplexed reader (:func:`run_read_steps`), the
export with a redis-py pipeline (:func:`flows.catalog_store.run_steps`): the
same code decides what a user is served in both.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from online.affinity_candidates import affinity_candidates, affinity_categories
from online.blend import Pool, blend
from online.catalog.assemble import assemble
from online.catalog.filters import Filters
from online.catalog.rules import NewArrivals, Rules
from online.catalog.snapshot import CatalogSnapshot
from online.contract import CandidateList, RedisKeys, decode_candidates, decode_profile
from serving.api import ItemSourced
from serving.lists import ListAnswer, _trending_pool, _trending_state
from serving.served_cache import ServedCache

__all__ = ["REFILL_DEPTH", "WINDOWED_MAX", "ListSpec", "cache_expiry", "run_read_steps", "served_list", "user_attributes"]

T = TypeVar("T")
Command = tuple[Any, ...]
ReadSteps = Generator[list[Command], list[Any], T]

WINDOWED_MAX = 10_000
"""Above this many items with an availability window, answers are not cached (sorting the windows' ends again after
each catalog change would cost more than the cache saves)."""

REFILL_DEPTH = 200
"""Items of each trending list (global, the page category's) read to refill the places filters emptied."""


@dataclass(frozen=True, slots=True)
class ListSpec:
    """What one list request asks, besides the catalog and the rules."""

    n: int
    filters: Filters
    list_key: str | None = None
    """The subject's list (a user's candidates, an item's neighbours); ``None``: trending only."""
    own_source: str = "personal"
    weights: Mapping[str, float] = field(default_factory=dict)
    depth: int = 0
    stored_exclude_max: int = 0
    explore: Sequence[str] = ()
    explore_at: int = 0
    affinity_top: int = 0
    affinity_items: int = 20
    device: Mapping[str, float] = field(default_factory=dict)
    hour: Mapping[str, float] = field(default_factory=dict)
    profile_key: str | None = None
    """Read the user's recent items (``exclude_seen``)."""
    attributes_key: str | None = None
    """Read the user's attributes, for a segment's trending when they have no list."""
    segments: tuple[str, ...] = ()
    diversity_cap: int = 3
    diversity_window: int = 10


def _flat_mapping(reply: Any) -> dict[str, str]:
    """A ``HGETALL`` reply (a dict from redis-py, a flat list raw) as ``{str: str}``."""
    if isinstance(reply, dict):
        pairs: Any = reply.items()
    else:
        values = iter(reply or ())
        pairs = zip(values, values, strict=True)
    return {(k.decode() if isinstance(k, bytes) else str(k)): (v.decode() if isinstance(v, bytes) else str(v))
            for k, v in pairs}


def user_attributes(reply: Any) -> dict[str, str]:
    """The user's stored attributes from a ``HGETALL`` reply."""
    return _flat_mapping(reply)


def _zrevrange(key: str, stop: int) -> Command:
    return ("ZREVRANGE", key, 0, stop, "WITHSCORES")


def cache_expiry(snapshot: CatalogSnapshot, rules: Rules | None, now: float) -> float | None:
    """Until when (epoch seconds) an answer made at ``now`` stays right while nothing stored changes: the next start
    or end of a rule, of an item's availability window, or of an item's time as a new arrival under a
    ``new_arrivals`` rule (``inf``: no such time ahead); ``None``: too many windowed items to track (not cached).

    >>> from online.catalog.rules import parse_rules
    >>> rules = parse_rules({"rules": [{"kind": "block", "items": ["x"], "start": 100, "end": 200}]})
    >>> [cache_expiry(CatalogSnapshot(), rules, now) for now in (50, 150, 250)], cache_expiry(CatalogSnapshot(), None, 0)
    ([100.0, 200.0, inf], inf)
    >>> from online.catalog.item import parse_item
    >>> snapshot = CatalogSnapshot(); snapshot.put(parse_item({"item_id": "a", "created_at": 86_400}))
    >>> new_arrivals = parse_rules({"rules": [{"kind": "new_arrivals", "days": 1}]})
    >>> [round(cache_expiry(snapshot, new_arrivals, now)) for now in (0, 86_400)], cache_expiry(snapshot, new_arrivals, 2e5)
    ([86400, 172800], inf)
    """
    if snapshot.windowed > WINDOWED_MAX:
        return None
    expires = snapshot.next_boundary(now) if snapshot.windowed else math.inf
    if rules is not None:
        for rule in rules.rules:
            if isinstance(rule, NewArrivals):
                expires = min(expires, snapshot.next_age_boundary(now, rule.max_age_s))
            for at in (rule.start, rule.end):
                if at is not None and now < at < expires:  # type: ignore[operator]
                    expires = float(at)  # type: ignore[arg-type]
    return expires


def served_list(keys: RedisKeys, spec: ListSpec, snapshot: CatalogSnapshot, rules: Rules | None,
                now: float, cache: ServedCache | None = None) -> ReadSteps[ListAnswer]:
    """The first ``spec.n`` items served, with each one's source; see the module's text for the reads.

    ``cache``: the answer is reused while every input it was made from is unchanged (the replies of the one
    round trip, the catalog copy and its version, the rules and their version, the blend's inputs) and no rule or
    item window starts or ends in between (:func:`cache_expiry`); a list that needed a second round trip (affinity
    categories, a segment's trending) is not cached."""
    filters = spec.filters
    page = filters.categories[0] if filters.categories else None
    pool_size = max(spec.n, spec.depth)
    blend_stop = pool_size + len(filters.exclude) + spec.stored_exclude_max - 1
    stop = max(blend_stop, REFILL_DEPTH - 1)
    global_key = keys.trending()
    commands: list[Command] = [_zrevrange(global_key, stop)]
    if spec.list_key is not None:
        commands.append(("GET", spec.list_key))
    if page is not None:
        commands.append(_zrevrange(keys.trending(page), REFILL_DEPTH - 1))
    if spec.profile_key is not None:
        commands.append(("GET", spec.profile_key))
    if spec.attributes_key is not None and spec.segments:
        commands.append(("HGETALL", spec.attributes_key))
    replies = iter((yield commands))
    trending_state = _trending_state(next(replies), (global_key, stop))
    trending = trending_state[1][:]
    blob = next(replies) if spec.list_key is not None else None
    category_state = _trending_state(next(replies), (keys.trending(page), REFILL_DEPTH - 1)) \
        if page is not None else None
    category_trending = category_state[1][:] if category_state is not None else []
    profile_blob = next(replies) if spec.profile_key is not None else None
    attributes_reply = next(replies) if spec.attributes_key is not None and spec.segments else None
    expires = cache_expiry(snapshot, rules, now) if cache is not None else None
    key: tuple[Any, ...] = ()
    extra: tuple[Any, ...] = ()
    if cache is not None and expires is not None:
        key = ("catalog", spec.list_key, spec.own_source, spec.n, filters, spec.depth, spec.stored_exclude_max,
               spec.explore_at, spec.affinity_top, spec.affinity_items, spec.profile_key, spec.attributes_key,
               spec.segments, spec.diversity_cap, spec.diversity_window, rules is None)
        # the copy by its id, not the object: a cached answer does not keep a replaced catalog copy alive
        extra = (category_state, profile_blob, attributes_reply, snapshot.copy_id, snapshot.version, rules,
                 None if rules is None else rules.version)
        hit = cache.get(key, blob, trending_state, spec.weights, spec.explore, spec.device, spec.hour, extra, now)
        if hit is not None:
            return ListAnswer(source=hit.source, items=list(hit.items), fallback=hit.fallback,
                              accepted_ms=hit.accepted_ms)
    seen: frozenset[str] = frozenset()
    if profile_blob:
        seen = frozenset(item for item, _, _ in decode_profile(profile_blob).recent)
    attributes = _flat_mapping(attributes_reply) if attributes_reply is not None else {}
    candidates: CandidateList = (decode_candidates(blob) if blob else None) or CandidateList([], [])
    stored_exclude = frozenset(candidates.exclude)
    segment = None
    segment_read = False
    if not candidates.items and attributes:
        named = [(name, attributes[name]) for name in spec.segments if attributes.get(name)]
        if named:
            segment_read = True
            segment_replies = yield [_zrevrange(keys.trending_segment(name, value), stop) for name, value in named]
            for (name, value), reply in zip(named, segment_replies, strict=True):
                if reply:
                    trending, segment = _trending_pool(reply, None, (keys.trending_segment(name, value), stop)), \
                        f"{name}={value}"
                    break
    affinity: list[tuple[str, float]] = []
    categories = affinity_categories(candidates.affinities, spec.affinity_top)
    if categories:
        affinity_replies = yield [_zrevrange(keys.trending(category), spec.affinity_items - 1) for category in categories]
        tops = {category: _trending_pool(reply, None, (keys.trending(category), spec.affinity_items - 1))
                for category, reply in zip(categories, affinity_replies, strict=True)}
        affinity = affinity_candidates(candidates.affinities, lambda category, k: tops[category][:k],
                                       spec.affinity_top, spec.affinity_items)
    excluded = stored_exclude | filters.exclude
    personal = list(zip(candidates.items, candidates.scores, strict=True))
    blend_trending = trending[:pool_size + len(excluded)]
    repeats = {candidates.items[i] for i in candidates.repeats if i < len(candidates.items)}
    pool = Pool(personal=personal, trending=blend_trending, repeats=repeats, exclude=excluded, affinity=affinity,
                device=spec.device, hour=spec.hour)
    blended = blend(pool, spec.weights, len(personal) + len(blend_trending) + len(affinity) + 1,
                    spec.explore, spec.explore_at) if (personal or blend_trending or affinity) else []
    if stored_exclude:
        filters = dataclasses.replace(filters, exclude=excluded)
    served = assemble(blended, snapshot, spec.n, filters, rules, category_trending=category_trending,
                      trending=trending, seen=seen, now=now, diversity_cap=spec.diversity_cap,
                      diversity_window=spec.diversity_window)
    own = spec.own_source
    answer = ListAnswer(source=own, accepted_ms=candidates.accepted_ms)
    answer.items = [ItemSourced(item, round(score, 6), own if source == "personal" else source)  # type: ignore[arg-type]
                    for item, score, source in served]
    if spec.list_key is not None:
        available = sum(1 for item in candidates.items if item not in excluded)
        if not available:
            answer.source, answer.fallback = "trending", "unknown"
        elif available < spec.n:
            answer.fallback = "short"
    answer.segment = segment
    if cache is not None and expires is not None and not segment_read and not categories:
        cache.put(key, blob, trending_state, spec.weights, spec.explore, spec.device, spec.hour, answer.source,
                  list(answer.items), answer.fallback, answer.accepted_ms, extra, expires)
    return answer


async def run_read_steps(reads: Any, steps: ReadSteps[T]) -> T:
    """Drive :func:`served_list` on the server's reader (or a ``redis.asyncio`` client): one pipeline per batch."""
    try:
        batch = next(steps)
        while True:
            pipe = reads.pipeline(transaction=False)
            for command in batch:
                pipe.execute_command(*command)
            batch = steps.send(await pipe.execute())
    except StopIteration as done:
        return done.value

