"""Prometheus metrics of the dataflow, served on ``LIVERECO_FLOW_METRICS_PORT``.

Metric objects are process-wide (like any prometheus-client metric); they
hold counts, never model state. Label values come from bounded sets: the
configured event types, and dead-letter reasons named after contract fields.
"""

from __future__ import annotations

from bisect import bisect_left

from prometheus_client import REGISTRY, Counter, Gauge, Histogram

from flows.stage_time import StageTime

__all__ = [
    "ATTRIBUTED",
    "DEAD_LETTERS",
    "DUPLICATES",
    "EVENTS",
    "EVICTED",
    "FRESHNESS",
    "PARSE_REASONS",
    "PREQUENTIAL_HITS",
    "PREQUENTIAL_PREDICTIONS",
    "PREQUENTIAL_RECIPROCAL_RANK",
    "REDIS_ERRORS",
    "SERVED_SCORED",
    "SINK_WRITES",
    "SINK_WRITE_SECONDS",
    "STAGE_REASONS",
    "STAGE_TIME",
    "STREAM_LAG_ENTRIES",
    "STREAM_LAG_SECONDS",
    "STREAM_LENGTH",
    "observe_freshness",
    "observe_score",
    "observe_scores",
]

LABEL_TYPE = "type"
LABEL_REASON = "reason"
LABEL_KIND = "kind"
LABEL_OPERATION = "operation"

STAGE_TIME = StageTime()
"""``livereco_flow_stage_cpu_seconds_total{stage}`` (:mod:`flows.stage_time`)."""
REGISTRY.register(STAGE_TIME)
EVENTS = Counter("livereco_flow_events_total", "Events accepted by the dataflow, by event type.", [LABEL_TYPE])
DUPLICATES = Counter("livereco_flow_duplicate_events_total", "Events dropped because their event_id was seen.")
EVICTED = Counter(
    "livereco_flow_evicted_keys_total", "Users and items dropped from flow state after their TTL idle, by stage.", ["stage"]
)
LABEL_STAGE = "stage"
DEAD_LETTERS = Counter(
    "livereco_flow_dead_letters_total",
    "Events (or writes) sent to the dead-letter stream, by the stage that failed and a reason from a closed set:"
    " the offending contract field for validation, 'error' for a failure in a stage, 'encoding' or 'rejected' in the sink.",
    [LABEL_STAGE, LABEL_REASON],
)
PARSE_REASONS = ("event", "e", "user_id", "item_id", "type", "ts", "session_id", "value", "event_id", "context", "other")
"""The ``reason`` label of a validation failure: the field the contract names (a context key counts as ``context``)."""
STAGE_REASONS = {"user_history": ("error",), "items": ("error",), "user_lists": ("error",), "ranker": ("error",),
                 "sink": ("encoding", "rejected")}
FRESHNESS = Histogram(
    "livereco_flow_freshness_seconds",
    "Time from an event's acceptance into its stream to its user's new list being written to Redis.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
ATTRIBUTED = Counter(
    "livereco_flow_attributed_total",
    "Impressions (kind impression, one per item shown) and events attributed to served lists, by kind, status"
    " (attributed, not_listed, unknown, unattributed), source and variant (closed sets: other for the rest).",
    ["kind", "status", "source", "variant"])
SERVED_SCORED = Counter(
    "livereco_flow_served_lists_scored_total",
    "Served lists labelled by the user's next event (view, click, cart, purchase), by variant and outcome (hit: the"
    " event's item was in the list's top 10); live HR@10 of a variant = hit / (hit + miss).",
    ["variant", "outcome"])
SINK_WRITES = Counter("livereco_flow_redis_writes_total", "Keys written by the sink, by kind.", [LABEL_KIND])
SINK_WRITE_SECONDS = Histogram(
    "livereco_flow_sink_batch_seconds",
    "Duration of one pipelined sink batch write.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
REDIS_ERRORS = Counter(
    "livereco_flow_redis_errors_total", "Redis errors met (and retried) by the flow.", [LABEL_OPERATION]
)

LABEL_STREAM = "stream"
STREAM_LAG_ENTRIES = Gauge(
    "livereco_flow_stream_lag_entries",
    "Entries in the stream after the last one the flow read (counted up to 10,000).", [LABEL_STREAM])
STREAM_LAG_SECONDS = Gauge(
    "livereco_flow_stream_lag_seconds",
    "Time between the last entry the flow read and the newest entry of the stream (0 when caught up).",
    [LABEL_STREAM])
STREAM_LENGTH = Gauge(
    "livereco_flow_stream_length_entries",
    "Entries the stream retains (producers trim it to about LIVERECO_STREAM_MAXLEN).", [LABEL_STREAM])

PREQUENTIAL_KS = (5, 10, 20)
PREQUENTIAL_PREDICTIONS = Counter(
    "livereco_flow_prequential_predictions_total",
    "Positive events scored against the list their user had just before them.",
)
PREQUENTIAL_HITS = Counter(
    "livereco_flow_prequential_hits_total", "Scored events whose item was in the top k of that list.", ["k"]
)
PREQUENTIAL_RECIPROCAL_RANK = Counter(
    "livereco_flow_prequential_reciprocal_rank_total",
    "Sum of 1/rank over scored events with the item in the top k (divide by predictions for MRR@k).",
    ["k"],
)


def observe_score(rank: int | None) -> None:
    """Count one prequential score; HR@k = rate(hits{k}) / rate(predictions) over any window."""
    PREQUENTIAL_PREDICTIONS.inc()
    if rank is None:
        return
    for k in PREQUENTIAL_KS:
        if rank <= k:
            PREQUENTIAL_HITS.labels(str(k)).inc()
            PREQUENTIAL_RECIPROCAL_RANK.labels(str(k)).inc(1.0 / rank)


def observe_scores(ranks: list[int | None]) -> None:
    """:func:`observe_score` for a batch of scores: each counter incremented once (a labelled increment takes
    a lock and a lookup; the sink counts a batch's scores together).

    >>> before = PREQUENTIAL_PREDICTIONS._value.get()
    >>> observe_scores([1, None, 7])
    >>> PREQUENTIAL_PREDICTIONS._value.get() - before
    3.0
    """
    if not ranks:
        return
    PREQUENTIAL_PREDICTIONS.inc(len(ranks))
    for k in PREQUENTIAL_KS:
        hits = [rank for rank in ranks if rank is not None and rank <= k]
        if hits:
            PREQUENTIAL_HITS.labels(str(k)).inc(len(hits))
            PREQUENTIAL_RECIPROCAL_RANK.labels(str(k)).inc(sum(1.0 / rank for rank in hits))


def observe_freshness(seconds: list[float]) -> None:
    """``FRESHNESS.observe`` of each of ``seconds``: each bucket counted once per batch, the sum added once.

    ``observe`` takes a lock and scans the buckets per value (~7% of the sink's time for one per list written).
    This reads the histogram's buckets as prometheus-client 0.20 to 0.26 keep them (``_upper_bounds``,
    ``_buckets``, ``_sum``); a client without them gets one ``observe`` per value. The sum is added as one
    amount, so it may differ from one ``observe`` per value in its last bits.

    >>> before = FRESHNESS._buckets[0].get(), FRESHNESS._buckets[-1].get()
    >>> observe_freshness([0.0005, 0.001, 99.0])
    >>> FRESHNESS._buckets[0].get() - before[0], FRESHNESS._buckets[-1].get() - before[1]
    (2.0, 1.0)
    """
    bounds = getattr(FRESHNESS, "_upper_bounds", None)
    buckets = getattr(FRESHNESS, "_buckets", None)
    total = getattr(FRESHNESS, "_sum", None)
    if bounds is None or buckets is None or total is None or len(bounds) != len(buckets):
        for value in seconds:
            FRESHNESS.observe(value)
        return
    counts = [0] * len(bounds)
    for value in seconds:
        counts[min(bisect_left(bounds, value), len(bounds) - 1)] += 1  # the first bound >= it (observe's <=)
    for i, count in enumerate(counts):
        if count:
            buckets[i].inc(count)
    if seconds:
        total.inc(sum(seconds))


for _k in PREQUENTIAL_KS:
    PREQUENTIAL_HITS.labels(str(_k))
    PREQUENTIAL_RECIPROCAL_RANK.labels(str(_k))
for _kind in ("user_list", "item_similar", "trending", "dead_letter"):
    SINK_WRITES.labels(_kind)
for _reason in PARSE_REASONS:
    DEAD_LETTERS.labels("parse", _reason)
for _stage, _reasons in STAGE_REASONS.items():
    for _reason in _reasons:
        DEAD_LETTERS.labels(_stage, _reason)
for _op in ("read", "write"):
    REDIS_ERRORS.labels(_op)
