"""The Structs of the experiment and item-stats endpoints (``PUT/GET /v1/experiments/{name}``,
``GET /v1/items/{item_id}/stats``): they decode requests, encode answers and make the OpenAPI schemas."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta, Struct

from online.experiments import MAX_VARIANTS
from serving.api import VARIANT_PATTERN, PathId

__all__ = ["ExperimentBody", "ExperimentDoc", "ExperimentPath", "ItemStats", "VariantBody"]

Name = Annotated[str, Meta(min_length=1, max_length=40, pattern=VARIANT_PATTERN)]


class ExperimentPath(Struct, frozen=True, kw_only=True):
    name: Annotated[Name, Meta(description="The experiment's name: 1-40 of a-z, 0-9, _ and -.")]


class VariantBody(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One variant: its share of users and how it makes lists (online.experiments.VariantConfig)."""

    name: Name
    share: Annotated[float, Meta(ge=0.0, le=1.0, description="Share of users (the variants' shares add up to 1).")]
    control: Annotated[bool, Meta(description="Trending only: the baseline without livereco.")] = False
    ranker: Annotated[bool, Meta(description="The learned blend; false: personal then trending (fixed).")] = True
    exploration: Annotated[bool, Meta(description="The exploration slot for new items.")] = True
    rules: Annotated[bool, Meta(description="The shop's merchandising rules.")] = True
    diversity_cap: Annotated[int, Meta(ge=1, le=100, description="At most this many items of one category in the"
                                                                 " diversity window (null: the server's default).")
                             ] | None = None


class ExperimentBody(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    variants: Annotated[list[VariantBody], Meta(min_length=1, max_length=MAX_VARIANTS)]
    active: Annotated[bool, Meta(description="Whether it is running (the first active experiment by name decides"
                                             " how lists are made).")] = True


class ExperimentDoc(Struct, kw_only=True):
    name: str
    active: bool
    variants: list[VariantBody]


class ItemStats(Struct, kw_only=True):
    """An item's attributed counters, summed since they began (the flow writes them)."""

    item_id: str
    impressions: int
    clicks: int
    ctr: Annotated[float, Meta(description="clicks / impressions")] | None
    carts: int
    conversions: int
    revenue: float


class ItemStatsRequest(Struct, frozen=True, kw_only=True):
    item_id: PathId
