"""Item embeddings learned one co-visit at a time, and a session embedding built from them.

Random indexing (Kanerva et al. 2000; Sahlgren 2005): every item has a fixed
sparse random *index vector* (a few ±1 entries, derived from a hash of its id,
so every process agrees without sharing anything), and its *context
embedding* is the weighted sum of the index vectors of the items seen around
it. Items visited in the same contexts end up with similar embeddings. One
co-visit changes a handful of numbers of one item, so it fits the item-keyed
stage of the dataflow: no other item's state is read, and memory is fixed
(``dim`` float32 per item).

A user's *session embedding* is the exponentially decayed, weighted mean of the
(normalised) embeddings of the items of the current session, updated on
every event and reset when a session starts.

Examples
--------
>>> shoes, boots, tv = ContextEmbedding(), ContextEmbedding(), ContextEmbedding()
>>> for neighbour in ("socks", "laces", "insoles"):      # shoes and boots are bought with the same things
...     shoes.learn_one(neighbour, 1.0); boots.learn_one(neighbour, 1.0)
>>> for neighbour in ("remote", "hdmi-cable", "wall-mount"):
...     tv.learn_one(neighbour, 1.0)
>>> round(cosine(shoes.unit(), boots.unit()), 3), cosine(shoes.unit(), tv.unit()) < 0.5
(1.0, True)
>>> session = SessionEmbedding()
>>> session.learn_one(shoes.unit(), weight=1.0)
>>> round(cosine(session.vector(), boots.unit()), 3)
1.0
>>> session.learn_one((1.0, 0.0), weight=1.0)
Traceback (most recent call last):
ValueError: an embedding of 2 dimensions for a session embedding of 32
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Sequence
from functools import lru_cache
from hashlib import blake2b

__all__ = ["DIM", "ContextEmbedding", "SessionEmbedding", "cosine", "index_vector", "weighted_mean"]

DIM = 32
"""Dimensions of item and session embeddings."""
_NONZERO = 4


@lru_cache(maxsize=65536)
def index_vector(item_id: str, dim: int = DIM, nonzero: int = _NONZERO) -> tuple[tuple[int, float], ...]:
    """The fixed sparse random vector of ``item_id``: ``nonzero`` (position, ±1) pairs, the same in every process.

    >>> index_vector("a") == index_vector("a"), len(index_vector("a"))
    (True, 4)
    """
    digest = blake2b(item_id.encode(), digest_size=2 * nonzero).digest()
    entries: dict[int, float] = {}
    for k in range(nonzero):
        byte = digest[2 * k]
        entries.setdefault(byte % dim, 1.0 if digest[2 * k + 1] & 1 else -1.0)
    return tuple(sorted(entries.items()))


def cosine(u: Sequence[float], v: Sequence[float]) -> float:
    """Cosine similarity (0.0 when either vector is zero)."""
    dot = sum(x * y for x, y in zip(u, v, strict=True))
    norms = math.sqrt(sum(x * x for x in u)) * math.sqrt(sum(y * y for y in v))
    return dot / norms if norms else 0.0


class ContextEmbedding:
    """One item's context embedding: the weighted sum of the index vectors of its co-visited items."""

    __slots__ = ("_vector",)

    def __init__(self, dim: int = DIM) -> None:
        self._vector = array("f", bytes(4 * dim))

    def learn_one(self, other: str, weight: float) -> None:
        """``other`` was seen with this item, with evidence ``weight`` (> 0)."""
        if weight <= 0.0:
            return
        vector = self._vector
        for position, sign in index_vector(other, len(vector)):
            vector[position] += sign * weight

    def unit(self) -> tuple[float, ...]:
        """The embedding scaled to length 1 (all zeros for an item never co-visited)."""
        vector, norm = self.raw()
        return tuple(x / norm for x in vector) if norm else vector

    def raw(self) -> tuple[tuple[float, ...], float]:
        """The embedding as it is and its length (cheaper than :meth:`unit`: the reader scales it)."""
        vector = tuple(self._vector)
        return vector, math.hypot(*vector)

    def __getstate__(self) -> bytes:
        return self._vector.tobytes()

    def __setstate__(self, state: bytes) -> None:
        self._vector = array("f")
        self._vector.frombytes(state)


def weighted_mean(total: Sequence[float], weight: float) -> tuple[float, ...]:
    """``total / weight`` (``total`` itself when the weight is 0): a :meth:`SessionEmbedding.raw` as its vector."""
    return tuple(x / weight for x in total) if weight else tuple(total)


class SessionEmbedding:
    """The decayed, weighted mean of the unit embeddings of a session's items (newest weigh most).

    The running sum is a tuple of floats, rebuilt per event: the flow writes it
    with every list, so :meth:`raw` hands it over without a copy. An
    ``array('f')`` takes 0.9 KB less per user but makes a float object of every
    element to read it: 23k instructions per event against 11k (2% of the
    flow's work), plus a tuple copy per list written. Snapshots keep float32 bytes.
    """

    __slots__ = ("_sum", "_weight", "decay")

    def __init__(self, dim: int = DIM, decay: float = 0.8) -> None:
        self.decay = decay
        """Each event multiplies the weight of everything before it by this."""
        self._sum: tuple[float, ...] = (0.0,) * dim
        self._weight = 0.0

    def reset(self) -> None:
        """A new session: forget the previous one."""
        self._sum = (0.0,) * len(self._sum)
        self._weight = 0.0

    def learn_one(self, embedding: Sequence[float], weight: float, norm: float = 1.0) -> None:
        """The user touched an item with ``embedding`` (of length ``norm``) and interest ``weight`` (> 0 counts)."""
        if weight <= 0.0 or not norm:
            return
        total = self._sum
        # A tuple (what the flow's replies carry) is indexed natively when compiled; a Sequence generically.
        values: tuple[float, ...] = embedding if isinstance(embedding, tuple) else tuple(embedding)
        if len(values) != len(total):
            raise ValueError(f"an embedding of {len(values)} dimensions for a session embedding of {len(total)}")
        decay, scale = self.decay, weight / norm
        self._sum = tuple([decay * total[i] + scale * values[i] for i in range(len(total))])
        self._weight = decay * self._weight + weight

    def vector(self) -> tuple[float, ...]:
        """The session embedding (zeros before the session's first co-visited item)."""
        return weighted_mean(*self.raw())

    def raw(self) -> tuple[tuple[float, ...], float]:
        """The weighted sum and the total weight: ``vector() == sum / weight`` (the writer divides)."""
        return self._sum, self._weight

    def __getstate__(self) -> tuple[float, bytes, float]:
        return self.decay, array("f", self._sum).tobytes(), self._weight

    def __setstate__(self, state: tuple[float, bytes, float]) -> None:
        self.decay, raw, self._weight = state
        total = array("f")
        total.frombytes(raw)
        self._sum = tuple(total)
