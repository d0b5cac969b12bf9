"""The flow's garbage-collection policy: no automatic collection, cyclic garbage still reclaimed on a timer."""

from __future__ import annotations

import gc
import time
import weakref

from flows.gc_policy import periodic_collection


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def test_cyclic_garbage_is_reclaimed_within_an_interval_and_the_default_comes_back() -> None:
    assert gc.isenabled()
    with periodic_collection(interval_s=0.05):
        assert not gc.isenabled()
        a, b = _Node(), _Node()
        a.other, b.other = b, a  # a cycle: reference counting alone never frees it
        alive = weakref.ref(a)
        del a, b
        deadline = time.monotonic() + 5
        while alive() is not None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert alive() is None
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0  # what the block froze is collectable again


def test_interval_zero_leaves_python_s_collector_alone() -> None:
    with periodic_collection(interval_s=0):
        assert gc.isenabled()
