"""The served list, remembered while everything it was made from is unchanged.

A user's list is served far more often than it changes: every page view
asks for it, a new one is stored only after the user's next event. Decoding
the stored list, blending it with trending and building the answer's items
was over a third of the server's CPU per request. :class:`ServedCache` keeps
the answer per request shape (list key, ``n``, exclusions, trending category,
depth, exploration position) together with every input it was made from:

* the stored list's bytes, as Redis returned them (the flow's new list, a
  new ``accepted_ms``, anything written to the key, is a miss);
* trending's decoded state, by identity (:func:`serving.lists._trending_state`
  replaces it whenever Redis returns a different trending reply);
* the ranker weights, the exploration candidates and the context popularity
  the request would blend with, by value (they are re-read every second).

The reads still happen on every request (one pipelined round trip, as
before): only what is computed from them is reused, and only when they
compare equal, so an answer from the cache is the answer the blend would
give. A list that names category affinities is not cached (its answer also
depends on those categories' trending, read in a second round trip).

The catalog path (:func:`serving.served_list.served_list`) passes more inputs
in ``extra``, compared by value (identity first): the catalog copy's id and
version, the rules and their version, the category page's trending, the
user's recent items (the profile's bytes) and attributes. ``expires``: the
answer is not reused at or after that time (epoch seconds; the next start or
end of a rule or of an item's availability window), ``now`` is the request's clock.
At most ``capacity`` answers are kept; the oldest entry goes first.

>>> cache = ServedCache(2)
>>> key = ("list", 10)
>>> cache.put(key, b"blob", "trending", {"w": 1.0}, ["x"], {}, {}, "personal", [], None, 0)
>>> cache.get(key, b"blob", "trending", {"w": 1.0}, ["x"], {}, {}) is not None
True
>>> cache.get(key, b"blob2", "trending", {"w": 1.0}, ["x"], {}, {}) is None  # the stored list changed
True
>>> cache.get(key, b"blob", "trending", {"w": 2.0}, ["x"], {}, {}) is None  # the ranker weights changed
True
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

__all__ = ["CachedAnswer", "ServedCache"]


class CachedAnswer:
    """One remembered answer and the inputs it was made from."""

    __slots__ = ("accepted_ms", "blob", "device", "expires", "explore", "extra", "fallback", "hour", "items", "source",
                 "trending", "weights")

    def __init__(self, blob: bytes | None, trending: Any, weights: Mapping[str, float], explore: Sequence[str],
                 device: Mapping[str, float], hour: Mapping[str, float], source: str, items: list[Any],
                 fallback: str | None, accepted_ms: int, extra: tuple[Any, ...] = (), expires: float = math.inf):
        self.blob = blob
        self.trending = trending
        self.weights = weights
        self.explore = explore
        self.device = device
        self.hour = hour
        self.source = source
        self.items = items
        self.fallback = fallback
        self.accepted_ms = accepted_ms
        self.extra = extra
        self.expires = expires


class ServedCache:
    """Answers per request shape, each valid while its inputs compare equal (see the module)."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._entries: dict[Hashable, CachedAnswer] = {}
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable, blob: bytes | None, trending: Any, weights: Mapping[str, float],
            explore: Sequence[str], device: Mapping[str, float], hour: Mapping[str, float], extra: tuple[Any, ...] = (),
            now: float = 0.0) -> CachedAnswer | None:
        """The remembered answer for ``key`` if it was made from these very inputs and ``now`` is before it expires,
        else ``None``."""
        entry = self._entries.get(key)
        if (entry is not None and entry.trending is trending and entry.blob == blob and entry.weights == weights
                and entry.explore == explore and entry.device == device and entry.hour == hour
                and entry.extra == extra and now < entry.expires):
            self.hits += 1
            return entry
        self.misses += 1
        return None

    def put(self, key: Hashable, blob: bytes | None, trending: Any, weights: Mapping[str, float],
            explore: Sequence[str], device: Mapping[str, float], hour: Mapping[str, float], source: str,
            items: list[Any], fallback: str | None, accepted_ms: int, extra: tuple[Any, ...] = (),
            expires: float = math.inf) -> None:
        """Remember an answer and what it was made from; the oldest entry makes room."""
        if self.capacity <= 0:
            return
        entries = self._entries
        if key not in entries and len(entries) >= self.capacity:
            del entries[next(iter(entries))]
        entries[key] = CachedAnswer(blob, trending, weights, explore, device, hour, source, items, fallback,
                                    accepted_ms, extra, expires)
