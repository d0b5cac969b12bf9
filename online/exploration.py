"""Bounded exploration: a new item earns one slot of the final list by Thompson sampling.

A new item is invisible to the other generators: it has no co-visitation
neighbours and no popularity, so no list shows it, so nobody clicks it, so it
never gets either. :class:`ExplorationPool` breaks the circle with a bounded
bandit. It keeps the items that are new (seen at most ``new_events`` times),
at most ``capacity`` of them (the oldest makes way), each with a Beta
posterior over its *success rate when shown*: success when the user's next
positive event was that item, failure when they were shown it and went
elsewhere. The slot's *incumbent*, whatever the ordinary list puts at that
position, has its own posterior (how often users go to the item at that
position), so a candidate is shown only while a draw says it may beat what it
displaces. The prior of a new candidate is what new items have earned so far:
one success in as many failures as the slot has shown new items per success
(``Beta(1, 1 + prior_failures)``; uniform at first), counted over the last
``memory`` outcomes or so (the counts decay by ``1 - 1/memory`` per outcome).
Where new items are never taken, as in a log replayed without them,
candidates soon start too low to beat the incumbent and the slot mostly
stays with it, reopening as that memory fades; where they are, it keeps
exploring: exploration spends slots in proportion to how often it pays.

An item the catalog has just created (a launch: :attr:`Arm.launched`) joins
before its first event, with a uniform prior instead of the learned one: the
shop says it is new, so it is shown at once and judged on its own shows.

An item leaves when it has its own signal (more than ``new_events`` events;
for one user, it also gives way as soon as it is among their personal or
trending candidates, see :func:`online.blend.explore_slot`) or when its
posterior says it is poor: its mean plus two standard deviations below the
incumbent's mean. Items that left are remembered (a bounded set) so that they
do not come back.

Draws are made in rounds: every ``redraw_every`` outcomes one Thompson sample
per candidate (and one for the incumbent), from a seeded RNG, orders the
candidates that beat the incumbent's sample (:attr:`ExplorationPool.order`).
Every list until the next round gives the slot to the first of that order the
user may see. A round costs one draw per candidate, so a list costs a few
membership tests rather than a few hundred Beta draws; and the order is all
the server needs, so it fills the slot exactly as the flow's ranker stage
(which learns here and publishes the order with the blend weights) does.

Examples
--------
>>> pool = ExplorationPool(capacity=3, new_events=2, redraw_every=1, seed=1)
>>> for item in ("a", "b", "c", "d"):
...     pool.observe(item, events=1)
>>> list(pool.arms)                      # bounded: the oldest made way
['b', 'c', 'd']
>>> pool.observe("b", events=3)          # b has its own signal now
>>> pool.observe("b", events=1)          # and does not come back
>>> list(pool.arms)
['c', 'd']
>>> pool.draw()
>>> for step in range(400):              # users shown c go to it, d nobody; the incumbent x: three in ten
...     shown = pool.order[0] if pool.order else None
...     went = "c" if shown == "c" else "x" if step % 10 < 3 else "elsewhere"
...     pool.learn_one(shown, incumbent="x", positive=went)
>>> list(pool.arms), pool.order, pool.arms["c"].successes > 300
(['c'], ['c'], True)
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

__all__ = ["Arm", "ExplorationPool"]


@dataclass(slots=True)
class Arm:
    """One new item's record: how often it was shown in the slot and how often the user went to it."""

    category: str | None = None
    shows: int = 0
    successes: int = 0
    launched: bool = False
    """Admitted because the catalog created it (not from its first events): its prior is uniform, not the
    one new items of the log earned, so a launch gets shown at once and is judged on its own shows."""


@dataclass
class ExplorationPool:
    """New items competing for one slot of the final list (see the module docstring)."""

    capacity: int = 200
    new_events: int = 5
    redraw_every: int = 16
    seed: int = 0
    memory: int = 10_000
    arms: dict[str, Arm] = field(default_factory=dict)
    """The candidates, oldest first."""
    order: list[str] = field(default_factory=list)
    """The candidates whose last draw beat the incumbent's, best draw first: the slot's preference."""
    incumbent_shows: int = 0
    incumbent_hits: int = 0
    """Outcomes with an item at the slot's position in the ordinary list, and those that went to it."""
    shows: float = 0.0
    successes: float = 0.0
    """Every candidate's shows and successes (those that left too), decayed: the prior of the next."""
    version: int = 0
    """Bumped whenever :attr:`order` changes (the flow then publishes it)."""
    since_draw: int = 0
    retired: dict[str, None] = field(default_factory=dict)
    """Items that left, oldest first (at most ``4 * capacity``): they do not come back."""
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def observe(self, item: str, events: int, category: str | None = None, launched: bool = False) -> None:
        """``item`` has had ``events`` events (in event time): admit it while new, let it go once it is not.

        ``launched``: the catalog just created it (see :attr:`Arm.launched`).
        """
        arm = self.arms.get(item)
        if arm is not None:
            if events > self.new_events:
                self._leave(item)
            elif category is not None:
                arm.category = category
            return
        if events > self.new_events or item in self.retired:
            return
        if len(self.arms) >= self.capacity:
            self._leave(next(iter(self.arms)))
        self.arms[item] = Arm(category, launched=launched)

    def learn_one(self, shown: str | None, incumbent: str | None, positive: str) -> None:
        """The user went to ``positive`` from a list with ``shown`` in the slot and ``incumbent`` at its position.

        ``shown`` is ``None`` when the slot was not filled; ``incumbent`` is the
        item the ordinary list has at the slot's position (``None``: the list is shorter).
        """
        if incumbent is not None:
            self.incumbent_shows += 1
            if incumbent == positive:
                self.incumbent_hits += 1
        keep = 1.0 - 1.0 / self.memory
        self.shows *= keep
        self.successes *= keep
        if shown is not None:
            arm = self.arms.get(shown)
            if arm is not None:
                arm.shows += 1
                self.shows += 1
                if shown == positive:
                    arm.successes += 1
                    self.successes += 1
                elif self._poor(arm):
                    self._leave(shown)
        self.since_draw += 1
        if self.since_draw >= self.redraw_every:
            self.draw()

    def draw(self) -> None:
        """A new round: one Thompson sample per candidate; :attr:`order` keeps those above the incumbent's."""
        self.since_draw = 0
        rng = self.rng
        bar = rng.betavariate(1 + self.incumbent_hits, 1 + self.incumbent_shows - self.incumbent_hits)
        drawn: list[tuple[float, str]] = []
        prior = 1.0 + self.prior_failures
        for item, arm in self.arms.items():
            failures = (1.0 if arm.launched else prior) + arm.shows - arm.successes
            if arm.successes:
                sample = rng.betavariate(1 + arm.successes, failures)
            else:  # Beta(1, b) by inversion: the usual case, and 15 times cheaper than betavariate
                sample = 1.0 - math.pow(rng.random(), 1.0 / failures)
            if sample > bar:
                drawn.append((sample, item))
        drawn.sort(reverse=True)
        order = [item for _, item in drawn]
        if order != self.order:
            self.order = order
            self.version += 1

    def published(self) -> list[tuple[str, str | None]]:
        """:attr:`order` with each item's category, as the server reads it."""
        arms = self.arms
        return [(item, arms[item].category) for item in self.order]

    @property
    def prior_failures(self) -> float:
        """Failures per success of the new items shown so far: a candidate starts with one success in as many."""
        return (self.shows - self.successes) / (self.successes + 1)

    def _poor(self, arm: Arm) -> bool:
        """Whether ``arm``'s mean plus two standard deviations is below the incumbent's mean."""
        a, b = 1 + arm.successes, 1 + (0.0 if arm.launched else self.prior_failures) + arm.shows - arm.successes
        spread = 2.0 * math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))
        incumbent = (1 + self.incumbent_hits) / (2 + self.incumbent_shows)
        return a / (a + b) + spread < incumbent

    def _leave(self, item: str) -> None:
        del self.arms[item]
        retired = self.retired
        retired[item] = None
        if len(retired) > 4 * self.capacity:
            del retired[next(iter(retired))]
        if item in self.order:
            self.order.remove(item)
            self.version += 1
