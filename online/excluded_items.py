"""The items a user must never be shown again, over their whole retained history, in bounded memory.

What a user bought, disliked or consumed (rated: in a log where the user's own
items are never recommended back) stays excluded long after it has left the
20 recent items the history keeps. :class:`ExcludedItems` remembers each such
item as a 32-bit hash (:func:`online.contract.stable_hash`, the same in every
process and after a restart), at most ``capacity`` of them (the oldest make
way), in two flat arrays, 8 bytes an item: the hashes in the order they came
(what the cap removes, from the front) and the same hashes sorted (membership
by binary search, in C). A snapshot pickles the first as bytes, 4 bytes an
item; the sorted copy is rebuilt on load.

A hash can stand for two items: a candidate whose hash equals an excluded
item's is left out too. With ``n`` items remembered that happens to a
candidate with probability ``n / 2**32`` (2.3e-7 at 1,000): about one
candidate in four million lists of a user with 1,000 exclusions, and it only
ever hides an item, never shows one that should be hidden.

Examples
--------
>>> seen = ExcludedItems(capacity=3)
>>> for item in ("a", "b", "c", "b"):
...     seen.add(item)
>>> len(seen), "a" in seen, "z" in seen
(3, True, False)
>>> seen.add("d")                      # full: the oldest, a, makes way
>>> "a" in seen, "d" in seen, len(seen)
(False, True, 3)
>>> [item for item in ["a", "b", "x", "d"] if item not in seen]
['a', 'x']
>>> import pickle
>>> copy = pickle.loads(pickle.dumps(seen))
>>> "b" in copy, "a" in copy, copy.capacity, copy.nbytes()
(True, False, 3, 24)
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from typing import Any

from online.contract.keys import stable_hash

__all__ = ["ExcludedItems"]


class ExcludedItems:
    """At most ``capacity`` items, as 32-bit hashes: ``add``, ``in``, ``len``; the oldest make way."""

    __slots__ = ("_order", "_sorted", "capacity")

    def __init__(self, capacity: int = 1000, order: bytes = b"") -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, not {capacity}")
        self.capacity = capacity
        self._order = array("I")
        self._order.frombytes(order)
        self._sorted = array("I", sorted(self._order))

    def __reduce__(self) -> tuple[Any, ...]:
        return ExcludedItems, (self.capacity, self._order.tobytes())

    def __len__(self) -> int:
        return len(self._order)

    def __contains__(self, item: object) -> bool:
        if not isinstance(item, str):
            return False
        value = stable_hash(item)
        hashes = self._sorted
        at = bisect_left(hashes, value)
        return at < len(hashes) and hashes[at] == value

    def add(self, item: str) -> None:
        """Remember ``item`` (nothing changes if it is remembered already)."""
        value = stable_hash(item)
        hashes = self._sorted
        at = bisect_left(hashes, value)
        if at < len(hashes) and hashes[at] == value:
            return
        hashes.insert(at, value)
        order = self._order
        order.append(value)
        if len(order) > self.capacity:
            oldest = order.pop(0)
            del hashes[bisect_left(hashes, oldest)]

    def nbytes(self) -> int:
        """Bytes of the two arrays' items (what grows with the user; each array adds ~64 bytes of header)."""
        return (len(self._order) + len(self._sorted)) * self._order.itemsize
