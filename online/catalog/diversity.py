"""The diversity cap: at most ``cap`` items of one category among the first ``window`` places.

Greedy, and otherwise order-keeping: each place of the window takes the best
remaining item whose category has not reached the cap; an item passed over
keeps its rank among the rest and comes back as soon as it fits, or right
after the window. Items without a category are never held back. Items at
``fixed`` places (pinned, promoted) stay where they are and count towards
their category's cap. When nothing that fits is left, the window takes the
best remaining item anyway: the list is never shortened.

Examples
--------
>>> kinds = {"t1": "treadmills", "t2": "treadmills", "t3": "treadmills", "s1": "shoes", "b1": "bands"}
>>> diversify(["t1", "t2", "t3", "s1", "b1"], kinds.get, cap=2, window=4)
['t1', 't2', 's1', 'b1', 't3']
>>> diversify(["t1", "t2", "t3", "s1"], kinds.get, cap=1, window=3, fixed={1})     # t2, pinned 2nd, fills the cap
['s1', 't2', 't1', 't3']
>>> diversify(["t1", "t2", "t3"], kinds.get, cap=1, window=3)                       # nothing else to show
['t1', 't2', 't3']
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable, Sequence
from typing import TypeVar

__all__ = ["DEFAULT_CAP", "DEFAULT_WINDOW", "diversify", "diversify_prefix"]

T = TypeVar("T")

DEFAULT_CAP = 3
DEFAULT_WINDOW = 10


def diversify(ranked: Sequence[T], category_of: Callable[[T], Hashable | None], cap: int = DEFAULT_CAP,
              window: int = DEFAULT_WINDOW, fixed: Collection[int] = ()) -> list[T]:
    """``ranked`` re-ordered so that no category holds more than ``cap`` of the first ``window`` places.

    ``category_of`` gives an entry's category (``None``: none); ``fixed``:
    places (0-based) whose entries must not move. ``cap`` 0 or less turns the
    cap off. Cost: O(window × len(ranked)) at worst, a few µs for a list of 100.
    """
    return diversify_prefix(ranked, category_of, cap, window, fixed)[0]


def diversify_prefix(ranked: Sequence[T], category_of: Callable[[T], Hashable | None], cap: int = DEFAULT_CAP,
                     window: int = DEFAULT_WINDOW, fixed: Collection[int] = ()) -> tuple[list[T], bool]:
    """:func:`diversify`, and whether a window place had to take an item over the cap.

    When it did not, the answer for ``ranked`` is also the beginning of the
    answer for any longer list that starts with ``ranked``: a caller may
    diversify a prefix of its candidates and fetch more only when this is ``True``.
    """
    if cap <= 0 or window <= 0 or len(ranked) <= cap:
        return list(ranked), False
    counts: dict[Hashable, int] = {}
    for place in fixed:
        if place < min(window, len(ranked)):
            category = category_of(ranked[place])
            if category is not None:
                counts[category] = counts.get(category, 0) + 1
    free = [entry for place, entry in enumerate(ranked) if place not in fixed]
    categories = [category_of(entry) for entry in free]
    taken = [False] * len(free)
    out: list[T] = []
    start = 0  # the first free entry not taken yet
    over = False
    for place in range(len(ranked)):
        if place in fixed:
            out.append(ranked[place])
            continue
        while taken[start]:
            start += 1
        chosen = -1
        if place < window:
            for index in range(start, len(free)):
                if not taken[index]:
                    category = categories[index]
                    if category is None or counts.get(category, 0) < cap:
                        chosen = index
                        break
            if chosen < 0:
                chosen, over = start, True
            category = categories[chosen]
            if category is not None:
                counts[category] = counts.get(category, 0) + 1
        else:
            chosen = start
        taken[chosen] = True
        out.append(free[chosen])
    return out, over
