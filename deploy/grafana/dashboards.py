"""livereco's three dashboards: Overview (the server), Pipeline (the flow), Quality (online HR@K, MRR@K, CTR and
HR@10 by experiment variant).

Job names follow ``deploy/prometheus/prometheus.yml``: ``livereco-server`` and ``livereco-flow``.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import dashboard as dm

from deploy.grafana.panels import (
    RATE,
    dashboard,
    latency_panel,
    rate_expr,
    rate_panel,
    ratio_expr,
    ratio_panel,
    row,
    stat_panel,
    timeseries_panel,
)

RECOMMENDATIONS = 'route="/v1/users/{user_id}/recommendations"'
REQUESTS = "livereco_serving_requests_total"
FLOW_JOB = 'job="livereco-flow"'
SERVER_JOB = 'job="livereco-server"'
WINDOW = "$window"
"""The Quality dashboard's averaging window: online HR@K over a few minutes is noisy at low traffic."""


def overview() -> dm.Dashboard:
    recommendations = rate_expr(REQUESTS, selector=RECOMMENDATIONS)
    return dashboard("livereco-overview", "livereco / Overview",
                     "The HTTP server: traffic, latency, errors, fallbacks to trending, Redis, its processes.", [
        row("Are the processes up?"),
        stat_panel("Is every server and flow process being scraped?", 'up{job=~"livereco-.*"}',
                   "{{job}} {{instance}}", "none", "1: Prometheus scraped it last time; 0: it is down or unreachable.",
                   width=12, thresholds=((None, "red"), (1, "green"))),
        stat_panel("Can every server reach Redis?", "min by (instance) (livereco_serving_redis_up)", "{{instance}}",
                   "none", "1 when the server's last Redis call succeeded; 0 means it answers 503.", width=12,
                   thresholds=((None, "red"), (1, "green"))),
        row("Traffic and latency"),
        rate_panel("How many requests per second does each route answer?", REQUESTS, by=["route"], unit="reqps"),
        latency_panel("How fast are recommendations answered?", "livereco_serving_request_duration_seconds",
                      RECOMMENDATIONS, description="p50, p95 and p99 of GET /v1/users/{user_id}/recommendations,"
                      " all servers together."),
        latency_panel("How slow is each route at p99?", "livereco_serving_request_duration_seconds",
                      quantiles=(0.99,), by=["route"]),
        ratio_panel("What share of requests fail with a server error (5xx)?", [(ratio_expr(
            rate_expr(REQUESTS, selector='status=~"5.."'), rate_expr(REQUESTS)), "5xx")],
            "503 when Redis is unreachable or the flow is too far behind to accept events."),
        rate_panel("Which client errors (4xx) are answered, by route and status?", REQUESTS, by=["route", "status"],
                   selector='status=~"4.."', unit="reqps"),
        ratio_panel("What share of recommendations fall back to trending, and why?", [(ratio_expr(
            rate_expr("livereco_serving_fallbacks_total", by=["reason"], selector=RECOMMENDATIONS),
            recommendations, by=["reason"]), "{{reason}}")],
            "unknown: the flow has never seen the user; short: their personal list had fewer than n items."),
        row("Ingestion and Redis"),
        timeseries_panel("How many events are accepted and rejected per second?", [
            (rate_expr("livereco_serving_events_accepted_total"), "accepted"),
            (rate_expr("livereco_serving_events_rejected_total", by=["field"]), "rejected: {{field}}"),
        ], "ops", "Rejected events are labelled by the field their error names."),
        latency_panel("How old are the personal lists when they are served?", "livereco_serving_list_age_seconds",
                      quantiles=(0.5, 0.99), description="Now minus the acceptance of the event that last rewrote"
                      " the list: how long ago the user was last active, not a delay."),
        timeseries_panel("How many Redis calls fail per second?", [
            (rate_expr("livereco_serving_redis_errors_total"), "server"),
            (rate_expr("livereco_flow_redis_errors_total", by=["operation"]), "flow {{operation}}"),
        ], "ops", "The server answers 503 on a Redis error; the flow backs off and retries.", width=24),
        row("The server processes"),
        timeseries_panel("How much memory does each server use?", [
            (f"max by (instance) (process_resident_memory_bytes{{{SERVER_JOB}}})", "{{instance}}")], "bytes",
            "Resident set size of each server process (the server keeps no state: it should stay flat).", width=6),
        timeseries_panel("How much CPU does each server use?", [
            (f"sum by (instance) (rate(process_cpu_seconds_total{{{SERVER_JOB}}}[{RATE}]))", "{{instance}}")],
            "percentunit", "Cores busy (1 = 100% of one core); one server process uses at most one.", width=6),
        ratio_panel("How close is each server to its open-file limit?", [(
            f"max by (instance) (process_open_fds{{{SERVER_JOB}}} / process_max_fds{{{SERVER_JOB}}})",
            "{{instance}}")], "Open file descriptors (client connections, Redis connections) over the process's"
            " limit (ulimit -n); at 1 new connections are refused.", width=6, maximum=1),
        timeseries_panel("How much time does each server spend collecting garbage?", [
            (f"sum by (instance) (rate(python_gc_collections_total{{{SERVER_JOB}}}[{RATE}]))",
             "{{instance}} collections/s")], "ops",
            "Python garbage collections per second, all generations; a rise with flat traffic points at a leak of"
            " cyclic objects.", width=6),
    ])


def pipeline() -> dm.Dashboard:
    return dashboard("livereco-pipeline", "livereco / Pipeline",
                     "The dataflow: throughput, lag per partition, freshness, dead letters, the sink, the process.", [
        row("Throughput"),
        rate_panel("How many events does the flow process per second, by type?", "livereco_flow_events_total",
                   by=["type"]),
        rate_panel("How many retried events are dropped as duplicates per second?",
                   "livereco_flow_duplicate_events_total", legend="duplicates",
                   description="An event whose event_id the user's history has already counted."),
        row("Lag"),
        timeseries_panel("How many entries is the flow behind, per partition?", [
            ("max by (stream) (livereco_flow_stream_lag_entries)", "{{stream}}")], "short",
            "Entries after the last one the flow read, counted in Redis up to 10,000.", width=8),
        timeseries_panel("How many seconds is the flow behind, per partition?", [
            ("max by (stream) (livereco_flow_stream_lag_seconds)", "{{stream}}")], "s",
            "Time between the last entry read and the newest entry (0 when caught up).", width=8),
        ratio_panel("How close is each partition to trimming unread events?", [(
            "max by (stream) (livereco_flow_stream_lag_entries / clamp_min(livereco_flow_stream_length_entries, 1))",
            "{{stream}}")], "Unread share of the stream; producers trim to LIVERECO_STREAM_MAXLEN, and the"
            " LiverecoFlowNearTrim alert fires above 50%.", width=8, maximum=1),
        row("Freshness and the sink"),
        latency_panel("How long from an event's acceptance to its user's fresh list?",
                      "livereco_flow_freshness_seconds"),
        latency_panel("How long does one sink batch write take?", "livereco_flow_sink_batch_seconds",
                      quantiles=(0.5, 0.99)),
        rate_panel("How many keys does the sink write per second, by kind?", "livereco_flow_redis_writes_total",
                   by=["kind"]),
        rate_panel("Which events are dead-lettered, by stage and reason?", "livereco_flow_dead_letters_total",
                   by=["stage", "reason"], description="parse: the contract field that failed validation;"
                   " a stage's error; the sink's encoding or rejected write. Each lands in lr:deadletter."),
        row("The flow process"),
        timeseries_panel("How much memory does the flow use?", [
            (f"max by (instance) (process_resident_memory_bytes{{{FLOW_JOB}}})", "{{instance}}")], "bytes",
            "Resident set size of each flow process; model state lives here.", width=8),
        timeseries_panel("How much CPU does the flow use?", [
            (f"sum by (instance) (rate(process_cpu_seconds_total{{{FLOW_JOB}}}[{RATE}]))", "{{instance}}")],
            "percentunit", "Cores busy (1 = 100% of one core).", width=8),
        rate_panel("How many Redis calls does the flow retry per second?", "livereco_flow_redis_errors_total",
                   by=["operation"], width=8),
        timeseries_panel("Where does the flow's time go, by stage?", [
            (f"sum by (stage) (rate(livereco_flow_stage_cpu_seconds_total[{RATE}]))", "{{stage}}"),
            (f"sum(rate(process_cpu_seconds_total{{{FLOW_JOB}}}[{RATE}]))"
             f" - sum(rate(livereco_flow_stage_cpu_seconds_total[{RATE}]))", "Bytewax and the rest")],
            "percentunit", "CPU time of each stage's batches, from one batch in 8 (1 = one core busy all the time);"
            " the rest of the process's CPU is Bytewax's routing between stages, the source and epochs. The stage that grows"
            " with the load is the one to scale or optimise (docs/performance.md).", width=24),
    ])


def window_variable() -> db.CustomVariable:
    windows = ["5m", "15m", "1h", "6h", "1d"]
    return (db.CustomVariable("window").label("Window").values(",".join(windows))
            .current(dm.VariableOption(selected=True, text="15m", value="15m"))
            .options([dm.VariableOption(selected=w == "15m", text=w, value=w) for w in windows]))


def quality() -> dm.Dashboard:
    predictions = f"sum(increase(livereco_flow_prequential_predictions_total[{WINDOW}]))"
    hits = f"sum by (k) (increase(livereco_flow_prequential_hits_total[{WINDOW}]))"
    reciprocal = f"sum by (k) (increase(livereco_flow_prequential_reciprocal_rank_total[{WINDOW}]))"
    at_20 = 'k="20"'
    hr20 = f"sum(increase(livereco_flow_prequential_hits_total{{{at_20}}}[{WINDOW}])) / {predictions}"
    mrr20 = f"sum(increase(livereco_flow_prequential_reciprocal_rank_total{{{at_20}}}[{WINDOW}])) / {predictions}"
    how = ("Prequential: each positive event is scored against the list its user had just before it,"
           " then learnt from. Averaged over the window chosen above.")
    return dashboard("livereco-quality", "livereco / Quality",
                     "Online recommendation quality measured on live traffic (HR@K, MRR@K).", [
        stat_panel("What share of events hit the top 20 of their list (HR@20)?", hr20, "HR@20", "percentunit", how,
                   width=8),
        stat_panel("How high does the next item rank in its list (MRR@20)?", mrr20, "MRR@20", "none", how, width=8),
        stat_panel("How many events were scored in the window?", predictions, "scored", "short",
                   "The denominator of HR@K and MRR@K: few events make a noisy figure.", width=8),
        ratio_panel("How often is the next item in the top K of the list served just before it (HR@K)?",
                    [(ratio_expr(hits, predictions, by=["k"]), "HR@{{k}}")], how, maximum=1),
        timeseries_panel("How high does the next item rank, on average (MRR@K)?",
                         [(ratio_expr(reciprocal, predictions, by=["k"]), "MRR@{{k}}")], "none",
                         "Mean of 1/rank, counting 0 when the item is below K. " + how, maximum=1),
        rate_panel("How many events per second are scored?", "livereco_flow_prequential_predictions_total",
                   legend="scored", width=24),
        row("Lists served and what users did with them (attribution, experiments)"),
        *attribution_panels(),
    ], variables=[window_variable()])


def attribution_panels() -> list[Builder[dm.Panel]]:
    """CTR by variant and by source, and each variant's live HR@10: the dashboard side of `livereco experiment
    report` (which adds the users, conversions, revenue and intervals)."""
    attributed = "livereco_flow_attributed_total"
    clicks = 'kind="click",status="attributed"'
    by_variant = "sum by (variant) (increase({metric}{{{selector}}}[{window}]))"
    scored = "livereco_flow_served_lists_scored_total"
    ctr = ("Clicks carrying a served list's rec_id per item shown (each item of a list answer is one impression)."
           " Averaged over the window chosen above.")
    return [
        timeseries_panel("Which variant's lists get clicked (CTR by variant)?", [(
            by_variant.format(metric=attributed, selector=clicks, window=WINDOW) + " / "
            + by_variant.format(metric=attributed, selector='kind="impression"', window=WINDOW), "{{variant}}")],
            "percentunit", ctr),
        timeseries_panel("Which source's items get clicked (CTR by source)?", [(
            f'sum by (source) (increase({attributed}{{{clicks}}}[{WINDOW}])) / '
            f'sum by (source) (increase({attributed}{{kind="impression"}}[{WINDOW}]))', "{{source}}")],
            "percentunit", ctr.replace("Clicks", "By the source of the clicked item: clicks")),
        timeseries_panel("Does each variant's list hold the user's next item (live HR@10 by variant)?", [(
            by_variant.format(metric=scored, selector='outcome="hit"', window=WINDOW) + " / "
            + by_variant.format(metric=scored, selector="", window=WINDOW), "{{variant}}")],
            "percentunit", "Each served list scored by its user's next event: a hit when that item is in the"
            " list's top 10. Unlike the prequential panels above (the flow's own list), this compares variants.",
            width=24, maximum=1),
    ]


DASHBOARDS = {"overview": overview, "pipeline": pipeline, "quality": quality}
"""File stem (``dashboards/<stem>.json``) → builder."""
