"""A user's decayed affinity to catalog attributes (categories), in bounded memory.

Each positive event adds its interest weight to the event's category, decayed
in event time (:mod:`online.forward_decay`), so last week's hobby fades behind
today's. At most ``capacity`` categories are kept; a new one replaces the
weakest and inherits its score (the Space-Saving rule), so a stream of
one-off categories cannot push out a lasting interest.

Examples
--------
>>> affinity = CategoryAffinity(half_life_s=86400.0, capacity=2)
>>> affinity.learn_one("shoes", 1.0, ts=0.0); affinity.learn_one("shoes", 1.0, ts=10.0)
>>> affinity.learn_one("tv", 1.0, ts=20.0)
>>> [(category, round(score, 2)) for category, score in affinity.top(5)]
[('shoes', 1.0), ('tv', 0.5)]
>>> affinity.learn_one("books", 1.0, ts=30.0)          # full: replaces tv, the weakest
>>> [category for category, _ in affinity.top(5)]
['books', 'shoes']
"""

from __future__ import annotations

from online.covisitation import CoVisitationNeighbours

__all__ = ["CategoryAffinity"]


class CategoryAffinity(CoVisitationNeighbours):
    """Forward-decayed interest per category, at most ``capacity`` categories.

    The same bounded, forward-decayed Space-Saving scores as an item's
    co-visitation neighbours, keyed by category instead of by item.
    """

    __slots__ = ()

    def __init__(self, half_life_s: float = 7 * 86400.0, capacity: int = 16):
        super().__init__(capacity, half_life_s)
