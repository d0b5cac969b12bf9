"""The catalog stage (keyed by item): :class:`CatalogLogic`.

It keeps what the catalog says about each item (:class:`~online.item_facts.ItemFacts`:
its kind, the categories it trends in, brand and price band), fed by the
catalog's change stream (:mod:`flows.catalog_source`), and stamps every event
of the item with it on the event's way to the user-history stage, so the
stages after it know an item's categories without relying on each event's
``context`` (which stays the fallback for items the catalog does not know).
A change that creates an item (a change of the live stream, not a bootstrap)
also goes to every ranker replica as a :class:`~flows.stages.messages.NewItem`:
the item is an exploration candidate before its first event.

Only catalog items keep state here: an event of an item the catalog does not
know passes through and its key is discarded, so a log without a catalog
costs no memory in this stage. Catalog items are never evicted (they are the
catalog, not activity).

>>> from online.catalog.item import parse_item
>>> from online.catalog.protocol import CatalogChange
>>> from online.contract import Event
>>> logic = CatalogLogic(None, recoverable=False)
>>> out, keep = logic.on_batch([CatalogChange(1, "t1", parse_item({"item_id": "t1", "categories": ["fit/treadmills"]}), 0),
...                             ParsedEvent(Event("ann", "t1", "view", 1.7e9), "1-0", 1)])
>>> out[0][0], out[0][1].facts.kind, keep is StatefulBatchLogic.RETAIN   # bootstrap change: no news
('ann', 'fit/treadmills', True)
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from bytewax.operators import StatefulBatchLogic
from mypy_extensions import mypyc_attr
from typing_extensions import override

from flows.stages.common import _load, _StageLogic
from flows.stages.control import ParsedControl
from flows.stages.messages import NewItem
from flows.stages.parse import ParsedEvent
from online.catalog.protocol import CatalogChange
from online.item_facts import ItemFacts, facts_of

__all__ = ["CatalogLogic"]


@mypyc_attr(native_class=False)
class CatalogLogic(_StageLogic[ParsedEvent | ParsedControl | CatalogChange, Any, "ItemFacts | None"]):
    """Item-keyed: the item's catalog facts; events leave keyed by their user, carrying them."""

    stage = "catalog"
    news_horizon_s = 86400.0
    """A creation older than this (wall clock) when the flow reads it is no news (a flow catching up)."""

    def __init__(self, resume: bytes | None, recoverable: bool = True):
        super().__init__(recoverable)  # catalog items stay: never evicted
        self.state: ItemFacts | None = _load(resume)
        self.known = resume is not None
        """Whether the catalog holds the item (its facts may still be ``None``: nothing the models use)."""

    @override
    def process(self, values: list[ParsedEvent | ParsedControl | CatalogChange]) -> tuple[Iterable[Any], bool]:
        out: list[Any] = []
        for value in values:
            if isinstance(value, ParsedEvent):
                value.facts = self.state
                out.append((value.event.user_id, value))
                continue
            if isinstance(value, ParsedControl):  # an erase or a merge: on to its user, the way events go
                out.append((value.control.user_id, value))
                continue
            item = value.item
            if item is None:
                self.state, self.known = None, False
                continue
            facts = facts_of(item)
            if not self.known and value.at_ms and time.time() * 1000.0 - value.at_ms < self.news_horizon_s * 1000.0:
                out.append(NewItem(item.item_id, facts.kind if facts is not None else None, value.at_ms / 1000.0))
            self.state, self.known = facts, True
        return out, StatefulBatchLogic.RETAIN if self.known else StatefulBatchLogic.DISCARD
