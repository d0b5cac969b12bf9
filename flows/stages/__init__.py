"""The dataflow's steps as plain logic, one module per stage: parse, user history, items, user lists, ranker.

The path of one event (see docs/architecture.md):

1. :mod:`~flows.stages.parse`: a raw stream entry becomes a :class:`ParsedEvent`, or a
   :class:`~flows.writes.DeadLetter` naming the field and the reason. With a catalog,
   :mod:`~flows.stages.catalog` (keyed by item) stamps it with its item's catalog facts.
2. :mod:`~flows.stages.user_history` (keyed by user): drops duplicate ``event_id``\\ s, segments
   sessions, keeps weighted recent items, and sends the item a :class:`Touch` carrying the session's
   previous items (and, within a purchase window, the :class:`~online.purchases.PurchaseWindow`); a
   purchase also sends each earlier purchase of the window a :class:`PurchaseLink`.
3. :mod:`~flows.stages.items` (keyed by item): decayed popularity (trending), bounded co-visitation
   neighbours in both directions (with their categories), what buyers of the item bought next,
   optionally its last sessions, and a :class:`NeighbourReply` back to the user with the item's
   current neighbours.
4. :mod:`~flows.stages.user_lists` (keyed by user): caches the neighbour lists of the user's recent
   items, merges them into the fresh personal candidates, and hands them to the sink; each positive
   event becomes an :class:`Outcome`.
5. :mod:`~flows.stages.ranker` (keyed by shard of users): a replica of trending and an online ranker
   that scores each outcome against the list the server would have served, learns, and publishes
   the ranker's weights.

The messages between stages are in :mod:`~flows.stages.messages`, the base every stage logic
shares in :mod:`~flows.stages.common`. All state lives in these per-key logics, so Bytewax
partitions it across workers and processes and snapshots it for recovery.

Recovery snapshots written before the split name these classes ``flows.stages.<Class>``: the
re-exports below keep those paths importable, so older stores still resume.
"""

from __future__ import annotations

from flows.stages.catalog import CatalogLogic
from flows.stages.items import ItemLogic, ItemState
from flows.stages.messages import Link, NeighbourReply, NewItem, Outcome, PersonalPool, PurchaseLink, Touch
from flows.stages.parse import ParsedEvent, parse_entries, parse_entry
from flows.stages.ranker import RankerLogic, RankerState
from flows.stages.user_history import UserHistoryLogic, UserHistoryState
from flows.stages.user_lists import UserListLogic, UserListState

__all__ = [
    "CatalogLogic",
    "ItemLogic",
    "ItemState",
    "Link",
    "NeighbourReply",
    "NewItem",
    "Outcome",
    "ParsedEvent",
    "PersonalPool",
    "PurchaseLink",
    "RankerLogic",
    "RankerState",
    "Touch",
    "UserHistoryLogic",
    "UserHistoryState",
    "UserListLogic",
    "UserListState",
    "parse_entries",
    "parse_entry",
]
