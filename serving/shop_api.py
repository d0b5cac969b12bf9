"""The shop endpoints' types: catalog items, rules, re-ranking and user attributes, as msgspec ``Struct``\\ s.

As :mod:`serving.api`: the one definition of each parameter, body and answer,
from which the OpenAPI document is generated. The item body is derived from
:class:`online.catalog.item.Item` itself (:func:`item_body`, :func:`item_patch`),
so the document cannot drift from what the catalog accepts; what no static
schema says (a category path has no empty level, ``available_until`` after
``available_from``, times are epoch seconds from 1970 to 5138) is checked by
:func:`online.catalog.item.parse_item` and answered 422 naming the field.

>>> [field.name for field in msgspec.structs.fields(item_patch())][:3]
['title', 'categories', 'brand']
>>> msgspec.convert({"items": ["a", "b"]}, RankBody).items
['a', 'b']
"""

from __future__ import annotations

import functools
from typing import Annotated, Any, Literal, get_type_hints

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from online.catalog.item import FIELDS, Item
from serving.api import PathId

__all__ = [
    "ATTRIBUTE_NAME_PATTERN", "MAX_BULK_BYTES", "MAX_BULK_ITEMS", "MAX_RANK_ITEMS", "MAX_USER_ATTRIBUTES",
    "ItemDeleted", "ItemPath", "ItemRefusal", "ItemsWritten", "RankBody", "RankedItem", "RankedList",
    "UserAttributes", "UserAttributesBody", "UserPath", "item_body", "item_patch",
]

MAX_RANK_ITEMS = 500
"""The most items one ``POST /v1/users/{user_id}/rank`` re-ranks."""
MAX_BULK_ITEMS = 10_000
"""The most items one bulk ``POST /v1/items`` holds."""
MAX_BULK_BYTES = 16 * 1024 * 1024
"""The largest bulk ``POST /v1/items`` body (other bodies: ``LIVERECO_MAX_BODY_BYTES``)."""
MAX_USER_ATTRIBUTES = 16
ATTRIBUTE_NAME_PATTERN = "^[^\\x00-\\x1f\\x7f=,{}]+$"
"""A user attribute's name: no control characters, and not ``=``, ``,`` or braces (it names a Redis key)."""
_VALUE_PATTERN = "^[^\\x00-\\x1f\\x7f{}]+$"


class ItemPath(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    item_id: PathId


class UserPath(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    user_id: PathId


@functools.cache
def item_body() -> type[Struct]:
    """``PUT /v1/items/{item_id}``'s body: an :class:`~online.catalog.item.Item` whose ``item_id`` may be left out
    (the path names it; given, it must be the same)."""
    hints = get_type_hints(Item, include_extras=True)
    defaults = dict(zip(FIELDS[-len(Item.__struct_defaults__):], Item.__struct_defaults__, strict=True))
    id_type = hints.pop("item_id")
    fields: list[Any] = [("item_id", Annotated[id_type | UnsetType | None, Meta(
        description="Optional (or null): the path's item_id; another one is a 422.")], UNSET)]
    fields += [(name, hints[name], defaults[name]) for name in FIELDS if name != "item_id"]
    return msgspec.defstruct("ItemBody", fields, kw_only=True, forbid_unknown_fields=True, omit_defaults=True)


@functools.cache
def item_patch() -> type[Struct]:
    """``PATCH /v1/items/{item_id}``'s body, a merge patch (RFC 7396): any of the item's fields but ``item_id``;
    ``null`` removes one (back to its default); ``attributes`` merge key by key (a ``null`` value removes one)."""
    hints = get_type_hints(Item, include_extras=True)
    nullable_attributes = Annotated[dict[str, Any], Meta(max_length=64, description="Merged key by key; null removes.")]
    fields: list[Any] = [(name, (nullable_attributes if name == "attributes" else hints[name]) | None | UnsetType, UNSET)
                         for name in FIELDS if name != "item_id"]
    return msgspec.defstruct("ItemPatch", fields, kw_only=True, forbid_unknown_fields=True, omit_defaults=True)


class ItemRefusal(Struct, frozen=True, kw_only=True):
    index: Annotated[int, Meta(description="The item's position in the array (0-based), or its NDJSON line (1-based).")]
    field: str
    message: str


class ItemsWritten(Struct, kw_only=True):
    written: Annotated[int, Meta(ge=0, description="Items created or changed.")]
    unchanged: Annotated[int, Meta(ge=0, description="Items already stored exactly so.")]
    rejected: Annotated[int, Meta(ge=0)]
    errors: Annotated[list[ItemRefusal], Meta(description="Every rejected item; nothing of it was written.")]


class ItemDeleted(Struct, kw_only=True):
    item_id: str
    deleted: Literal[True] = True


class RankBody(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    items: Annotated[list[Annotated[str, Meta(min_length=1, max_length=256)]], Meta(
        min_length=1, max_length=MAX_RANK_ITEMS, description=f"The items to order (at most {MAX_RANK_ITEMS}).")]


class RankedItem(Struct, frozen=True):
    item_id: str
    score: Annotated[float, Meta(description="The ranker's score for this user (comparable within one answer).")] | None
    source: Annotated[Literal["personal", "trending", "unknown"], Meta(
        description="What the score comes from; unknown: neither the user's candidates nor trending hold the"
                    " item (its score is null, and it keeps its place among the unknown ones at the end).")]


class RankedList(Struct, kw_only=True):
    user_id: str
    items: list[RankedItem]
    rec_id: Annotated[str, Meta(description="This answer's id (an event's rec_id attributes it to this order).")]
    variant: Annotated[str, Meta(description="The experiment variant in force for the user.")]


AttributeName = Annotated[str, Meta(min_length=1, max_length=64, pattern=ATTRIBUTE_NAME_PATTERN)]
AttributeValue = Annotated[str, Meta(min_length=1, max_length=256, pattern=_VALUE_PATTERN)]


class UserAttributesBody(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    attributes: Annotated[dict[AttributeName, AttributeValue], Meta(
        max_length=MAX_USER_ATTRIBUTES, description="e.g. country, segment; replaces what was stored. Those named by"
                                                    " LIVERECO_SEGMENT_ATTRIBUTES choose a new user's trending.")]


class UserAttributes(Struct, kw_only=True):
    user_id: str
    attributes: dict[str, str]
    ttl_s: Annotated[int, Meta(description="Seconds the attributes stay (LIVERECO_USER_TTL_S).")]
