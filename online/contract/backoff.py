"""Bounded exponential backoff through one outage, logged once when it begins and once when it ends.

The one retry policy of the flow, the producers and the server: the first
failure asks for a wait of ``first_s``, each further one for twice the last,
at most ``max_s``. A success ends the outage; the next failure starts again
from ``first_s``. Only the outage's first failure and its end are logged, not
the retries in between, so a long outage costs two log lines.

Pure policy: the caller makes the attempts, sleeps the waits (``time.sleep``,
``asyncio.sleep``, an ``Event.wait``) and decides when to give up (from
:attr:`Backoff.outage_s`). What is logged is worded by the caller through two
``%``-templates formatted, lazily as ``logging`` does, from a dict of fields:
``what``, ``problem`` (what the failure said), ``first_s``, ``max_s``,
``outage_s``, ``failures`` and the caller's own ``fields``. Caller data goes in
fields, never into a template (a URL's ``%40`` would be read as a format).

>>> import logging, sys
>>> log = logging.getLogger("doc.backoff"); log.addHandler(logging.StreamHandler(sys.stdout)); log.propagate = False
>>> log.setLevel(logging.INFO)
>>> clock = iter([10.0, 13.5]).__next__
>>> backoff = Backoff("the sink", log, clock=clock)
>>> [backoff.failed(OSError("down")) for _ in range(8)]
the sink: failed (down); retrying from 0.05 s apart, doubling up to 2.0 s
[0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0]
>>> backoff.succeeded()
the sink: answers again after 3.5 s (8 failed attempts)
>>> backoff.failing, backoff.succeeded()
(False, None)
>>> Backoff("doc", log, first_s=3.0)
Traceback (most recent call last):
...
ValueError: backoff for doc: first wait 3.0 s must be positive and at most the longest, 2.0 s
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

__all__ = ["Backoff", "OutageLog"]

BEGAN = "%(what)s: failed (%(problem)s); retrying from %(first_s).2f s apart, doubling up to %(max_s).1f s"
ENDED = "%(what)s: answers again after %(outage_s).1f s (%(failures)d failed attempts)"


class OutageLog(Protocol):
    """Where the two lines go: a :class:`logging.Logger`, or anything with its ``warning`` and ``info``."""

    def warning(self, msg: str, /, *args: Any) -> None: ...

    def info(self, msg: str, /, *args: Any) -> None: ...


class Backoff:
    """The waits and the two log lines of one retried operation (see the module's docstring).

    ``began`` is logged as a warning at an outage's first failure, ``ended``
    as info at the success that ends it; ``clock`` (monotonic seconds) times
    the outage.
    """

    def __init__(self, what: str, log: OutageLog, *, first_s: float = 0.05, max_s: float = 2.0,
                 began: str = BEGAN, ended: str = ENDED, fields: Mapping[str, object] | None = None,
                 clock: Callable[[], float] = time.monotonic):
        if not 0 < first_s <= max_s:
            raise ValueError(f"backoff for {what}: first wait {first_s} s must be positive and at most the longest,"
                             f" {max_s} s")
        self.what = what
        self.log = log
        self.first_s = first_s
        self.max_s = max_s
        self.began = began
        self.ended = ended
        self.fields = dict(fields or {})
        self.clock = clock
        self._wait_s = 0.0
        self._failures = 0
        self._since = 0.0

    @property
    def failing(self) -> bool:
        """Whether an outage is under way (failures since the last success)."""
        return self._failures > 0

    @property
    def failures(self) -> int:
        """Failed attempts in the outage under way (0: none)."""
        return self._failures

    @property
    def since(self) -> float:
        """When (``clock`` time) the outage under way began: its first failure."""
        return self._since

    @property
    def outage_s(self) -> float:
        """Seconds since the outage under way began (0.0: none)."""
        return self.clock() - self._since if self._failures else 0.0

    def failed(self, problem: object) -> float:
        """Count one failed attempt (``problem``: the exception or what went wrong); the seconds to wait."""
        if self._failures == 0:
            self._since = self.clock()
            self._wait_s = self.first_s
            self.log.warning(self.began, self._fields(problem=problem, outage_s=0.0, failures=0))
        else:
            self._wait_s = min(self.max_s, self._wait_s * 2)
        self._failures += 1
        return self._wait_s

    def succeeded(self) -> None:
        """The attempt worked: end the outage, if there was one, and say how long it lasted."""
        if self._failures == 0:
            return
        self.log.info(self.ended, self._fields(outage_s=self.clock() - self._since, failures=self._failures))
        self._failures = 0
        self._wait_s = 0.0

    def _fields(self, **now: object) -> dict[str, object]:
        return {"what": self.what, "first_s": self.first_s, "max_s": self.max_s, "problem": "", **self.fields, **now}
