"""What a server process's latency tail is made of, measured inside it: a diagnostic, not a test.

:class:`TailProbe` records, in the event loop's own process,

* every garbage collection (``gc.callbacks``): its generation, start and duration;
* event-loop stalls: a 1 ms timer on the loop notes each gap between its
  firings; a gap over the period means the loop ran something else (or was not
  running at all) for that long. For each gap the thread's CPU time over it
  (``time.thread_time``) tells a stall spent computing from one spent off the
  CPU (the process descheduled: the load generator, Redis or another job had
  the core), and the collections inside it are counted;
* the refreshes that run on the loop (catalog and rules, experiments, ranker
  weights): how often, their wall time, and (:meth:`TailProbe.calibrate`, on a
  quiet loop) their CPU time each;
* each request's time inside :meth:`serving.app.LiverecoApp.respond` and each
  hot-path Redis round trip (``FastReads.read_with_shared``), from call to reply.

Run as a script (``python benchmarks/tail_probe.py``, the environment's
``LIVERECO_*`` settings) it is ``livereco serve --workers 1`` with the probe
installed, controlled by lines on its standard input: ``reset``, ``dump``
(one JSON line on standard output: the figures since the last reset) and
``calibrate``. ``TAIL_PROBE_GC=python`` undoes the server's collector tuning
(:func:`serving.server.tune_gc`) once it is applied, to measure what it buys.
Run as a script, not a module, so that ``PYTHONPATH`` may point
at another commit's tree: the probe then measures that commit's server
(:mod:`benchmarks.serving_tail` ``--against``).

>>> probe = TailProbe(period_s=0.001)
>>> probe.on_gc("start", {"generation": 0}); probe.on_gc("stop", {"generation": 0})
>>> summary = probe.summary(requests=10_000)
>>> summary["gc"]["0"]["count"], summary["stalls"]["count_over_1ms"]
(1, 0)
"""

from __future__ import annotations

import asyncio
import bisect
import functools
import gc
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any


def _percentile(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100.0 * len(ordered) + 0.5) - 1))]


class TailProbe:
    """The figures of one process since the last :meth:`reset` (see the module)."""

    def __init__(self, period_s: float = 0.001) -> None:
        self.period_s = period_s
        self.loop: asyncio.AbstractEventLoop | None = None
        self._gc_started = 0.0
        self.refresh_cpu: dict[str, float] = {}
        self.reset()

    def reset(self) -> None:
        self.began = time.perf_counter()
        self.began_cpu = time.thread_time()
        self.collections: list[tuple[int, float, float]] = []  # (generation, start, seconds)
        self.gaps: list[tuple[float, float, float]] = []  # (start, gap seconds, CPU seconds in it), gaps > period + 1 ms
        self.ticks = 0
        self.respond: list[float] = []
        self.answered_at: list[float] = []  # each respond's end (perf_counter): how many answers a stall held
        self.redis: list[float] = []
        self.refreshes: dict[str, list[float]] = {}
        self._last = time.perf_counter()
        self._last_cpu = time.thread_time()

    # --- the probes -------------------------------------------------------------------------
    def on_gc(self, phase: str, info: dict[str, Any]) -> None:
        now = time.perf_counter()
        if phase == "start":
            self._gc_started = now
        else:
            self.collections.append((int(info["generation"]), self._gc_started, now - self._gc_started))

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Install the collector callback and the loop timer."""
        self.loop = loop
        gc.callbacks.append(self.on_gc)
        self._last, self._last_cpu = time.perf_counter(), time.thread_time()
        loop.call_later(self.period_s, self._tick)

    def _tick(self) -> None:
        now, cpu = time.perf_counter(), time.thread_time()
        gap = now - self._last
        if gap > self.period_s + 0.001:
            self.gaps.append((self._last, gap, cpu - self._last_cpu))
        self.ticks += 1
        self._last, self._last_cpu = now, cpu
        assert self.loop is not None
        self.loop.call_later(self.period_s, self._tick)

    def timed(self, into: Callable[[], list[float]], method: Callable[..., Any]) -> Callable[..., Any]:
        """``method`` (a coroutine function) with each call's wall time appended to ``into()``."""

        @functools.wraps(method)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await method(*args, **kwargs)
            finally:
                into().append(time.perf_counter() - started)

        return wrapper

    def timed_respond(self, method: Callable[..., Any]) -> Callable[..., Any]:
        """``respond`` with its wall time and its end recorded."""

        @functools.wraps(method)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await method(*args, **kwargs)
            finally:
                ended = time.perf_counter()
                self.respond.append(ended - started)
                self.answered_at.append(ended)

        return wrapper

    def refresh_list(self, name: str) -> list[float]:
        return self.refreshes.setdefault(name, [])

    # --- the figures --------------------------------------------------------------------------
    def summary(self, requests: int | None = None) -> dict[str, Any]:
        """The figures since the last reset; counts also per 10k requests (``requests``: answered, else respond's)."""
        elapsed = time.perf_counter() - self.began
        answered = requests if requests is not None else len(self.respond)
        per_10k = 10_000 / answered if answered else 0.0
        by_gen: dict[str, dict[str, float]] = {}
        for generation in (0, 1, 2):
            pauses = [seconds for gen, _, seconds in self.collections if gen == generation]
            by_gen[str(generation)] = {"count": len(pauses), "per_10k": round(len(pauses) * per_10k, 2),
                                       "total_ms": round(sum(pauses) * 1e3, 3),
                                       "total_ms_per_10k": round(sum(pauses) * 1e3 * per_10k, 3),
                                       "max_ms": round(max(pauses, default=0.0) * 1e3, 3)}
        stalls = [(start, gap - self.period_s, cpu) for start, gap, cpu in self.gaps]
        with_gc = [s for s in stalls if any(start <= s[0] + s[1] + self.period_s and start + sec >= s[0]
                                            for _, start, sec in self.collections)]
        on_cpu = [s for s in stalls if s[2] >= 0.5 * (s[1] + self.period_s)]
        ends = sorted(self.answered_at)
        held = [bisect.bisect_right(ends, start + gap + self.period_s) - bisect.bisect_left(ends, start)
                for start, gap, _ in stalls if (start, gap, _) in on_cpu]
        return {
            "elapsed_s": round(elapsed, 3), "requests": answered,
            "cpu_share": round((time.thread_time() - self.began_cpu) / elapsed, 3) if elapsed else 0.0,
            "gc": by_gen,
            "stalls": {
                "ticks": self.ticks,
                "count_over_1ms": len(stalls), "per_10k": round(len(stalls) * per_10k, 2),
                "count_over_3ms": sum(1 for s in stalls if s[1] > 0.003),
                "total_ms": round(sum(s[1] for s in stalls) * 1e3, 2),
                "max_ms": round(max((s[1] for s in stalls), default=0.0) * 1e3, 2),
                "on_cpu": len(on_cpu), "off_cpu": len(stalls) - len(on_cpu), "with_gc": len(with_gc),
                "on_cpu_per_10k": round(len(on_cpu) * per_10k, 2),
                "off_cpu_per_10k": round((len(stalls) - len(on_cpu)) * per_10k, 2),
                "with_gc_per_10k": round(len(with_gc) * per_10k, 2),
                "off_cpu_ms": round(sum(s[1] for s in stalls if s not in on_cpu) * 1e3, 2),
                "on_cpu_ms": round(sum(s[1] for s in on_cpu) * 1e3, 2),
                "on_cpu_max_ms": round(max((s[1] for s in on_cpu), default=0.0) * 1e3, 2),
                "on_cpu_without_gc": sum(1 for s in on_cpu if s not in with_gc),
                "on_cpu_answers_p50": _percentile([float(h) for h in held], 50),
                "on_cpu_answers_max": max(held, default=0),
            },
            "respond_ms": {"p50": round(_percentile(self.respond, 50) * 1e3, 3),
                           "p99": round(_percentile(self.respond, 99) * 1e3, 3),
                           "max": round(max(self.respond, default=0.0) * 1e3, 3), "count": len(self.respond)},
            "redis_ms": {"p50": round(_percentile(self.redis, 50) * 1e3, 3),
                         "p99": round(_percentile(self.redis, 99) * 1e3, 3),
                         "max": round(max(self.redis, default=0.0) * 1e3, 3), "count": len(self.redis)},
            "refreshes": {name: {"count": len(times), "per_s": round(len(times) / elapsed, 2) if elapsed else 0.0,
                                 "wall_p50_ms": round(_percentile(times, 50) * 1e3, 3),
                                 "wall_max_ms": round(max(times, default=0.0) * 1e3, 3),
                                 "cpu_ms_each": round(self.refresh_cpu.get(name, 0.0) * 1e3, 3)}
                          for name, times in sorted(self.refreshes.items())},
        }


PROBE = TailProbe()


def install(probe: TailProbe) -> dict[str, Callable[[Any], Any]]:
    """Wrap the server's methods with the probe's timers; the refreshes, by name, to calibrate on an app."""
    from serving.app import LiverecoApp
    from serving.catalog_state import ServingCatalog
    from serving.experiment_state import ServingExperiments
    from serving.ranker_weights import RankerWeights
    from serving.redis_reads import FastReads

    LiverecoApp.respond = probe.timed_respond(LiverecoApp.respond)  # type: ignore[method-assign]
    FastReads.read_with_shared = probe.timed(lambda: probe.redis,  # type: ignore[method-assign]
                                             FastReads.read_with_shared)
    ServingCatalog.refresh = probe.timed(lambda: probe.refresh_list("catalog"),  # type: ignore[method-assign]
                                         ServingCatalog.refresh)
    ServingExperiments.refresh = probe.timed(lambda: probe.refresh_list("experiments"),  # type: ignore[method-assign]
                                             ServingExperiments.refresh)
    weights_refresh = RankerWeights.refresh

    async def ranker_refresh(self: RankerWeights, client: Any, keys: Any) -> None:
        before = self._read_at
        started = time.perf_counter()
        await weights_refresh(self, client, keys)
        if self._read_at != before:  # it did read (else the copy was fresh: nothing but a clock read)
            probe.refresh_list("ranker weights").append(time.perf_counter() - started)

    RankerWeights.refresh = ranker_refresh  # type: ignore[method-assign]
    return {
        "catalog": lambda app: app.catalog.refresh(app.client),
        "experiments": lambda app: app.experiments.refresh(app.client),
        "ranker weights": lambda app: _force_weights(app),
    }


async def _force_weights(app: Any) -> None:
    app.ranker_weights._read_at = float("-inf")
    await app.ranker_weights.refresh(app.client, app.keys)


async def calibrate(probe: TailProbe, app: Any, refreshes: dict[str, Callable[[Any], Any]], rounds: int = 20) -> None:
    """Each refresh's CPU time (the loop's thread), median of ``rounds`` on the quiet loop."""
    for name, refresh in refreshes.items():
        spent = []
        for _ in range(rounds):
            cpu = time.thread_time()
            await refresh(app)
            spent.append(time.thread_time() - cpu)
        probe.refresh_cpu[name] = _percentile(spent, 50)


def main() -> int:
    """``livereco serve --workers 1`` with the probe, controlled on standard input (see the module)."""
    here = os.path.dirname(os.path.abspath(__file__))  # run as a script: benchmarks/serving.py is not ``serving``
    sys.path[:] = [path for path in sys.path if os.path.abspath(path or ".") != here]
    import uvloop

    from online.contract import Settings
    from serving import server as server_module
    from serving.app import LiverecoApp

    settings = Settings.from_env()
    refreshes = install(PROBE)
    apps: list[Any] = []
    original_init = LiverecoApp.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        apps.append(self)

    LiverecoApp.__init__ = init  # type: ignore[method-assign]
    if os.environ.get("TAIL_PROBE_GC") == "python":  # for comparison: the collector as Python ships it
        tuned = server_module.tune_gc

        def python_gc() -> None:
            tuned()
            gc.unfreeze()
            gc.set_threshold(700, 10, 10)

        server_module.tune_gc = python_gc
    sock = socket.create_server((settings.host, settings.port), backlog=2048)
    sock.setblocking(False)

    async def probed() -> int:
        loop = asyncio.get_running_loop()
        PROBE.start(loop)

        def control() -> None:
            for line in sys.stdin:
                command, _, argument = line.strip().partition(" ")
                if command == "reset":
                    done = asyncio.run_coroutine_threadsafe(_on_loop(PROBE.reset), loop)
                    done.result()
                    print("{}", flush=True)
                elif command == "dump":
                    requests = int(argument) if argument else None
                    done = asyncio.run_coroutine_threadsafe(_on_loop(functools.partial(PROBE.summary, requests)), loop)
                    print(json.dumps(done.result()), flush=True)
                elif command == "calibrate":
                    asyncio.run_coroutine_threadsafe(calibrate(PROBE, apps[-1], refreshes), loop).result()
                    print(json.dumps({name: round(s * 1e3, 3) for name, s in PROBE.refresh_cpu.items()}), flush=True)

        threading.Thread(target=control, name="tail-probe-control", daemon=True).start()
        return await server_module._worker(settings, sock)

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(probed())


async def _on_loop(function: Callable[[], Any]) -> Any:
    return function()


if __name__ == "__main__":
    sys.exit(main())
