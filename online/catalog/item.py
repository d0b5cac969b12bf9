"""A catalog item: what a shop says about one product, validated in one place.

An :class:`Item` is a msgspec ``Struct``: the HTTP API, ``livereco catalog
load`` and the Redis copy all decode through it, so an item the server accepts
is an item the loader accepts. Errors are :class:`CatalogError` naming the
field (``price``, ``categories[1]``, ``attributes.color``), as
:class:`~online.contract.events.EventError` does for events; ids follow the
events' rules (printable, at most 256 characters).

A category is a path, ``sports/fitness/treadmills``: an item in it is also in
``sports/fitness`` and ``sports`` (:func:`category_ancestors`). Times
(``available_from``, ``available_until``, ``created_at``) are epoch seconds or
ISO 8601 with a time zone, kept as epoch seconds.

Changes are merge patches (RFC 7396, :func:`apply_patch`): a field given
replaces the stored one, ``null`` removes it (back to its default), and
``attributes`` merge key by key (``{"attributes": {"color": null}}`` removes one).

Examples
--------
>>> item = parse_item({"item_id": "sku-1", "title": "Treadmill T1", "categories": ["sports/fitness/treadmills"],
...                    "brand": "acme", "price": 499.0, "attributes": {"foldable": True}})
>>> item.price, item.in_stock, sorted(category_ancestors(item.categories))
(499.0, True, ['sports', 'sports/fitness', 'sports/fitness/treadmills'])
>>> encode_item(item)
b'{"item_id":"sku-1","title":"Treadmill T1","categories":["sports/fitness/treadmills"],"brand":"acme","price":499.0,"attributes":{"foldable":true}}'
>>> decode_item(encode_item(item)) == item
True
>>> apply_patch(item, {"in_stock": False, "price": None, "attributes": {"color": "red"}}).attributes
{'foldable': True, 'color': 'red'}
>>> parse_item({"item_id": "sku-1", "price": -3})
Traceback (most recent call last):
...
online.catalog.item.CatalogError: price: Expected `float` >= 0.0
>>> parse_item({"item_id": "sku-1", "colour": "red"})
Traceback (most recent call last):
...
online.catalog.item.CatalogError: colour: is not a known field (known: attributes, available_from, available_until, brand, categories, created_at, in_stock, item_id, price, tags, title)
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from functools import lru_cache
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from online.contract.events import DEFAULT_LIMITS, unprintable_character, unsafe_character

__all__ = [
    "FIELDS",
    "LIMITS",
    "CatalogError",
    "Item",
    "apply_patch",
    "attribute_text",
    "category_ancestors",
    "decode_item",
    "encode_item",
    "parse_item",
]


class CatalogError(ValueError):
    """An item (or a change to one) failed validation; ``field`` names the offending field.

    >>> str(CatalogError("price", "must be a number"))
    'price: must be a number'
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class _Limits(msgspec.Struct, frozen=True):
    """Bounds that keep one item small (a 1M-item catalog is held by every server)."""

    max_id_length: int = DEFAULT_LIMITS.max_id_length
    max_title_length: int = 512
    max_brand_length: int = 128
    max_categories: int = 16
    max_category_length: int = 256
    max_category_depth: int = 8
    max_tags: int = 32
    max_tag_length: int = 64
    max_attributes: int = 32
    max_attribute_name_length: int = 64
    max_attribute_value_length: int = 256


LIMITS = _Limits()

Text = Annotated[str, Meta(max_length=LIMITS.max_title_length)]
Brand = Annotated[str, Meta(min_length=1, max_length=LIMITS.max_brand_length)]
Tag = Annotated[str, Meta(min_length=1, max_length=LIMITS.max_tag_length)]
Category = Annotated[str, Meta(min_length=1, max_length=LIMITS.max_category_length)]
Price = Annotated[float, Meta(ge=0.0, le=1e12)]
Time = float | datetime
"""Epoch seconds or ISO 8601 with a zone; stored as epoch seconds (a float)."""
Attribute = str | bool | int | float


class Item(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """One catalog item. Only ``item_id`` is required; ``in_stock`` defaults to true.

    Build one with :func:`parse_item` (it names the bad field); the
    constructor checks the same rules through ``__post_init__`` but msgspec's
    type and range checks only run on decoding.
    """

    item_id: Annotated[str, Meta(min_length=1, max_length=LIMITS.max_id_length)]
    title: Text | None = None
    categories: Annotated[tuple[Category, ...], Meta(max_length=LIMITS.max_categories)] = ()
    brand: Brand | None = None
    price: Price | None = None
    in_stock: bool = True
    available_from: Time | None = None
    available_until: Time | None = None
    tags: Annotated[tuple[Tag, ...], Meta(max_length=LIMITS.max_tags)] = ()
    attributes: Annotated[dict[str, Attribute], Meta(max_length=LIMITS.max_attributes)] = {}
    created_at: Time | None = None

    def __post_init__(self) -> None:
        _check_id("item_id", self.item_id)
        for name in ("available_from", "available_until", "created_at"):
            value = getattr(self, name)
            if value is not None:
                msgspec.structs.force_setattr(self, name, _epoch(name, value))
        if (self.available_from is not None and self.available_until is not None
                and not self.available_from < self.available_until):  # type: ignore[operator]
            raise CatalogError("available_until", "must be after available_from")
        if self.price is not None and not math.isfinite(self.price):
            raise CatalogError("price", "must be finite")
        for position, path in enumerate(self.categories):
            _check_category(f"categories[{position}]", path)
        if len(set(self.categories)) != len(self.categories):
            raise CatalogError("categories", "lists a category twice")
        for name, text in (("title", self.title), ("brand", self.brand)):
            if text is not None and (unsafe := unsafe_character(text)) is not None:
                raise CatalogError(name, f"contains {unsafe}")
        for position, tag in enumerate(self.tags):
            _check_id(f"tags[{position}]", tag)
        for key, value in self.attributes.items():
            _check_attribute(key, value)


FIELDS = tuple(Item.__struct_fields__)
_OPTIONAL = {name: default for name, default in zip(FIELDS[-len(Item.__struct_defaults__):],
                                                    Item.__struct_defaults__, strict=True)}
"""Each field but ``item_id`` with the default ``null`` brings it back to."""

_PATH = re.compile(r" - at `\$((?:\.[^.`\[]+|\[[^\]]*\])*)`$")


def _check_id(name: str, text: str) -> None:
    if (unsafe := unprintable_character(text)) is not None:
        raise CatalogError(name, f"contains {unsafe}")


def _check_category(name: str, path: str) -> None:
    _check_id(name, path)
    parts = path.split("/")
    if any(not part.strip() for part in parts):
        raise CatalogError(name, f"{path[:64]!r}: an empty level (a leading, trailing or double '/')")
    if len(parts) > LIMITS.max_category_depth:
        raise CatalogError(name, f"{path[:64]!r} is {len(parts)} levels deep; the limit is {LIMITS.max_category_depth}")


def _check_attribute(key: str, value: Attribute) -> None:
    if not key or len(key) > LIMITS.max_attribute_name_length:
        raise CatalogError("attributes", f"name {key[:40]!r} must be 1-{LIMITS.max_attribute_name_length} characters")
    _check_id("attributes", key)
    where = f"attributes.{key}"
    if isinstance(value, str):
        if len(value) > LIMITS.max_attribute_value_length:
            raise CatalogError(where, f"is {len(value)} characters long; the limit is {LIMITS.max_attribute_value_length}")
        if (unsafe := unsafe_character(value)) is not None:
            raise CatalogError(where, f"contains {unsafe}")
    elif isinstance(value, float) and not math.isfinite(value):
        raise CatalogError(where, "must be finite")


def _epoch(name: str, value: float | datetime) -> float:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise CatalogError(name, f"{value.isoformat()!r} has no time zone (add Z or +00:00)")
        return value.timestamp()
    if not math.isfinite(value) or not 0.0 <= value < 1e11:
        raise CatalogError(name, f"{value} is not epoch seconds")
    return float(value)


def _catalog_error(exc: msgspec.ValidationError) -> CatalogError:
    """msgspec's message (``Expected ... - at `$.price```) as a :class:`CatalogError` naming the field."""
    text, path = str(exc), ""
    if (found := _PATH.search(text)) is not None:
        path, text = found.group(1).lstrip(".").replace("[...]", ""), text[:found.start()]

    def where(name: str) -> str:
        return f"{path}.{name}" if path else name

    if (found := re.match(r"Object contains unknown field `(.*)`$", text)) is not None:
        known = "" if path else f" (known: {', '.join(sorted(FIELDS))})"
        return CatalogError(where(found.group(1)[:64]), f"is not a known field{known}")
    if (found := re.match(r"Object missing required field `(.*)`$", text)) is not None:
        return CatalogError(where(found.group(1)), "is required")
    if (found := re.match(r"([A-Za-z_][\w.\[\]]*): (.*)$", text, re.S)) is not None:  # raised by a __post_init__
        return CatalogError(where(found.group(1)), found.group(2))
    return CatalogError(path or "item", text)


def parse_item(obj: Any, item_id: str | None = None) -> Item:
    """Validate a decoded JSON object into an :class:`Item`; ``item_id`` (from the URL) fills or must match its own.

    >>> parse_item({"title": "Mat"}, item_id="sku-2").item_id
    'sku-2'
    >>> parse_item({"item_id": "a", "categories": ["sports//mats"]})
    Traceback (most recent call last):
    ...
    online.catalog.item.CatalogError: categories[0]: 'sports//mats': an empty level (a leading, trailing or double '/')
    >>> parse_item({"item_id": "a", "attributes": {"size": [1]}})
    Traceback (most recent call last):
    ...
    online.catalog.item.CatalogError: attributes: Expected `bool | int | float | str`, got `array`
    >>> parse_item({"item_id": "b"}, item_id="a")
    Traceback (most recent call last):
    ...
    online.catalog.item.CatalogError: item_id: 'b' differs from the item in the path, 'a'
    """
    if not isinstance(obj, Mapping):
        raise CatalogError("item", f"must be a JSON object, not {type(obj).__name__}")
    if item_id is not None:
        given = obj.get("item_id")
        if given is None:
            obj = {**obj, "item_id": item_id}
        elif given != item_id:
            raise CatalogError("item_id", f"{str(given)[:64]!r} differs from the item in the path, {item_id[:64]!r}")
    try:
        return msgspec.convert(obj, Item)
    except msgspec.ValidationError as exc:
        raise _catalog_error(exc) from None
    except CatalogError:
        raise


def encode_item(item: Item) -> bytes:
    """The item's JSON as Redis stores it (defaults left out, times as epoch seconds)."""
    return msgspec.json.encode(item)


_DECODER = msgspec.json.Decoder(Item)


def decode_item(blob: bytes | str) -> Item:
    """The item stored as ``blob``; :class:`CatalogError` when it is not one."""
    try:
        return _DECODER.decode(blob)
    except msgspec.ValidationError as exc:
        raise _catalog_error(exc) from None
    except msgspec.DecodeError as exc:
        raise CatalogError("item", f"not valid JSON ({exc})") from None


def apply_patch(item: Item, patch: Any) -> Item:
    """``item`` changed by the merge patch ``patch`` (RFC 7396), validated as a whole.

    >>> shoe = parse_item({"item_id": "s", "brand": "acme", "tags": ["sale"], "attributes": {"size": 42, "color": "red"}})
    >>> changed = apply_patch(shoe, {"brand": None, "tags": ["new"], "attributes": {"color": None}})
    >>> changed.brand, changed.tags, changed.attributes
    (None, ('new',), {'size': 42})
    >>> apply_patch(shoe, {"item_id": "t"})
    Traceback (most recent call last):
    ...
    online.catalog.item.CatalogError: item_id: cannot be changed by a patch
    >>> apply_patch(shoe, {"attributes": {"size": None}, "price": "cheap"})
    Traceback (most recent call last):
    ...
    online.catalog.item.CatalogError: price: Expected `float | null`, got `str`
    """
    if not isinstance(patch, Mapping):
        raise CatalogError("patch", f"must be a JSON object, not {type(patch).__name__}")
    merged: dict[str, Any] = msgspec.to_builtins(item)
    for name, value in patch.items():
        if name == "item_id":
            if value != item.item_id:
                raise CatalogError("item_id", "cannot be changed by a patch")
            continue
        if name not in _OPTIONAL:
            raise CatalogError(str(name)[:64], f"is not a known field (known: {', '.join(sorted(FIELDS))})")
        if value is None:
            merged.pop(name, None)
        elif name == "attributes" and isinstance(value, Mapping):
            attributes = dict(merged.get("attributes", {}))
            for key, attribute in value.items():
                if attribute is None:
                    attributes.pop(key, None)
                else:
                    attributes[key] = attribute
            merged["attributes"] = attributes
        else:
            merged[name] = value
    return parse_item(merged)


@lru_cache(maxsize=65536)
def _ancestors(categories: tuple[str, ...]) -> frozenset[str]:
    out: set[str] = set()
    for path in categories:
        parts = path.split("/")
        out.update("/".join(parts[:depth]) for depth in range(1, len(parts) + 1))
    return frozenset(out)


def category_ancestors(categories: Iterable[str]) -> frozenset[str]:
    """Every category an item with ``categories`` is in: each path and each of its ancestors.

    Items with the same categories share one set (cached), so a catalog keeps one per distinct list.

    >>> sorted(category_ancestors(["sports/fitness/treadmills", "sale"]))
    ['sale', 'sports', 'sports/fitness', 'sports/fitness/treadmills']
    """
    return _ancestors(tuple(categories))


def attribute_text(value: Attribute) -> str:
    """An attribute value as a query string spells it: ``true``, ``42`` (a whole float too), ``red``.

    >>> [attribute_text(v) for v in (True, 42, 42.0, 0.5, "red")]
    ['true', '42', '42', '0.5', 'red']
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
