"""Pickling for frozen dataclasses that the build may compile with mypyc.

Pickle rebuilds a plain frozen dataclass by setting its fields on an empty
instance; a mypyc-compiled frozen dataclass refuses that (``FrozenInstanceError``).
Such classes define ``__reduce__`` with :func:`reduce_frozen`, which rebuilds
them through their constructor instead: the same in both builds.

>>> import pickle
>>> from online.forward_decay import ForwardDecay
>>> pickle.loads(pickle.dumps(ForwardDecay(60.0))) == ForwardDecay(60.0)
True
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

__all__ = ["reduce_frozen"]


def reduce_frozen(obj: Any) -> tuple[Any, ...]:
    """``obj``'s class and its constructor arguments (every ``init`` field), for ``__reduce__``."""
    return type(obj), tuple(getattr(obj, f.name) for f in fields(obj) if f.init)
