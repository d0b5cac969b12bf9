"""livereco's alert rules, with the thresholds that depend on a deployment as parameters.

Prometheus rule files cannot read environment variables, so ``alerts.yml`` is generated from
:func:`rules` by ``python -m deploy.prometheus.build`` (``--slo-ms``, ``--stream-maxlen``), and the
committed file is the default build. Every rule names a runbook: a section of ``docs/monitoring.md``
titled with the alert's name.

>>> [r.alert for r in rules()][:3]
['LiverecoServingSlow', 'LiverecoServingErrors', 'LiverecoServerDown']
>>> rules(slo_s=0.03)
Traceback (most recent call last):
...
ValueError: the latency SLO 0.03 s is not a bucket bound of livereco_serving_request_duration_seconds (..., 0.01, 0.025, 0.05, ...): histogram_quantile would interpolate inside a bucket
"""

from __future__ import annotations

from dataclasses import dataclass

from online.contract.settings import Settings
from serving.metrics import LATENCY_BUCKETS

__all__ = ["DEFAULT_SLO_S", "FAST", "SLOW", "Rule", "rules"]

DEFAULT_SLO_S = 0.05
"""p99 of GET recommendations: 5x the measured p99 at 1,000 req/s (10.2 ms, docs/performance.md)."""
NEAR_BOUND = 0.8
"""Share of LIVERECO_STREAM_MAXLEN at which a partition is about to refuse events."""
QUALITY_FLOOR = 0.7
"""Online HR@20 over the last hour below this share of its previous 24 h: a quality drop."""

FAST, SLOW = "livereco", "livereco-baselines"
"""Rule groups: the fast one at the global evaluation interval; the one reading 6 h and 1 d ranges once a minute."""
GROUP_INTERVALS = {FAST: None, SLOW: "1m"}

RECS = 'route="/v1/users/{user_id}/recommendations",method="GET"'
NOT_PROBES = 'route!~"/healthz|/readyz|/metrics"'
"""Requests from clients: a load balancer's probes of a stalled flow (/readyz 503) are not errors served."""


@dataclass(frozen=True)
class Rule:
    """One alert. ``signal`` is the quantity compared (it must return a number from a live system;
    tests/test_alerts.py checks it does), ``condition`` what follows it, e.g. ``> 0.05`` and any guard."""

    alert: str
    group: str
    signal: str
    condition: str
    for_: str
    severity: str
    summary: str
    description: str

    @property
    def expr(self) -> str:
        return f"{self.signal} {self.condition}"

    @property
    def runbook(self) -> str:
        return f"docs/monitoring.md#{self.alert.lower()}"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:g} ms"


def rules(slo_s: float = DEFAULT_SLO_S, stream_maxlen: int | None = None) -> list[Rule]:
    """Every alert; ``slo_s`` must be a bucket bound of the latency histogram, ``stream_maxlen``
    is the deployment's LIVERECO_STREAM_MAXLEN (default: the setting's default)."""
    if slo_s not in LATENCY_BUCKETS:
        near = ", ".join(f"{b:g}" for b in LATENCY_BUCKETS if slo_s / 3 <= b <= slo_s * 3)
        raise ValueError(f"the latency SLO {slo_s:g} s is not a bucket bound of livereco_serving_request_duration_seconds"
                         f" (..., {near}, ...): histogram_quantile would interpolate inside a bucket")
    maxlen = Settings().stream_maxlen if stream_maxlen is None else stream_maxlen
    near_bound = int(maxlen * NEAR_BOUND)
    dead = "livereco_flow_dead_letters_total"
    hr_now = ('sum(rate(livereco_flow_prequential_hits_total{k="20"}[1h]))'
              " / sum(rate(livereco_flow_prequential_predictions_total[1h]))")
    hr_before = ('sum(rate(livereco_flow_prequential_hits_total{k="20"}[1d] offset 1h))'
                 " / sum(rate(livereco_flow_prequential_predictions_total[1d] offset 1h))")
    return [
        # --- serving ---------------------------------------------------------------------------------------------
        Rule("LiverecoServingSlow", FAST,
             f"histogram_quantile(0.99, sum by (le) (rate(livereco_serving_request_duration_seconds_bucket{{{RECS}}}[5m])))",
             f"> {slo_s:g}\nand on () sum(rate(livereco_serving_request_duration_seconds_count{{{RECS}}}[5m])) > 1",
             "10m", "critical",
             f"p99 recommendation latency {{{{ $value | humanizeDuration }}}} is above the {_ms(slo_s)} SLO",
             "GET /v1/users/{user_id}/recommendations, all servers, over 5 min (for 10 min) with at least 1 request/s:"
             f" p99 is {{{{ $value | humanizeDuration }}}}, the SLO is {_ms(slo_s)} (measured p99: 10 ms at 1,000 req/s"
             " on one process). Overloaded servers or a slow Redis."),
        Rule("LiverecoServingErrors", FAST,
             f'sum(rate(livereco_serving_requests_total{{status=~"5..",{NOT_PROBES}}}[5m]))'
             f" / sum(rate(livereco_serving_requests_total{{{NOT_PROBES}}}[5m]))",
             f"> 0.01\nand on () sum(rate(livereco_serving_requests_total{{status=~\"5..\",{NOT_PROBES}}}[1m]))"
             f" / sum(rate(livereco_serving_requests_total{{{NOT_PROBES}}}[1m])) > 0.01"
             f"\nand on () sum(rate(livereco_serving_requests_total{{{NOT_PROBES}}}[5m])) > 1",
             "5m", "critical",
             "{{ $value | humanizePercentage }} of requests answered 5xx",
             "Over 5 min, {{ $value | humanizePercentage }} of client requests (probes excluded, at least 1 request/s)"
             " were answered 500 or 503, and still above 1% over the last minute: an outage for some users. 503: Redis unreachable or"
             " POST /v1/events refused (backlog); 500: a bug, see the server's log."),
        Rule("LiverecoServerDown", FAST, 'up{job="livereco-server"}', "== 0", "1m", "critical",
             "server {{ $labels.instance }} is down",
             "Prometheus cannot scrape livereco serve at {{ $labels.instance }} (up == 0): it is not running"
             " or not answering."),
        Rule("LiverecoRedisDown", FAST, "livereco_serving_redis_up", "== 0", "1m", "critical",
             "server {{ $labels.instance }} cannot reach Redis",
             "livereco_serving_redis_up is {{ $value }} on {{ $labels.instance }}: its last Redis call failed,"
             " so it answers 503."),
        Rule("LiverecoStreamNearBound", FAST, "max by (partition) (livereco_serving_stream_entries)",
             f"> {near_bound}", "2m", "warning",
             "stream partition {{ $labels.partition }} holds {{ $value | humanize }} entries, near the bound",
             f"Partition {{{{ $labels.partition }}}} holds {{{{ $value | humanize }}}} entries; at {maxlen}"
             f" (LIVERECO_STREAM_MAXLEN) POST /v1/events answers 503. Producers trim only what the flow has"
             f" read and snapshotted, so a long stream is a flow behind or down. This file was built for"
             f" LIVERECO_STREAM_MAXLEN={maxlen} (alert at {NEAR_BOUND:.0%})."),
        Rule("LiverecoIngestRefused", FAST, "sum(increase(livereco_serving_backlog_refusals_total[1m]))",
             "> 0", "5m", "critical",
             "POST /v1/events refused {{ $value | humanize }} events in the last minute",
             "For 5 min the servers have answered POST /v1/events with 503 ({{ $value | humanize }} refusals in"
             " the last minute): a stream partition holds LIVERECO_STREAM_MAXLEN entries the flow has not released"
             " (the flow is too slow or down). Producers that do not retry lose events."),
        # --- the flow --------------------------------------------------------------------------------------------
        Rule("LiverecoFlowDown", FAST, 'up{job="livereco-flow"}', '== 0\nor absent(up{job="livereco-flow"})',
             "1m", "critical",
             "the flow's metrics endpoint is down{{ with $labels.instance }}: {{ . }}{{ end }}",
             "Prometheus cannot scrape livereco flow{{ with $labels.instance }} at {{ . }}{{ else }}: it has no"
             " livereco-flow target at all{{ end }}. Lists are not being updated."),
        Rule("LiverecoEventsNotProcessed", FAST, "max by (partition) (livereco_serving_flow_stalled)", "== 1",
             "2m", "critical",
             "events accepted but not processed on partition {{ $labels.partition }}",
             "A stream partition holds unread events and the flow's heartbeat is older than LIVERECO_FLOW_STALE_S"
             " (flow down or stuck; /readyz answers 503)."),
        Rule("LiverecoFlowRedisFailing", FAST, "sum(increase(livereco_flow_redis_errors_total[1m]))", "> 5",
             "2m", "critical",
             "the flow has failed to read or write Redis for 2 minutes (it backs off and retries):"
             " lists are not being updated",
             "{{ $value | humanize }} failed Redis calls in the last minute (the flow retries at most every 2 s)."),
        Rule("LiverecoFreshnessSlow", FAST,
             "histogram_quantile(0.99, sum by (le) (rate(livereco_flow_freshness_seconds_bucket[5m])))",
             "> 1\nand on () sum(rate(livereco_flow_freshness_seconds_count[5m])) > 0.2", "10m", "warning",
             "p99 freshness {{ $value | humanizeDuration }} is above 1 s",
             "p99 time from an event's acceptance to its user's new list in Redis is {{ $value | humanizeDuration }}"
             " over 5 min, for 10 min (at least 0.2 lists written/s; measured p99: 20 ms at 1,600 events/s)."),
        Rule("LiverecoFlowLagging", FAST, "max by (stream) (livereco_flow_stream_lag_seconds)", "> 60", "5m",
             "warning",
             "the flow is {{ $value | humanizeDuration }} behind on {{ $labels.stream }}",
             "The last entry the flow read from {{ $labels.stream }} is {{ $value | humanizeDuration }} older than"
             " the newest, for 5 min."),
        Rule("LiverecoFlowLagGrowing", FAST, "max by (stream) (livereco_flow_stream_lag_seconds)",
             "> 10\nand max by (stream) (deriv(livereco_flow_stream_lag_seconds[10m])) > 0.05", "10m", "warning",
             "the flow's lag on {{ $labels.stream }} keeps growing ({{ $value | humanizeDuration }})",
             "The flow is {{ $value | humanizeDuration }} behind on {{ $labels.stream }} and the lag has grown"
             " for 10 min (by more than 3 s a minute): events arrive faster than the flow processes them."),
        Rule("LiverecoDeadLetters", FAST, f"sum(rate({dead}[5m]))", "> 1", "10m", "warning",
             "{{ printf \"%.2f\" $value }} events/s are dead-lettered",
             "More than one event per second, for 10 min, goes to the dead-letter stream"
             " ({{ printf \"%.2f\" $value }}/s over 5 min)."),
        Rule("LiverecoStageFailing", FAST, f'sum by (stage, reason) (increase({dead}{{stage!="parse"}}[5m]))', "> 0",
             "0m", "warning",
             "the flow's {{ $labels.stage }} stage dead-lettered {{ $value | humanize }} events ({{ $labels.reason }})",
             "{{ $value | humanize }} events in the last 5 min failed in stage {{ $labels.stage }}"
             " (reason {{ $labels.reason }}), not in validation: a bug or a write Redis rejected. Their updates"
             " are lost from the model; the events are in the dead-letter stream."),
        Rule("LiverecoDeadLetterSpike", SLOW, f"sum by (stage, reason) (rate({dead}[10m]))",
             f"> 3 * (sum by (stage, reason) (rate({dead}[6h] offset 10m))"
             f" or sum by (stage, reason) (rate({dead}[10m])) * 0)"
             f"\nand sum by (stage, reason) (rate({dead}[10m])) > 0.1", "5m", "warning",
             "dead letters ({{ $labels.stage }}/{{ $labels.reason }}) at {{ printf \"%.2f\" $value }}/s,"
             " 3x their 6 h baseline",
             "{{ printf \"%.2f\" $value }} events/s dead-lettered by stage {{ $labels.stage }} with reason"
             " {{ $labels.reason }} over 10 min: more than 3 times their rate over the 6 h before (and above"
             " 0.1/s). A producer started sending malformed events, or a stage started failing."),
        Rule("LiverecoQualityDrop", SLOW, f"({hr_now})",
             f"< {QUALITY_FLOOR:g} * ({hr_before})"
             "\nand on () sum(increase(livereco_flow_prequential_predictions_total[1h])) > 500"
             "\nand on () sum(increase(livereco_flow_prequential_predictions_total[1d] offset 1h)) > 5000",
             "15m", "warning",
             "online HR@20 fell to {{ $value | humanizePercentage }}",
             f"Online HR@20 over the last hour is {{{{ $value | humanizePercentage }}}}, below {QUALITY_FLOOR:.0%}"
             f" of its value over the 24 h before ({{{{ with query `{hr_before}` }}}}{{{{ . | first | value"
             " | humanizePercentage }}{{ end }}), with at least 500 predictions in the hour."),
    ]
