"""Merchandising rules: one JSON document in Redis, versioned, applied to every list in a fixed order.

The order (:func:`online.catalog.assemble.assemble` applies it):

1. ``block``: the items, categories (and everything below them), brands or
   tags named never appear; blocking is a filter, refilled like one.
2. ``boost`` / ``bury``: each list item's *rank score*, ``1 / (1 + place)`` in
   the filtered, blended order, is multiplied by the factor of every rule that
   matches it (items, categories, brands, tags; ``bury`` factors are below 1),
   and the list is sorted again (ties keep their order). A rank score, not the
   ranker's score: blended scores may be negative and trending padding has its
   own scale, whereas ×2 always means "about twice as high up".
3. ``new_arrivals``: items created (``created_at``) less than ``days`` ago get
   the ``factor`` the same way (after the boosts: both multiply).
4. ``pin``: the item goes to ``position`` (1-based), if it passes the
   request's filters; with ``categories``, only on those categories' pages
   (the request's ``category=`` is one of them or below one).
5. ``promotion``: at least ``slots`` of the first ``of`` places (default: the
   whole list) hold items matching its ``filter``; missing ones are the best
   matching items from lower down, placed evenly over the places not pinned.

Every rule may carry ``start`` / ``end`` (epoch seconds or ISO 8601): outside
that window it does nothing. Pinned and promoted items keep their places
through the diversity cap (:mod:`online.catalog.diversity`), which comes last.

Examples
--------
>>> rules = parse_rules({"rules": [
...     {"kind": "block", "brands": ["shady"]},
...     {"kind": "boost", "factor": 2.0, "categories": ["fitness/mats"], "start": "2024-06-01T00:00:00Z"},
...     {"kind": "pin", "item": "t1", "position": 1, "categories": ["fitness"]},
...     {"kind": "promotion", "name": "summer", "slots": 1, "of": 5, "filter": {"tags": ["summer"]}}]})
>>> [rule.kind for rule in rules.rules], rules.rules[1].start
(['block', 'boost', 'pin', 'promotion'], 1717200000.0)
>>> parse_rules({"rules": [{"kind": "bury", "factor": 3, "items": ["a"]}]})
Traceback (most recent call last):
...
online.catalog.item.CatalogError: rules[0].factor: a bury factor is between 0 and 1
>>> parse_rules({"rules": [{"kind": "shout"}]})
Traceback (most recent call last):
...
online.catalog.item.CatalogError: rules[0].kind: Invalid value 'shout'
"""

from __future__ import annotations

from collections.abc import Generator
from datetime import datetime
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from online.catalog.item import CatalogError, Time, _catalog_error, _epoch
from online.catalog.protocol import Command
from online.catalog.snapshot import CatalogSnapshot
from online.contract.keys import RedisKeys

__all__ = ["Block", "Boost", "Bury", "NewArrivals", "Pin", "Promotion", "PromotionFilter", "Rule", "Rules",
           "RulesCommands", "encode_rules", "parse_rules"]

Ids = Annotated[tuple[Annotated[str, Meta(min_length=1, max_length=256)], ...], Meta(max_length=10_000)]
Factor = Annotated[float, Meta(gt=0.0, le=1000.0)]


class _Rule(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True, tag_field="kind"):
    start: Time | None = None
    end: Time | None = None

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            value = getattr(self, name)
            if isinstance(value, float | int | datetime):
                msgspec.structs.force_setattr(self, name, _epoch(name, value))

    @property
    def kind(self) -> str:
        """The rule's kind, as the document spells it (``block``, ``boost``, ...)."""
        return str(type(self).__struct_config__.tag)

    def active(self, now: float) -> bool:
        """Whether ``now`` is within the rule's window."""
        return (self.start is None or self.start <= now) and (self.end is None or now < self.end)  # type: ignore[operator]


def _selects(selector: _SelectorRule | PromotionFilter, snapshot: CatalogSnapshot, item: str, row: int) -> bool:
    """Whether ``item`` (at ``row`` of ``snapshot``, -1: not in the catalog) is one ``selector`` names."""
    if item in selector.items:
        return True
    if row < 0:
        return False
    if selector.categories and not snapshot.ancestors(row).isdisjoint(selector.categories):
        return True
    if selector.brands and snapshot.brand_of(row) in selector.brands:
        return True
    return bool(selector.tags) and not snapshot.tags(row).isdisjoint(selector.tags)


class _SelectorRule(_Rule, frozen=True):
    """A rule on the items named, or in the categories (and below), of the brands or with the tags named."""

    items: Ids = ()
    categories: Ids = ()
    brands: Ids = ()
    tags: Ids = ()

    def matches(self, snapshot: CatalogSnapshot, item: str, row: int) -> bool:
        return _selects(self, snapshot, item, row)


class Block(_SelectorRule, tag="block", frozen=True):
    """Never show the items selected."""


class Boost(_SelectorRule, tag="boost", frozen=True):
    """Multiply the rank score of the items selected by ``factor``."""

    factor: Factor = 2.0


class Bury(_SelectorRule, tag="bury", frozen=True):
    """Multiply the rank score of the items selected by ``factor`` (below 1)."""

    factor: Factor = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.factor >= 1.0:
            raise CatalogError("factor", "a bury factor is between 0 and 1")


class NewArrivals(_Rule, tag="new_arrivals", frozen=True):
    """Multiply the rank score of items created less than ``days`` ago by ``factor``."""

    days: Annotated[float, Meta(gt=0.0, le=3650.0)] = 14.0
    factor: Factor = 1.5

    @property
    def max_age_s(self) -> float:
        """``days`` in seconds: an item is new while ``0 <= now - created_at < max_age_s``."""
        return self.days * 86_400.0


class Pin(_Rule, tag="pin", frozen=True):
    """Put ``item`` at ``position`` (1-based); with ``categories``, only on those categories' pages."""

    item: Annotated[str, Meta(min_length=1, max_length=256)] = ""
    position: Annotated[int, Meta(ge=1, le=1000)] = 1
    categories: Ids = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.item:
            raise CatalogError("item", "is required")

    def on_page(self, page_categories: tuple[str, ...]) -> bool:
        """Whether the pin applies to a request filtered to ``page_categories`` (none: the pin needs none)."""
        if not self.categories:
            return True
        return any(page == category or page.startswith(category + "/")
                   for page in page_categories for category in self.categories)


class PromotionFilter(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """Which items a promotion promotes: items, categories (and below), brands, tags, and an optional price range."""

    items: Ids = ()
    categories: Ids = ()
    brands: Ids = ()
    tags: Ids = ()
    min_price: Annotated[float, Meta(ge=0.0)] | None = None
    max_price: Annotated[float, Meta(ge=0.0)] | None = None

    def matches(self, snapshot: CatalogSnapshot, item: str, row: int) -> bool:
        selects = bool(self.items or self.categories or self.brands or self.tags)
        if selects and not _selects(self, snapshot, item, row):
            return False
        if self.min_price is None and self.max_price is None:
            return selects
        low = 0.0 if self.min_price is None else self.min_price
        high = float("inf") if self.max_price is None else self.max_price
        return row >= 0 and snapshot.price_between(row, low, high)


class Promotion(_Rule, tag="promotion", frozen=True):
    """At least ``slots`` of the first ``of`` places (0: the whole list) go to items matching ``filter``."""

    name: Annotated[str, Meta(min_length=1, max_length=128)] = "promotion"
    slots: Annotated[int, Meta(ge=1, le=100)] = 1
    of: Annotated[int, Meta(ge=0, le=1000)] = 0
    filter: PromotionFilter = PromotionFilter()


Rule = Block | Boost | Bury | NewArrivals | Pin | Promotion


class Rules(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """The rules document; ``version`` is set by the store (each write raises it)."""

    rules: Annotated[tuple[Rule, ...], Meta(max_length=1000)] = ()
    version: int = 0

    def active(self, now: float) -> list[Rule]:
        """The rules in force at ``now``, in document order."""
        return [rule for rule in self.rules if rule.active(now)]


def parse_rules(obj: Any) -> Rules:
    """Validate a decoded JSON document into :class:`Rules`; :class:`CatalogError` naming the bad field."""
    try:
        return msgspec.convert(obj, Rules)
    except msgspec.ValidationError as exc:
        raise _catalog_error(exc) from None


def encode_rules(rules: Rules) -> bytes:
    """The document as stored (without its version, which the store keeps beside it)."""
    return msgspec.json.encode(msgspec.structs.replace(rules, version=0))


_PUT_SCRIPT = "redis.call('HSET', KEYS[1], 'doc', ARGV[1]) return redis.call('HINCRBY', KEYS[1], 'version', 1)"
"""The document and its version change together (rules change rarely: EVAL, not EVALSHA)."""


class RulesCommands:
    """Storing and reading the rules (a hash: ``version`` counter and ``doc``), as :data:`~online.catalog.protocol.Steps`.

    Servers poll :meth:`version` (one tiny read) and :meth:`get` the document when it moved.

    >>> commands = RulesCommands(RedisKeys("lr"))
    >>> steps = commands.get()
    >>> next(steps)
    [('HMGET', 'lr:{catalog}:rules', 'version', 'doc')]
    >>> try:
    ...     steps.send([[b"3", b'{"rules":[{"kind":"block","items":["x"]}]}']])
    ... except StopIteration as done:
    ...     print(done.value.version, done.value.rules[0])
    3 Block(start=None, end=None, items=('x',), categories=(), brands=(), tags=())
    """

    def __init__(self, keys: RedisKeys) -> None:
        self.key = keys.catalog_rules()

    def put(self, rules: Rules) -> Generator[list[Command], list[Any], int]:
        """Replace the document; returns its new version."""
        (version,) = yield [("EVAL", _PUT_SCRIPT, 1, self.key, encode_rules(rules))]
        if isinstance(version, Exception):
            raise version
        return int(version)

    def version(self) -> Generator[list[Command], list[Any], int]:
        (raw,) = yield [("HGET", self.key, "version")]
        return int(raw or 0)

    def get(self) -> Generator[list[Command], list[Any], Rules]:
        """The stored rules (none stored: an empty document, version 0)."""
        ((version, doc),) = yield [("HMGET", self.key, "version", "doc")]
        rules = parse_rules(msgspec.json.decode(doc)) if doc else Rules()
        return msgspec.structs.replace(rules, version=int(version or 0))

