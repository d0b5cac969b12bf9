"""The web console: its static page, and the summary it polls (``GET /v1/console/summary``).

The page (``serving/console/``: HTML, one script, one style sheet, no build step) is open; everything it shows
comes from the read endpoints (lists, profile, similar items, trending) and from the summary, with the key the
reader types in (``Authorization: Bearer``). The summary is computed here so the browser never parses
Prometheus text:

* **the server**: this process's own registry (:class:`serving.metrics.ServingMetrics`), rates and latency
  quantiles over the last :data:`WINDOW_S` seconds (since the process started when it is younger);
* **the flow's progress** in Redis, per partition (entries, oldest unread event, heartbeat), as ``/readyz``
  reads it;
* **the flow's metrics**: its Prometheus endpoints, read by the server at ``LIVERECO_HOST`` on
  ``LIVERECO_FLOW_METRICS_PORT`` + *i* (process *i*) as ``livereco run`` and a single host lay them out. When
  no flow answers there (another host, metrics off), ``flow.metrics_reachable`` is false, ``metrics_note``
  says why, and the console shows what the server knows.

Examples
--------
>>> quantile(0.5, [(0.001, 0.0), (0.002, 10.0), (float("inf"), 10.0)])
0.0015
>>> quantile(0.99, [(0.001, 0.0), (float("inf"), 0.0)]) is None
True
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from prometheus_client.parser import text_string_to_metric_families

from online.contract import RedisKeys, Settings
from serving.api import (
    ConsoleFlow,
    ConsoleLatency,
    ConsolePartition,
    ConsoleQuality,
    ConsoleServer,
    ConsoleSummary,
)
from serving.backlog import flow_status
from serving.metrics import ServingMetrics

__all__ = ["CONSOLE_DIR", "ConsoleHandlers", "quantile"]

CONSOLE_DIR = Path(__file__).resolve().with_name("console")
"""The console's static files, shipped in the package."""
WINDOW_S = 60.0
"""Rates and quantiles are over this many seconds (less while the process is younger)."""
MIN_SCORED = 100
"""Fewer scored events in the window: quality since the flow started instead."""
MAX_FLOW_PROCESSES = 16
MAX_CATEGORIES = 200
CACHE_S = 1.0
"""One summary a second per server process, however many consoles poll."""

_LEFT_OUT = ("/console", "/v1/console/", "/metrics", "/healthz", "/readyz", "/openapi.json")
_RECOMMENDATIONS = "/v1/users/{user_id}/recommendations"

Labels = Mapping[str, str]
Samples = list[tuple[str, Labels, float]]


def quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """``histogram_quantile`` over cumulative ``(le, count)`` buckets (sorted, ``+Inf`` last); None when empty.

    Linear within a bucket, as Prometheus does; a quantile in the ``+Inf`` bucket is the highest finite bound.
    """
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return lower_bound


def _total(samples: Samples, name: str, keep: Callable[[Labels], bool] = lambda labels: True) -> float:
    return sum(value for sample, labels, value in samples if sample == name and keep(labels))


def _buckets(samples: Samples, name: str, keep: Callable[[Labels], bool] = lambda labels: True) -> dict[float, float]:
    out: dict[float, float] = {}
    for sample, labels, value in samples:
        if sample == name + "_bucket" and keep(labels):
            bound = float(labels["le"])
            out[bound] = out.get(bound, 0.0) + value
    return out


@dataclass(slots=True)
class Snapshot:
    """Counter totals and cumulative histogram buckets at one moment (wall-clock ``t``)."""

    t: float
    totals: dict[str, float] = field(default_factory=dict)
    histograms: dict[str, dict[float, float]] = field(default_factory=dict)

    def zero(self, t: float) -> Snapshot:
        """The same series at 0, at ``t``: the baseline of a process that started at ``t``."""
        return Snapshot(t, dict.fromkeys(self.totals, 0.0), {k: dict.fromkeys(h, 0.0) for k, h in self.histograms.items()})


class Window:
    """Snapshots of the last :data:`WINDOW_S` seconds; :meth:`since` gives the baseline a new snapshot is read against."""

    def __init__(self, window_s: float = WINDOW_S):
        self.window_s = window_s
        self.samples: deque[Snapshot] = deque()

    def since(self, now: Snapshot, start: Snapshot | None = None) -> Snapshot:
        """Add ``now``; answer the newest snapshot at least a window old, or the oldest one (``start`` first).

        A counter lower than in the baseline means the process restarted: the baseline is then ``start``.
        """
        if not self.samples and start is not None:
            self.samples.append(start)
        while len(self.samples) > 1 and self.samples[1].t <= now.t - self.window_s:  # the newest one a window old
            self.samples.popleft()
        base = self.samples[0] if self.samples else start
        if base is None or any(now.totals.get(k, 0.0) < v for k, v in base.totals.items()):
            base = start if start is not None else now
            self.samples.clear()
            self.samples.append(base)
        if not self.samples or now.t - self.samples[-1].t >= 0.5:
            self.samples.append(now)
        return base


def _rate(now: Snapshot, base: Snapshot, name: str) -> float:
    dt = now.t - base.t
    return max(0.0, now.totals.get(name, 0.0) - base.totals.get(name, 0.0)) / dt if dt > 0 else 0.0


def _latency(now: Snapshot, base: Snapshot, name: str, scale: float = 1000.0) -> ConsoleLatency:
    current, before = now.histograms.get(name, {}), base.histograms.get(name, {})
    buckets = sorted((bound, max(0.0, count - before.get(bound, 0.0))) for bound, count in current.items())

    def at(q: float) -> float | None:
        value = quantile(q, buckets)
        return None if value is None else round(value * scale, 3)

    return ConsoleLatency(p50_ms=at(0.5), p95_ms=at(0.95), p99_ms=at(0.99),
                          count=int(buckets[-1][1]) if buckets else 0)


def _server_snapshot(metrics: ServingMetrics, t: float) -> tuple[Snapshot, Samples]:
    samples: Samples = [(s.name, s.labels, s.value) for family in metrics.registry.collect() for s in family.samples]
    api = lambda labels: not labels.get("route", "").startswith(_LEFT_OUT)  # noqa: E731
    recommendations = lambda labels: labels.get("route") == _RECOMMENDATIONS  # noqa: E731
    return Snapshot(t, {
        "requests": _total(samples, "livereco_serving_requests_total", api),
        "recommendations": _total(samples, "livereco_serving_requests_total", recommendations),
        "errors": _total(samples, "livereco_serving_requests_total",
                         lambda labels: api(labels) and labels.get("status", "").startswith("5")),
        "fallbacks": _total(samples, "livereco_serving_fallbacks_total", recommendations),
        "accepted": _total(samples, "livereco_serving_events_accepted_total"),
        "rejected": _total(samples, "livereco_serving_events_rejected_total"),
        "cpu": _total(samples, "process_cpu_seconds_total"),
    }, {
        "latency": _buckets(samples, "livereco_serving_request_duration_seconds", recommendations),
        "list_age": _buckets(samples, "livereco_serving_list_age_seconds"),
    }), samples


def _at_k(k: str) -> Callable[[Labels], bool]:
    return lambda labels: labels.get("k") == k


def _flow_snapshot(texts: Iterable[str], t: float) -> tuple[Snapshot, float, float]:
    """The flow processes' metrics summed; with the earliest process start and the summed resident memory."""
    samples: Samples = [(s.name, s.labels, s.value) for text in texts
                        for family in text_string_to_metric_families(text) for s in family.samples]
    starts = [value for name, _, value in samples if name == "process_start_time_seconds"]
    snapshot = Snapshot(t, {
        "events": _total(samples, "livereco_flow_events_total"),
        "dead_letters": _total(samples, "livereco_flow_dead_letters_total"),
        "scored": _total(samples, "livereco_flow_prequential_predictions_total"),
        **{f"hits{k}": _total(samples, "livereco_flow_prequential_hits_total", _at_k(k)) for k in ("5", "10", "20")},
        "rr20": _total(samples, "livereco_flow_prequential_reciprocal_rank_total", _at_k("20")),
    }, {"freshness": _buckets(samples, "livereco_flow_freshness_seconds")})
    return snapshot, min(starts, default=t), _total(samples, "process_resident_memory_bytes")


def _quality(now: Snapshot, base: Snapshot) -> ConsoleQuality:
    def delta(name: str) -> float:
        return now.totals[name] - base.totals.get(name, 0.0)

    over: Literal["window", "since_start"] = "window" if delta("scored") >= MIN_SCORED else "since_start"
    value = delta if over == "window" else now.totals.__getitem__
    scored = value("scored")

    def share(name: str) -> float | None:
        return round(value(name) / scored, 4) if scored > 0 else None

    return ConsoleQuality(over=over, scored=int(scored), hr_at_5=share("hits5"), hr_at_10=share("hits10"),
                          hr_at_20=share("hits20"), mrr_at_20=share("rr20"))


async def fetch_text(host: str, port: int, path: str = "/metrics", timeout_s: float = 0.5,
                     limit: int = 4 << 20) -> str:
    """``GET http://host:port/path`` (HTTP/1.0, one connection), the body as text; OSError when it does not answer 200."""
    async def get() -> str:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(f"GET {path} HTTP/1.0\r\nHost: {host}:{port}\r\nAccept: text/plain\r\n\r\n".encode())
            await writer.drain()
            raw = await reader.read(limit)
            while len(raw) < limit and (more := await reader.read(limit - len(raw))):
                raw += more
        finally:
            writer.close()
        head, _, body = raw.partition(b"\r\n\r\n")
        status = head.split(b" ", 2)[1:2]
        if status != [b"200"]:
            raise OSError(f"answered {head[:40]!r}")
        return body.decode("utf-8", errors="replace")

    try:
        return await asyncio.wait_for(get(), timeout_s)
    except TimeoutError:
        raise OSError(f"no answer within {timeout_s:g} s") from None


def _glob_escape(text: str) -> str:
    r"""``text`` matched literally by a Redis glob.

    >>> _glob_escape("lr[1]*:trending:c:")
    'lr\\[1\\]\\*:trending:c:'
    """
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def _static(name: str) -> bytes:
    return (CONSOLE_DIR / name).read_bytes()


class ConsoleHandlers:
    """The console's handlers; mixed into :class:`serving.app.LiverecoApp`."""

    settings: Settings
    keys: RedisKeys
    metrics: ServingMetrics

    @property
    def client(self) -> Any: ...

    _console_state: _ConsoleState | None = None

    @property
    def _console(self) -> _ConsoleState:
        if self._console_state is None:  # rates since the process started until a window's worth of snapshots exist
            now = time.time()
            snapshot, samples = _server_snapshot(self.metrics, now)
            started = next((value for name, _, value in samples if name == "process_start_time_seconds"), now)
            self._console_state = _ConsoleState(snapshot.zero(min(started, now)))
        return self._console_state

    async def console_page(self, request: Any) -> bytes:
        return _static("index.html")

    async def console_script(self, request: Any) -> bytes:
        return _static("console.js")

    async def console_style(self, request: Any) -> bytes:
        return _static("console.css")

    async def console_summary(self, request: Any) -> ConsoleSummary:
        state = self._console
        now = time.time()
        if state.cached is not None and now - state.cached.generated_at < CACHE_S:
            return state.cached
        statuses = await flow_status(self.client, self.settings)
        categories = await self._console_categories(state, now)
        server_now, samples = _server_snapshot(self.metrics, now)
        base = state.server.since(server_now, state.started)
        recommendations = server_now.totals["recommendations"] - base.totals.get("recommendations", 0.0)
        age = quantile(0.5, sorted((b, c - base.histograms["list_age"].get(b, 0.0))
                                   for b, c in server_now.histograms["list_age"].items()))
        rss = _total(samples, "process_resident_memory_bytes")
        server = ConsoleServer(
            window_s=round(now - base.t, 1), uptime_s=round(now - state.started.t, 1),
            requests_per_s=round(_rate(server_now, base, "requests"), 3),
            recommendations_per_s=round(_rate(server_now, base, "recommendations"), 3),
            events_accepted_per_s=round(_rate(server_now, base, "accepted"), 3),
            events_rejected_per_s=round(_rate(server_now, base, "rejected"), 3),
            errors_5xx_per_s=round(_rate(server_now, base, "errors"), 3),
            fallback_share=round((server_now.totals["fallbacks"] - base.totals.get("fallbacks", 0.0)) / recommendations,
                                 4) if recommendations > 0 else None,
            recommendations_latency=_latency(server_now, base, "latency"),
            list_age_p50_s=None if age is None else round(age, 3), redis_up=True,
            resident_memory_bytes=rss or None,
            cpu_share=round(_rate(server_now, base, "cpu"), 4) if "process_cpu_seconds_total" in
            {name for name, _, _ in samples} else None)
        partitions = [ConsolePartition(partition=k, entries=s.entries, oldest_unread_age_s=s.oldest_unread_age_s,
                                       heartbeat_age_s=s.heartbeat_age_s, stalled=s.stalled)
                      for k, s in enumerate(statuses)]
        flow = await self._console_flow(state, now, partitions)
        state.cached = ConsoleSummary(generated_at=now, server=server, flow=flow, categories=categories)
        return state.cached

    async def _console_flow(self, state: _ConsoleState, now: float, partitions: list[ConsolePartition]) -> ConsoleFlow:
        stalled = any(p.stalled for p in partitions)
        port = self.settings.flow_metrics_port
        host = self.settings.host if self.settings.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
        texts: list[str] = []
        problem = ""
        if port:
            for process in range(MAX_FLOW_PROCESSES):
                try:
                    text = await fetch_text(host, port + process)
                except (OSError, ValueError) as exc:
                    if process == 0:
                        problem = f"no flow metrics at http://{host}:{port}/metrics ({exc or type(exc).__name__})"
                    break
                if "livereco_flow_events_total" not in text:
                    if process == 0:
                        problem = f"http://{host}:{port}/metrics answers, but not with a livereco flow's metrics"
                    break
                texts.append(text)
        else:
            problem = "the flow's metrics are off here (LIVERECO_FLOW_METRICS_PORT=0)"
        if not texts:
            return ConsoleFlow(metrics_reachable=False, metrics_note=problem + ": showing what the server reads in"
                               " Redis (the flow's progress per partition)", processes=0, window_s=None,
                               events_per_s=None, events_total=None, dead_letters_per_s=None, freshness=None,
                               quality=None, resident_memory_bytes=None, partitions=partitions, stalled=stalled)
        snapshot, started, rss = _flow_snapshot(texts, now)
        if state.flow_processes != len(texts):  # a process came or went: its counters do not add up with the old
            state.flow.samples.clear()
            state.flow_processes = len(texts)
        base = state.flow.since(snapshot, snapshot.zero(started))
        last = port + len(texts) - 1
        ports = f"{port}" if len(texts) == 1 else f"{port}-{last}"
        return ConsoleFlow(
            metrics_reachable=True, metrics_note=f"read from http://{host}:{ports}/metrics", processes=len(texts),
            window_s=round(now - base.t, 1), events_per_s=round(_rate(snapshot, base, "events"), 3),
            events_total=int(snapshot.totals["events"]),
            dead_letters_per_s=round(_rate(snapshot, base, "dead_letters"), 3),
            freshness=_latency(snapshot, base, "freshness"), quality=_quality(snapshot, base),
            resident_memory_bytes=rss or None, partitions=partitions, stalled=stalled)

    async def _console_categories(self, state: _ConsoleState, now: float) -> list[str]:
        """Categories with a trending set (SCAN, at most every 30 s; none when SCAN fails, e.g. on a cluster proxy)."""
        if now - state.categories_at < 30.0:
            return state.categories
        prefix = self.keys.trending("")
        found: set[str] = set()
        try:
            async for key in self.client.scan_iter(match=_glob_escape(prefix) + "*", count=1000):
                found.add((key.decode() if isinstance(key, bytes) else key)[len(prefix):])
                if len(found) >= MAX_CATEGORIES:
                    break
        except Exception:  # a list of categories is a convenience; the page takes any typed one
            found = set(state.categories)
        state.categories, state.categories_at = sorted(found), now
        return state.categories


@dataclass(slots=True)
class _ConsoleState:
    """Per server process: the baselines the summary's rates are read against, and its last answer."""

    started: Snapshot
    server: Window = field(default_factory=Window)
    flow: Window = field(default_factory=Window)
    flow_processes: int = 0
    categories: list[str] = field(default_factory=list)
    categories_at: float = float("-inf")
    cached: ConsoleSummary | None = None
