"""Prometheus metrics of the HTTP server, on their own registry.

Label names are constants and every label set that can occur is created up
front, so dashboards show zeros instead of gaps.

Examples
--------
>>> m = ServingMetrics()
>>> m.requests.labels("/v1/trending", "GET", "200").inc()
>>> m.registry.get_sample_value("livereco_serving_requests_total", {"route": "/v1/trending", "method": "GET", "status": "200"})
1.0
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["ROUTES", "ServingMetrics"]

LABEL_ROUTE = "route"
LABEL_METHOD = "method"
LABEL_STATUS = "status"
LABEL_REASON = "reason"
LABEL_FIELD = "field"

ROUTES: tuple[tuple[str, str], ...] = (
    ("GET", "/v1/users/{user_id}/recommendations"),
    ("GET", "/v1/users/{user_id}/profile"),
    ("GET", "/v1/items/{item_id}/similar"),
    ("GET", "/v1/trending"),
    ("POST", "/v1/events"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
)
"""(method, route template) of every endpoint: the ``route`` label's values."""

NOT_FOUND_ROUTE = "unmatched"

# Sub-millisecond resolution where a Redis-backed lookup lives.
LATENCY_BUCKETS = (0.0002, 0.0004, 0.0006, 0.0008, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.0075,
                   0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class ServingMetrics:
    """All server metrics on one (by default fresh) registry."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
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
            "livereco_serving_events_rejected_total", "Events refused, by the field named in the error.",
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
        self.up = Gauge("livereco_serving_redis_up", "1 when the last Redis call succeeded.", registry=r)
        for method, route in ROUTES:
            self.duration.labels(route, method)
            for status in ("200", "400", "404", "503"):
                self.requests.labels(route, method, status)
        for route in ("/v1/users/{user_id}/recommendations", "/v1/items/{item_id}/similar"):
            for reason in ("unknown", "short"):
                self.fallbacks.labels(route, reason)
