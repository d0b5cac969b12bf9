"""Prometheus metrics of the dataflow, served on ``LIVERECO_FLOW_METRICS_PORT``.

Metric objects are process-wide (like any prometheus-client metric); they
hold counts, never model state. Label values come from bounded sets: the
configured event types, and dead-letter reasons named after contract fields.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

__all__ = [
    "DEAD_LETTERS",
    "DUPLICATES",
    "EVENTS",
    "FRESHNESS",
    "REDIS_ERRORS",
    "SINK_WRITES",
    "SINK_WRITE_SECONDS",
]

LABEL_TYPE = "type"
LABEL_REASON = "reason"
LABEL_KIND = "kind"
LABEL_OPERATION = "operation"

EVENTS = Counter("livereco_flow_events_total", "Events accepted by the dataflow, by event type.", [LABEL_TYPE])
DUPLICATES = Counter("livereco_flow_duplicate_events_total", "Events dropped because their event_id was seen.")
DEAD_LETTERS = Counter(
    "livereco_flow_dead_letters_total", "Stream entries sent to the dead-letter stream, by reason.", [LABEL_REASON]
)
FRESHNESS = Histogram(
    "livereco_flow_freshness_seconds",
    "Time from an event's acceptance into its stream to its user's new list being written to Redis.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
SINK_WRITES = Counter("livereco_flow_redis_writes_total", "Keys written by the sink, by kind.", [LABEL_KIND])
SINK_WRITE_SECONDS = Histogram(
    "livereco_flow_sink_batch_seconds",
    "Duration of one pipelined sink batch write.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
REDIS_ERRORS = Counter(
    "livereco_flow_redis_errors_total", "Redis errors met (and retried) by the flow.", [LABEL_OPERATION]
)

for _kind in ("user_list", "item_similar", "trending", "dead_letter"):
    SINK_WRITES.labels(_kind)
for _op in ("read", "write"):
    REDIS_ERRORS.labels(_op)
