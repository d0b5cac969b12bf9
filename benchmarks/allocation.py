"""Bytes a structure allocates while it is built, measured with ``tracemalloc``.

>>> table, size = allocated(lambda: {n: str(n) for n in range(1000)})
>>> len(table), size > 1000 * 8
(1000, True)
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from typing import TypeVar

__all__ = ["allocated"]

T = TypeVar("T")


def allocated(build: Callable[[], T]) -> tuple[T, int]:
    """What ``build`` returns, and the bytes allocated (and still held) while it ran."""
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        built = build()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    return built, sum(stat.size_diff for stat in after.compare_to(before, "filename"))
