"""Run a measurement in a fresh (spawned) process, so the RSS it reports is its own.

>>> run_in_child(divmod, 7, 2)
(3, 1)
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from typing import Any


def _child(conn: Any, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
    conn.send(fn(*args))
    conn.close()


def run_in_child(fn: Callable[..., Any], *args: Any, what: str = "child") -> Any:
    """``fn(*args)`` in a spawned process; its result must pickle. ``RuntimeError`` if the process dies first."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    process = ctx.Process(target=_child, args=(child, fn, args))
    process.start()
    child.close()
    try:
        result = parent.recv()
    except EOFError:
        process.join()
        raise RuntimeError(f"the {what} process exited with {process.exitcode} before reporting") from None
    process.join()
    return result

