"""The server's background refreshes (catalog and rules, experiments, ranker weights): one loop, stoppable.

Each copy a server keeps of what lives in Redis is re-read by a task that pauses,
refreshes, logs a Redis outage once (and its end) and goes on with the last copy.
The task ends when it is cancelled, even when the cancellation was swallowed on
the way: Python 3.11's ``asyncio.wait_for``, which redis-py wraps around every
write when a socket timeout is set, returns the inner result and drops a
``cancel()`` that arrives in the loop turn its inner task finished (CPython
gh-86296, fixed in 3.12), so a refresh loop that only waited for a
``CancelledError`` went back to sleep, cancelled but never done.
:func:`raise_if_cancelled` turns the task's pending cancellation back into one.

>>> import asyncio
>>> async def demo() -> list[str]:
...     said: list[str] = []
...     async def refresh() -> None:
...         said.append("refreshed")
...     task = asyncio.ensure_future(refresh_forever(refresh, lambda: 0.0, "demo"))
...     await asyncio.sleep(0.01)
...     task.cancel()
...     await asyncio.gather(task, return_exceptions=True)
...     return [task.cancelled(), len(said) > 1]
>>> asyncio.run(demo())
[True, True]
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from serving.redis_connect import REDIS_EXCEPTIONS

__all__ = ["raise_if_cancelled", "refresh_forever"]

log = logging.getLogger("livereco.serving")


def raise_if_cancelled() -> None:
    """Raise ``CancelledError`` when the running task was asked to stop and the request was lost on the way."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def refresh_forever(refresh: Callable[[], Awaitable[None]], pause_s: Callable[[], float], what: str,
                          keep_going_on_any_error: bool = False) -> None:
    """Call ``refresh`` after each ``pause_s()`` seconds until cancelled.

    A Redis error is logged once per outage (``what`` names the copy in the log) and the last copy stays in use;
    with ``keep_going_on_any_error`` any other exception is logged with its traceback and retried the same way
    (a malformed stored record must not stop the refreshes); without it, it ends the task.
    """
    failing = False
    while True:
        await asyncio.sleep(pause_s())
        try:
            await refresh()
            if failing:
                log.info("%s refresh: Redis answers again", what)
            failing = False
        except REDIS_EXCEPTIONS as exc:
            if not failing:
                log.warning("%s refresh failed (%s); serving the copy as of the last refresh", what,
                            type(exc).__name__)
            failing = True
        except Exception:
            if not keep_going_on_any_error:
                raise
            log.exception("%s refresh failed", what)
            failing = True
        raise_if_cancelled()
