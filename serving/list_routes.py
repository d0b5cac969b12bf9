"""The list endpoints' handlers (recommendations, similar, trending), with the request's filters, the rules and
the diversity cap.

While the server has neither a catalog nor rules, and the request needs
nothing the catalog layer adds (``exclude_seen``, segments), a list is served
exactly as before the catalog existed (:func:`serving.lists.merged_list`, the
hot path the serving benchmark measures). Otherwise it is
:func:`serving.served_list.served_list`: the same one round trip for the
user's data, then filters, refill, rules and diversity from the in-process
catalog copy. Both reuse an answer while its inputs are unchanged
(:class:`serving.served_cache.ServedCache`).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from msgspec import UNSET

from online.catalog.filters import Filters
from online.contract import RedisKeys, Settings
from online.experiments import VariantConfig
from serving.api import (
    ItemRequest,
    ItemSourced,
    ListQuery,
    RecommendationList,
    RecommendationsRequest,
    SimilarList,
    TrendingItem,
    TrendingList,
    TrendingRequest,
)
from serving.catalog_state import ServingCatalog
from serving.experiment_state import ServingExperiments
from serving.impressions import ImpressionRecorder
from serving.lists import ListAnswer, merged_list, read_trending
from serving.metrics import ServingMetrics
from serving.ranker_weights import RankerWeights
from serving.served_cache import ServedCache
from serving.served_list import ListSpec, run_read_steps, served_list

__all__ = ["ListHandlers", "filters_of"]


def filters_of(p: ListQuery, exclude_seen_default: bool) -> Filters:
    """The request's :class:`~online.catalog.filters.Filters` from its decoded query.

    >>> import msgspec
    >>> query = msgspec.convert({"category": ["/sports/fitness/"], "max_price": "50", "attr": {"size": "42"}},
    ...                         ListQuery, strict=False)
    >>> f = filters_of(query, exclude_seen_default=True)
    >>> f.categories, f.max_price, f.attributes, f.in_stock, f.exclude_seen
    (('sports/fitness',), 50.0, (('size', '42'),), True, True)
    """
    return Filters(categories=tuple(path for path in (c.strip("/") for c in p.category) if path),
                   exclude=frozenset(p.exclude), brands=frozenset(p.brand),
                   min_price=None if p.min_price is UNSET else p.min_price,
                   max_price=None if p.max_price is UNSET else p.max_price,
                   in_stock=p.in_stock == "true", attributes=tuple(sorted(p.attr.items())),
                   exclude_seen=exclude_seen_default if p.exclude_seen is UNSET else p.exclude_seen)


class ListHandlers:
    """The handlers of the list routes; mixed into :class:`serving.app.LiverecoApp`."""

    settings: Settings
    keys: RedisKeys
    metrics: ServingMetrics
    ranker_weights: RankerWeights
    catalog: ServingCatalog
    experiments: ServingExperiments
    impressions: ImpressionRecorder
    served_cache: ServedCache

    @property
    def client(self) -> Any: ...

    @property
    def reads(self) -> Any: ...

    def _spec(self, p: ListQuery, filters: Filters, variant: VariantConfig | None = None, **fields: Any) -> ListSpec:
        cap = self.settings.diversity_cap if p.diversity_cap is UNSET else p.diversity_cap
        if variant is not None and variant.diversity_cap is not None and p.diversity_cap is UNSET:
            cap = variant.diversity_cap
        return ListSpec(n=p.n, filters=filters, diversity_cap=cap, diversity_window=self.settings.diversity_window,
                        **fields)

    async def _served(self, spec: ListSpec, rules: bool = True) -> ListAnswer:
        catalog = self.catalog
        return await run_read_steps(self.reads, served_list(self.keys, spec, catalog.snapshot,
                                                            catalog.rules if rules else None, time.time(),
                                                            self.served_cache))

    def _variant(self, user_id: str | None, p: ListQuery) -> tuple[str, str, VariantConfig | None]:
        """The experiment, variant name and configuration making this list (a forced ``?variant=`` or the user's)."""
        return self.experiments.choose(user_id, None if p.variant is UNSET else p.variant)

    async def _control_list(self, p: ListQuery, filters: Filters, variant: VariantConfig | None) -> ListAnswer:
        """A control variant's list: trending only (the category page's, else all items'), rules and filters kept."""
        if self.catalog.active or filters.exclude:
            return await self._served(self._spec(p, filters, variant), rules=variant is None or variant.rules)
        page = filters.categories[0] if filters.categories else None
        trending = await read_trending(self.reads, self.keys, p.n, page)
        if not trending and page is not None:
            trending = await read_trending(self.reads, self.keys, p.n, None)
        return ListAnswer(items=[ItemSourced(t.item_id, t.score, "trending") for t in trending],
                          source="trending")

    async def recommendations(self, request: Any) -> RecommendationList:
        p: RecommendationsRequest = request.params
        settings = self.settings
        experiment, variant_name, variant = self._variant(p.user_id, p)
        if variant is not None and variant.control:
            answer = await self._control_list(p, filters_of(p, False), variant)
            return RecommendationList(user_id=p.user_id, source="trending", fallback=None,
                                      items=answer.items,
                                      rec_id=self._record(p.user_id, experiment, variant_name, answer.items),
                                      variant=variant_name)
        fixed = variant is not None and not variant.ranker
        explore_off = variant is not None and not variant.exploration
        exclude_seen = settings.exclude_seen == 1 if p.exclude_seen is UNSET else p.exclude_seen
        device = p.device or None
        if self.ranker_weights.behind:  # the background refresh (RankerWeights.run) is not keeping up
            await self.ranker_weights.refresh(self.client, self.keys)
        # The request's context (device, hour of day: the client's local hour, else UTC's now) for the context features.
        device_popular, hour_popular = self.ranker_weights.context_for(
            p.user_id, device, time.gmtime().tm_hour if p.hour is UNSET else p.hour) \
            if settings.context_items else ({}, {})
        weights = {} if fixed else self.ranker_weights.for_user(p.user_id)  # no weights: personal, then trending
        if self.catalog.active or exclude_seen or settings.segments:
            filters = filters_of(p, settings.exclude_seen == 1)
            page = filters.categories[0] if filters.categories else None
            answer = await self._served(self._spec(
                p, filters, variant, list_key=self.keys.user_recs(p.user_id), weights=weights,
                depth=settings.candidates, stored_exclude_max=2 * settings.recent_items,
                explore=() if explore_off else self.ranker_weights.explore_for(p.user_id, page),
                explore_at=settings.explore_position, affinity_top=settings.affinity_categories,
                affinity_items=settings.affinity_items, device=device_popular, hour=hour_popular,
                profile_key=self.keys.user_profile(p.user_id) if filters.exclude_seen else None,
                attributes_key=self.keys.user_attributes(p.user_id) if settings.segments else None,
                segments=settings.segments), rules=variant is None or variant.rules)
        else:
            # No catalog: the page's category (a category page, a cold user's first visit) only supplies the
            # trending part, or all items' trending while that category has none yet.
            page = p.category[0] if p.category else None
            for trending_category in ((page, None) if page else (None,)):
                answer = await merged_list(self.reads, self.keys, self.keys.user_recs(p.user_id), "personal", p.n,
                                           set(p.exclude), trending_category=trending_category, weights=weights,
                                           depth=settings.candidates,
                                           # purchased and recent items (disliked ones are among the recent): the flow's bound
                                           stored_exclude_max=2 * settings.recent_items,
                                           explore=() if explore_off else
                                           self.ranker_weights.explore_for(p.user_id, trending_category),
                                           explore_at=settings.explore_position,
                                           affinity_top=settings.affinity_categories,
                                           affinity_items=settings.affinity_items,
                                           device=device_popular, hour=hour_popular, cache=self.served_cache)
                if answer.items:
                    break
        self.metrics.up.set(1)
        if answer.fallback:
            self.metrics.fallbacks.labels("/v1/users/{user_id}/recommendations", answer.fallback).inc()
        body = RecommendationList(user_id=p.user_id, source=answer.source,  # type: ignore[arg-type]
                                  fallback=answer.fallback, items=answer.items,  # type: ignore[arg-type]
                                  rec_id=self._record(p.user_id, experiment, variant_name, answer.items),
                                  variant=variant_name)
        if answer.accepted_ms:
            age_s = max(0.0, time.time() - answer.accepted_ms / 1000.0)
            self.metrics.list_age.observe(age_s)
            body.updated_ms_ago = round(age_s * 1000.0, 1)
        if answer.segment:
            body.segment = answer.segment
        return body

    async def similar(self, request: Any) -> SimilarList:
        p: ItemRequest = request.params
        viewer = None if p.user_id is UNSET or not p.user_id else p.user_id
        experiment, variant_name, variant = self._variant(viewer, p)
        filters = filters_of(p, False)
        if variant is not None and variant.control:
            answer = await self._control_list(p, filters, variant)
        elif self.catalog.active:
            filters = dataclasses.replace(filters, exclude=filters.exclude | {p.item_id})
            answer = await self._served(self._spec(p, filters, variant, list_key=self.keys.item_similar(p.item_id),
                                                   own_source="similar"), rules=variant is None or variant.rules)
        else:
            answer = await merged_list(self.reads, self.keys, self.keys.item_similar(p.item_id), "similar", p.n,
                                       {p.item_id, *p.exclude}, cache=self.served_cache)
        self.metrics.up.set(1)
        if answer.fallback:
            self.metrics.fallbacks.labels("/v1/items/{item_id}/similar", answer.fallback).inc()
        return SimilarList(item_id=p.item_id, source=answer.source,  # type: ignore[arg-type]
                           fallback=answer.fallback, items=answer.items,  # type: ignore[arg-type]
                           rec_id=self._record(viewer, experiment, variant_name, answer.items), variant=variant_name)

    async def trending(self, request: Any) -> TrendingList:
        p: TrendingRequest = request.params
        viewer = None if p.user_id is UNSET or not p.user_id else p.user_id
        experiment, variant_name, variant = self._variant(viewer, p)
        filters = filters_of(p, False)
        page = filters.categories[0] if filters.categories else None
        if self.catalog.active or filters.exclude:
            answer = await self._served(self._spec(p, filters, variant), rules=variant is None or variant.rules)
            items = [TrendingItem(entry.item_id, entry.score,
                                  entry.source if entry.source in ("pinned", "promotion") else "trending")
                     for entry in answer.items]
        else:
            items = await read_trending(self.reads, self.keys, p.n, page)
        self.metrics.up.set(1)
        return TrendingList(category=page, items=items, variant=variant_name,
                            rec_id=self._record(viewer, experiment, variant_name, items))

    def _record(self, user_id: str | None, experiment: str, variant: str, items: Any) -> str:
        """The answer's rec_id; the impression (items, sources) is recorded for the user without waiting."""
        return self.impressions.record(user_id, experiment, variant, [(entry.item_id, entry.source) for entry in items])

