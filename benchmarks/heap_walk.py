"""Bytes a structure holds on the heap, walked object by object, shared objects split between their referrers.

An object reached with fraction ``f`` through one of its ``rc`` references
gets ``f / rc`` of its size: an item id string held by a user's history and by
an item's neighbours counts half in each, so structures add up to the live
heap without double counting. Sizes are what pymalloc (or malloc) really
allocates for the object.

>>> walk = HeapWalk()
>>> walk.state("pair", (1.5, 2.5))
>>> walk.buckets["pair"].objects
3.0
>>> sorted(walk.buckets["pair"].kinds)
['float', 'tuple']
"""

from __future__ import annotations

import gc
import sys
import types
import weakref
from dataclasses import dataclass, field
from typing import Any

from online.contract import EventTypeWeights, Settings

__all__ = ["KINDS", "Bucket", "HeapWalk"]


def _block(size: int) -> int:
    """What an allocation of ``size`` bytes occupies: pymalloc rounds to 16 up to 512, malloc adds a header."""
    return (size + 15) & ~15 if size <= 512 else (size + 8 + 15) & ~15


_MANAGED_DICT = 1 << 4  # Py_TPFLAGS_MANAGED_DICT (3.11): attribute values live in a separate array
_STOP_TYPES: tuple[type, ...] = (
    type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.MethodType,
    types.CodeType, Settings, EventTypeWeights, weakref.ref,
)
_SCALARS = (str, bytes, float, int, bool, type(None))


def _size(obj: object) -> int:
    size = sys.getsizeof(obj)
    tp = type(obj)
    if tp.__flags__ & _MANAGED_DICT:
        # Attribute values of an instance whose __dict__ was never asked for: an array of
        # 8-byte slots sized by the class's shared keys (5, 10, 21, ... usable), plus a prefix.
        n = len(gc.get_referents(obj)) - 1
        usable = 5
        while usable < n:
            usable = usable * 2 + (1 if usable == 10 else 0)
        size += _block(8 + 8 * usable)
    return _block(size)


def _kind(obj: object) -> str:
    if isinstance(obj, str):
        return "str"
    if isinstance(obj, float):
        return "float"
    if isinstance(obj, tuple):
        return "tuple"
    if isinstance(obj, list):
        return "list"
    if isinstance(obj, dict):
        return "dict"
    if isinstance(obj, set | frozenset):
        return "set"
    return "other"


KINDS = ("str", "float", "tuple", "list", "dict", "set", "other")


def _skip(obj: object) -> bool:
    """Objects that cost nothing per key: singletons, cached small ints, 0/1-char strings, types and code."""
    if obj is None or obj is True or obj is False or obj is Ellipsis:
        return True
    tp = type(obj)
    if tp is int:
        return -5 <= obj <= 256  # type: ignore[operator]
    if tp is str:
        return len(obj) <= 1  # type: ignore[arg-type]
    if tp is tuple:
        return not obj
    return isinstance(obj, _STOP_TYPES)


def _children(obj: object) -> list[Any]:
    """A fresh list of what ``obj`` references (dicts: keys too; gc skips str keys)."""
    if isinstance(obj, dict):
        return [*obj.keys(), *obj.values()]
    if isinstance(obj, _SCALARS):
        return []
    return [c for c in gc.get_referents(obj) if not isinstance(c, type)]


@dataclass
class Bucket:
    """One structure's share of the heap, summed over the keys walked."""

    bytes: float = 0.0
    shared: float = 0.0
    """Part of ``bytes`` in objects that something else references too."""
    objects: float = 0.0
    kinds: dict[str, float] = field(default_factory=dict)

    def add(self, obj: object, fraction: float, shared: bool) -> None:
        size = _size(obj) * fraction
        self.bytes += size
        self.objects += fraction
        if shared:
            self.shared += size
        kind = _kind(obj)
        self.kinds[kind] = self.kinds.get(kind, 0.0) + size


class HeapWalk:
    """Proportional walk: an object reached with ``fraction`` f through a reference, of ``rc`` references, gets f / rc."""

    label_depth = 3
    """Slots of the flow's own classes are labelled this deep (``UserListState.latest.recent``); below, one row."""

    def __init__(self) -> None:
        self.buckets: dict[str, Bucket] = {}

    def bucket(self, label: str) -> Bucket:
        b = self.buckets.get(label)
        if b is None:
            b = self.buckets[label] = Bucket()
        return b

    @staticmethod
    def _labelled(obj: object) -> bool:
        module = type(obj).__module__
        return (module.startswith("online.") or module.startswith("flows.")) and hasattr(type(obj), "__slots__")

    def root(self, label: str, obj: object, skip: object = None) -> None:
        """Walk ``obj`` (owned by this key: fraction 1), leaving out the attribute ``skip`` (walked on its own)."""
        bucket = self.bucket(label)
        bucket.add(obj, 1.0, False)
        children = _children(obj)
        for child in children:
            if child is skip or _skip(child):
                continue
            rc = sys.getrefcount(child) - 3  # the children list, the loop variable, getrefcount's argument
            self._generic(child, 1.0 / max(1, rc), bucket, rc > 1)

    def state(self, label: str, obj: object, fraction: float = 1.0, depth: int = 0, shared: bool = False) -> None:
        """Walk a state object, one row per slot (to ``label_depth``) of the flow's own classes."""
        if depth >= self.label_depth or not self._labelled(obj):
            self._generic(obj, fraction, self.bucket(label), shared)
            return
        self.bucket(label).add(obj, fraction, shared)
        for cls in type(obj).__mro__:
            for name in getattr(cls, "__slots__", ()):
                if name in ("__weakref__", "__dict__"):
                    continue
                child = getattr(obj, name, None)
                if _skip(child):
                    continue
                rc = sys.getrefcount(child) - 2  # the local variable and getrefcount's argument
                sub = f"{label}.{name}" if not isinstance(child, _SCALARS) else f"{label}.(scalars)"
                self.state(sub, child, fraction / max(1, rc), depth + 1, shared or rc > 1)

    def _generic(self, obj: object, fraction: float, bucket: Bucket, shared: bool) -> None:
        seen: set[int] = set()
        stack: list[tuple[object, float, bool]] = [(obj, fraction, shared)]
        while stack:
            current, frac, is_shared = stack.pop()
            bucket.add(current, frac, is_shared)
            if id(current) in seen:  # a cycle or a second path in the same walk: counted, not descended
                continue
            seen.add(id(current))
            children = _children(current)
            for child in children:
                if _skip(child):
                    continue
                rc = sys.getrefcount(child) - 3
                stack.append((child, frac / max(1, rc), is_shared or rc > 1))
            del children
