"""What every stage logic shares: snapshots, idle deadlines and the :class:`_StageLogic` base.

All state lives in per-key logics, so Bytewax partitions it across workers
and processes and snapshots it for recovery. Snapshots are pickled bytes:
immutable, and cheap to take for keys that changed in an epoch.

>>> _load(_dump({"seen": 3})), _dump({"seen": 3}, recoverable=False)
({'seen': 3}, None)
>>> _idle_deadline(1_700_000_000.2, 60.0).isoformat()   # a key idle for a minute leaves at the whole second
'2023-11-14T22:14:21+00:00'
"""

from __future__ import annotations

import math
import pickle
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, TypeVar

from bytewax.operators import StatefulBatchLogic
from mypy_extensions import mypyc_attr
from typing_extensions import override

from flows.metrics import EVICTED
from flows.stage_time import timed

__all__ = ["_StageLogic", "_dump", "_load"]  # package-internal: what the stage modules share


def _dump(state: object, recoverable: bool = True) -> bytes | None:
    """A snapshot: the state pickled now, so later changes cannot alter it.

    ``None`` when the run keeps no recovery store: Bytewax still asks every
    key touched in an epoch for a snapshot, and pickling them all costs about
    a tenth of the flow's time for nothing.
    """
    return pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL) if recoverable else None


def _load(resume: bytes | None) -> Any:
    return pickle.loads(resume) if resume is not None else None


def _idle_deadline(last_active: float, idle_s: float) -> datetime:
    """When a key last active at ``last_active`` (wall clock) has been idle for ``idle_s``.

    User and item state leaves the flow when it is idle as long as its Redis
    keys live (``LIVERECO_USER_TTL_S``; items the longer item TTL), so flow
    memory follows the active users and items, not everyone ever seen. The
    clock is the wall clock, as for Redis TTLs: a replay runs through days of
    event time without evicting anyone. A restart gives every key a fresh TTL.

    Rounded up to the whole second: Bytewax asks every key it activates, so
    the keys active within one second share one cached ``datetime``.
    """
    second = math.ceil(last_active + idle_s)
    deadline = _DEADLINES.get(second)  # a dict read, not an lru_cache call: Bytewax asks after every key's batch
    if deadline is None:
        if len(_DEADLINES) >= 256:
            _DEADLINES.clear()
        deadline = _DEADLINES[second] = datetime.fromtimestamp(second, tz=UTC)
    return deadline


_DEADLINES: dict[int, datetime] = {}
"""The deadlines of the last whole seconds asked for (at most 256)."""


V = TypeVar("V")
W = TypeVar("W")
S = TypeVar("S")


@mypyc_attr(native_class=False)  # compiled methods, a plain Python class: pickled as one (LiverecoModel)
class _StageLogic(StatefulBatchLogic[V, W, "bytes | None"], Generic[V, W, S]):
    """One key's logic in a stage: ``state`` is what a snapshot pickles (nothing without a recovery
    store), and a key idle for ``idle_s`` seconds of wall clock leaves the flow (``None``: never).

    Subclasses set ``last_active`` in ``on_batch``.
    """

    stage: ClassVar[str]
    """The ``stage`` label of ``livereco_flow_evicted_keys_total``."""
    state: S

    def __init__(self, recoverable: bool, idle_s: float | None = None):
        self.recoverable = recoverable
        self.idle_s = idle_s
        self.last_active = time.time()

    @override
    def on_batch(self, values: list[V]) -> tuple[Iterable[W], bool]:
        """:meth:`process`, one call in :data:`~flows.stage_time.SAMPLE_EVERY` timed for
        ``livereco_flow_stage_cpu_seconds_total``."""
        return timed(self.stage, len(values), self.process, values)

    def process(self, values: list[V]) -> tuple[Iterable[W], bool]:
        """The stage's work on one key's batch (what Bytewax's ``on_batch`` asks for)."""
        raise NotImplementedError

    @override
    def notify_at(self) -> datetime | None:
        idle_s = self.idle_s  # read once: an attribute of a Python object
        return None if idle_s is None else _idle_deadline(self.last_active, idle_s)

    @override
    def on_notify(self) -> tuple[Iterable[W], bool]:
        EVICTED.labels(self.stage).inc()
        return (), StatefulBatchLogic.DISCARD

    @override
    def snapshot(self) -> bytes | None:
        if not self.recoverable:
            return None
        return timed("snapshots", 1, _dump, self.state)
