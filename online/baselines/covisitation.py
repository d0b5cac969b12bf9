"""Last-item co-visitation: what followed the user's last item most often, across all users.

>>> from online.contract import Event
>>> covis = LastItemCoVisitation()
>>> for user, item in [("s1", "a"), ("s1", "b"), ("s2", "a"), ("s2", "b"), ("s3", "c"), ("s4", "a")]:
...     covis.learn_one(Event(user, item, "view", 0.0))
>>> covis.recommend("s4", 2)
['b']
"""

from __future__ import annotations

from collections import Counter, defaultdict

from online.contract import Event

__all__ = ["LastItemCoVisitation"]


class LastItemCoVisitation:
    """What followed the user's last item most often, across all sessions ("item-item next click")."""

    def __init__(self) -> None:
        self.following: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.last: dict[str, str] = {}

    def learn_one(self, event: Event) -> None:
        previous = self.last.get(event.user_id)
        if previous is not None:
            self.following[previous][event.item_id] += 1
            self.following[event.item_id][previous] += 0  # known item, even with no successor yet
        self.last[event.user_id] = event.item_id

    def observe_one(self, event: Event) -> None:
        """Follow the session without learning (frozen evaluation)."""
        self.last[event.user_id] = event.item_id

    def recommend(self, user_id: str, n: int) -> list[str]:
        last = self.last.get(user_id)
        if last is None or last not in self.following or n <= 0:
            return []
        return [item for item, count in self.following[last].most_common(n) if count > 0]
