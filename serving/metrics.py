"""Prometheus metrics of the HTTP server, on their own registry.

Label names are constants and every label set that can occur is created up
front, so dashboards show zeros instead of gaps. No label value comes from
client input unless it is one of a closed set: a method a route does not
serve is ``other``, a path no route matches is ``unmatched``, a field name the
contract does not know is ``unknown_field`` (:func:`field_label`), so no
request can add a series.

Examples
--------
>>> m = ServingMetrics()
>>> m.requests.labels("/v1/trending", "GET", "200").inc()
>>> m.registry.get_sample_value("livereco_serving_requests_total", {"route": "/v1/trending", "method": "GET", "status": "200"})
1.0
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from serving import routes

__all__ = ["FIELDS", "OTHER_METHOD", "ROUTES", "ServedCacheCollector", "ServingMetrics", "field_label", "method_label",
           "register_process_collectors"]

LABEL_ROUTE = "route"
LABEL_METHOD = "method"
LABEL_STATUS = "status"
LABEL_REASON = "reason"
LABEL_FIELD = "field"

ROUTES: tuple[tuple[str, str], ...] = tuple((route.method, route.path) for route in routes.ROUTES)
"""(method, route template) of every endpoint (:data:`serving.routes.ROUTES`): the ``route`` label's values."""

NOT_FOUND_ROUTE = "unmatched"
OTHER_METHOD = "other"
LABEL_PARTITION = "partition"

_ROUTE_METHODS: dict[str, frozenset[str]] = {path: frozenset(m for m, p in ROUTES if p == path) for _, path in ROUTES}
_STATUSES: dict[tuple[str, str], tuple[str, ...]] = {(route.method, route.path): tuple(map(str, route.statuses))
                                                     for route in routes.ROUTES}
"""Every status each route answers (from the route table); a wrong method is 405 under ``other``."""

FIELDS = ("user_id", "item_id", "type", "ts", "session_id", "value", "event_id", "context", "event", "body",
          "content-length", "content-type", "unknown_field")
"""The ``field`` label's values: the event fields, the request's parts, and ``unknown_field``."""


def method_label(route: str, method: str) -> str:
    """``method`` when ``route`` serves it, else ``other`` (methods come from the client).

    >>> method_label("/v1/events", "POST"), method_label("/v1/events", "BREW"), method_label("unmatched", "GET")
    ('POST', 'other', 'other')
    """
    return method if method in _ROUTE_METHODS.get(route, ()) else OTHER_METHOD


def field_label(field: str | None) -> str:
    """The ``field`` label of a refusal: one of :data:`FIELDS`.

    >>> field_label("item_id"), field_label("context.category"), field_label("x" * 64), field_label(None)
    ('item_id', 'context', 'unknown_field', 'body')
    """
    if field is None:
        return "body"
    name = field.split(".", 1)[0].split("[", 1)[0]
    return name if name in FIELDS else "unknown_field"

# Sub-millisecond resolution where a Redis-backed lookup lives.
LATENCY_BUCKETS = (0.0002, 0.0004, 0.0006, 0.0008, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.0075,
                   0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


def register_process_collectors(registry: CollectorRegistry) -> None:
    """The process's own metrics on ``registry``, as the default registry has them: ``process_*`` (resident and
    virtual memory, CPU seconds, open and maximum file descriptors, start time), ``python_info`` and
    ``python_gc_*`` (collections, collected and uncollectable objects per generation).

    >>> r = CollectorRegistry()
    >>> register_process_collectors(r)
    >>> r.get_sample_value("process_resident_memory_bytes") > 0, "python_info" in {m.name for m in r.collect()}
    (True, True)
    >>> r.get_sample_value("python_gc_collections_total", {"generation": "0"}) >= 0
    True
    """
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)


class CacheCounts(Protocol):
    """What the served-list cache exposes (:class:`serving.served_cache.ServedCache`)."""

    hits: int
    misses: int

    def __len__(self) -> int: ...


class ServedCacheCollector:
    """The served-list cache's lookups and size, read at each scrape (nothing is counted per request).

    >>> class Cache:
    ...     hits, misses = 3, 1
    ...     def __len__(self) -> int: return 2
    >>> registry = CollectorRegistry()
    >>> registry.register(ServedCacheCollector(Cache()))
    >>> registry.get_sample_value("livereco_serving_served_cache_lookups_total", {"result": "hit"})
    3.0
    >>> registry.get_sample_value("livereco_serving_served_cache_entries")
    2.0
    """

    def __init__(self, cache: CacheCounts):
        self.cache = cache

    def collect(self) -> Iterator[Metric]:
        lookups = CounterMetricFamily(
            "livereco_serving_served_cache_lookups",
            "Lookups of the served-list cache by the list routes (hit: an answer reused; miss: made afresh).",
            labels=["result"])
        lookups.add_metric(["hit"], float(self.cache.hits))
        lookups.add_metric(["miss"], float(self.cache.misses))
        yield lookups
        yield GaugeMetricFamily("livereco_serving_served_cache_entries",
                                "Answers the served-list cache holds (at most LIVERECO_SERVED_CACHE_LISTS).",
                                value=float(len(self.cache)))


class ServingMetrics:
    """All server metrics on one (by default fresh) registry; ``partitions`` labels the per-stream gauges.

    A fresh registry also gets the process collectors (:func:`register_process_collectors`); a registry passed in
    is left as it is (the default registry has them already).
    """

    def __init__(self, registry: CollectorRegistry | None = None, partitions: int = 0):
        if registry is None:
            registry = CollectorRegistry()
            register_process_collectors(registry)
        self.registry = registry
        r = self.registry
        self.duration = Histogram(
            "livereco_serving_request_duration_seconds", "Time to answer a request, by route.",
            [LABEL_ROUTE, LABEL_METHOD], buckets=LATENCY_BUCKETS, registry=r,
        )
        self.requests = Counter(
            "livereco_serving_requests_total", "Requests answered, by route and status.",
            [LABEL_ROUTE, LABEL_METHOD, LABEL_STATUS], registry=r,
        )
        self.fallbacks = Counter(
            "livereco_serving_fallbacks_total", "Answers that fell back to trending, by route and reason.",
            [LABEL_ROUTE, LABEL_REASON], registry=r,
        )
        self.events_accepted = Counter(
            "livereco_serving_events_accepted_total", "Events appended to the streams.", registry=r,
        )
        self.events_rejected = Counter(
            "livereco_serving_events_rejected_total",
            "Events refused, by the field named in the error (unknown_field for a field the contract does not know).",
            [LABEL_FIELD], registry=r,
        )
        self.redis_errors = Counter(
            "livereco_serving_redis_errors_total", "Requests that failed because Redis did not answer.", registry=r,
        )
        self.list_age = Histogram(
            "livereco_serving_list_age_seconds",
            "Age of a personal candidate list when served (now minus its event's acceptance).",
            buckets=(0.01, 0.1, 1.0, 10.0, 60.0, 600.0, 3600.0, 86400.0), registry=r,
        )
        self.auth_failures = Counter(
            "livereco_serving_auth_failures_total", "Requests refused for their API key, by status (401, 403).",
            [LABEL_STATUS], registry=r,
        )
        self.rate_limited = Counter(
            "livereco_serving_rate_limited_total", "Requests answered 429: a key or client address above its rate.",
            registry=r,
        )
        for status in ("401", "403"):
            self.auth_failures.labels(status)
        self.up = Gauge("livereco_serving_redis_up", "1 when the last Redis call succeeded.", registry=r)
        self.backlog_refusals = Counter(
            "livereco_serving_backlog_refusals_total",
            "POST /v1/events answered 503 because a stream partition held LIVERECO_STREAM_MAXLEN entries.",
            [LABEL_PARTITION], registry=r,
        )
        self.stream_entries = Gauge(
            "livereco_serving_stream_entries", "Entries in each event stream partition (XLEN), read at /metrics.",
            [LABEL_PARTITION], registry=r,
        )
        self.unread_age = Gauge(
            "livereco_serving_stream_unread_age_seconds",
            "Age of the oldest entry the flow has not read, per partition (0: none waits).", [LABEL_PARTITION],
            registry=r,
        )
        self.heartbeat_age = Gauge(
            "livereco_serving_flow_heartbeat_age_seconds",
            "Seconds since the flow last published its progress on a partition (+Inf: never).", [LABEL_PARTITION],
            registry=r,
        )
        self.flow_stalled = Gauge(
            "livereco_serving_flow_stalled",
            "1 when a partition holds events accepted but not processed (the /readyz rule).", [LABEL_PARTITION],
            registry=r,
        )
        for method, route in ROUTES:
            self.duration.labels(route, method)
            self.duration.labels(route, OTHER_METHOD)
            for status in _STATUSES[method, route]:
                self.requests.labels(route, method, status)
            self.requests.labels(route, OTHER_METHOD, "405")
        self.duration.labels(NOT_FOUND_ROUTE, OTHER_METHOD)
        for status in ("400", "404"):
            self.requests.labels(NOT_FOUND_ROUTE, OTHER_METHOD, status)
        for route in ("/v1/users/{user_id}/recommendations", "/v1/items/{item_id}/similar"):  # the lists that fall back
            for reason in ("unknown", "short"):
                self.fallbacks.labels(route, reason)
        for field in FIELDS:
            self.events_rejected.labels(field)
        for partition in range(partitions):
            for family in (self.backlog_refusals, self.stream_entries, self.unread_age, self.flow_stalled):
                family.labels(str(partition))
            self.heartbeat_age.labels(str(partition)).set(float("inf"))
