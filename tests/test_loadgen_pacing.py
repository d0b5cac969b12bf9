"""The serving benchmarks' open-loop generator keeps its schedule without spinning a core.

Against the real server (:class:`conftest.LiveServer`): 2,000 requests a
second for a second. The generator counts its pacing wake-ups (``ticks``): the
pacing thread wakes it at most once per request, where the previous pacing
(``timer``: uvloop's 1 ms timer re-armed with sub-millisecond delays, which
fire at once) spun, waking it tens of thousands of times a second on a core the
server and Redis need.
"""

from __future__ import annotations

import asyncio
from typing import Any

import uvloop

from benchmarks import loadgen


def _run(live_server: Any, pacing: str) -> dict[str, Any]:
    """One run on uvloop, as ``python -m benchmarks.loadgen`` runs (its timers round sub-millisecond delays to 0)."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(loadgen.run(live_server.base, ["/healthz"], rate=2000.0, duration=1.0, connections=16,
                                      pacing=pacing))


def test_thread_pacing_wakes_once_per_request_at_most(live_server: Any) -> None:
    result = _run(live_server, "thread")
    assert result["statuses"] == {"200": 2000} and result["errors"] == 0
    assert result["ticks"] <= result["scheduled"], result["ticks"]


def test_timer_pacing_spins(live_server: Any) -> None:
    """The comparison pacing, kept for benchmarks.serving_tail --pacing thread,timer, still shows what it cost."""
    result = _run(live_server, "timer")
    assert result["statuses"] == {"200": 2000}
    assert result["ticks"] > 5 * result["scheduled"], result["ticks"]
