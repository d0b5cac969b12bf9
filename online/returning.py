"""How often a user goes back to their own recent items: the weight of recommending those back.

Whether a user's own recent items belong in their list depends on the shop:
in a session of clicks a quarter of next clicks repeat the item just viewed
(RSC15), while a film is rated once. One fixed ``LIVERECO_RECENT_WEIGHT``
cannot serve both (on MovieTweetings' validation part the default 3 costs
HR@10 0.0195 of 0.1432 against 0), so each user's weight is learned from what
they do: every positive event after their first is a chance to return, and it
is a return when its item is among the user's recent items. The user's rate,
a Beta estimate pulled towards :data:`PRIOR_RATE` by :data:`PRIOR_CHANCES`
pseudo-chances (a new user is treated as a shopper who returns as often as
RSC15's do), scales ``LIVERECO_RECENT_WEIGHT`` (at most 1×); once it falls
below :data:`MIN_RATE` (after 10 chances without a return) the user is treated
as with a weight of 0: their recent items are not candidates and what they
consume is never recommended back. Counts decay by :data:`DECAY` per chance,
so the state is two floats and a user whose habits change is followed.

>>> rate = ReturnRate()
>>> rate.weight(3.0)                   # a new user: the configured weight
3.0
>>> for _ in range(4):
...     rate.learn_one(returned=False)  # four films, none rated twice
>>> round(rate.weight(3.0), 2)
1.52
>>> for _ in range(6):
...     rate.learn_one(returned=False)
>>> rate.weight(3.0)                   # ten: never recommended back
0.0
>>> shopper = ReturnRate()
>>> for returned in (True, False, True, False):
...     shopper.learn_one(returned)
>>> shopper.weight(3.0)                 # returns more often than the prior: capped at the setting
3.0
"""

from __future__ import annotations

from typing import Any

__all__ = ["DECAY", "MIN_RATE", "PRIOR_CHANCES", "PRIOR_RATE", "ReturnRate"]

PRIOR_RATE = 0.25
"""A new user's assumed return rate: a quarter of next clicks in RSC15 repeat the current item."""
PRIOR_CHANCES = 4.0
"""How many chances the prior counts as (chosen on the validation parts of RSC15 and MovieTweetings)."""
MIN_RATE = 0.08
"""Below this estimated rate, recent items are not recommended back at all (weight 0)."""
DECAY = 0.98
"""Per chance: a user's last ~50 chances count most."""


class ReturnRate:
    """A user's decayed count of chances to return to a recent item, and of returns."""

    __slots__ = ("chances", "returns")

    def __init__(self, chances: float = 0.0, returns: float = 0.0) -> None:
        self.chances = chances
        self.returns = returns

    def learn_one(self, returned: bool) -> None:
        """One positive event after the user's first: ``returned`` if its item was among their recent items."""
        self.chances = self.chances * DECAY + 1.0
        self.returns = self.returns * DECAY + (1.0 if returned else 0.0)

    def rate(self) -> float:
        """The estimated share of the user's next positive events that return to a recent item."""
        return (self.returns + PRIOR_CHANCES * PRIOR_RATE) / (self.chances + PRIOR_CHANCES)

    def weight(self, recent_weight: float) -> float:
        """``recent_weight`` scaled by the user's rate relative to :data:`PRIOR_RATE` (at most 1×); 0 below
        :data:`MIN_RATE`."""
        rate = self.rate()
        if recent_weight <= 0.0 or rate < MIN_RATE:
            return 0.0
        return recent_weight * min(1.0, rate / PRIOR_RATE)

    def __reduce__(self) -> tuple[Any, ...]:
        return (ReturnRate, (self.chances, self.returns))
