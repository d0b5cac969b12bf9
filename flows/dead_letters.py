"""Turning a failure of one event (or one write) into a dead letter, so that the flow goes on.

Every stage of the dataflow processes its events one by one inside a guard:
an exception for one event becomes a :class:`~flows.writes.DeadLetter`
naming the stage, the exception and the event's raw entry, is counted in
``livereco_flow_dead_letters_total{stage, reason="error"}`` and logged (the
first few, then one in a thousand, so a flood of one bad kind cannot flood
the log), and the stage carries on with the next event. The dead letter goes
to the dead-letter stream with every other write.

>>> from flows.writes import DeadLetter
>>> letter = stage_failure("items", ValueError("boom"), "lr:events:{p0}", "1-0", b'{"user_id":"u"}')
>>> letter.stage, letter.reason, letter.raw
('items', 'ValueError: boom', b'{"user_id":"u"}')
"""

from __future__ import annotations

import logging

from flows.metrics import DEAD_LETTERS
from flows.writes import DeadLetter

__all__ = ["RAW_LIMIT", "REASON_LIMIT", "stage_failure"]

log = logging.getLogger(__name__)

RAW_LIMIT = 64 * 1024
"""Raw bytes kept per dead letter."""
REASON_LIMIT = 500
"""Characters of the exception message kept per dead letter."""
_LOGGED_IN_FULL = 10

_failures: dict[str, int] = {}


def stage_failure(stage: str, exc: BaseException, stream: str, entry_id: str, raw: bytes,
                  reason: str = "error") -> DeadLetter:
    """The dead letter for an event that ``stage`` failed on with ``exc``; counted and (throttled) logged."""
    DEAD_LETTERS.labels(stage, reason).inc()
    count = _failures[stage] = _failures.get(stage, 0) + 1
    message = f"{type(exc).__name__}: {exc}"[:REASON_LIMIT]
    if count <= _LOGGED_IN_FULL:
        log.warning("%s failed on entry %s of %s, sent to the dead-letter stream: %s", stage, entry_id, stream,
                    message, exc_info=exc)
    elif count % 1000 == 0:
        log.warning("%s: %d entries sent to the dead-letter stream so far (latest: %s)", stage, count, message)
    return DeadLetter(stream, entry_id, "", message, raw[:RAW_LIMIT], stage)
