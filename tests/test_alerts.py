"""The alert rules in deploy/prometheus/: generated, valid, unit-tested for every alert, and true to real metrics.

* ``alerts.yml`` is what ``python -m deploy.prometheus.build`` writes (the SLO and the stream bound are
  parameters: Prometheus rule files cannot read environment variables);
* ``promtool check rules`` and ``promtool test rules alerts_test.yml`` pass (skipped, saying so, without
  Debian's ``prometheus`` package, which CI installs), and every alert has a case there where it fires and
  one where it must not, on input series the alert reads;
* every metric an alert reads is one the server or the flow defines, every runbook is a section of
  docs/monitoring.md;
* against a real Prometheus scraping real ``livereco flow`` and ``livereco serve`` processes under traffic,
  every rule's expression evaluates, each of its selectors (metric name and label matchers) matches scraped
  series and its compared quantity is a number; stopping the flow turns ``LiverecoFlowDown`` (and, with a
  2 s ``LIVERECO_FLOW_STALE_S``, ``LiverecoEventsNotProcessed``) pending, then ``LiverecoFlowDown`` firing
  (the test's copy of the rules gives it ``for: 5s`` instead of 1 min; everything else is the shipped file).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from deploy.prometheus.build import ALERTS, render
from deploy.prometheus.rules import Rule, rules
from flows.embedded_redis import free_port
from tests.processes import ROOT, get, livereco_process, post, process_env
from tests.real_prometheus import MISSING, PROMETHEUS, has_number, prometheus_scraping, query

yaml = pytest.importorskip("yaml")

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="no 'promtool': install Debian's prometheus package (CI does as root)")
RULES_DIR = ROOT / "deploy" / "prometheus"
CASES = RULES_DIR / "alerts_test.yml"
MONITORING = ROOT / "docs" / "monitoring.md"


def shipped_rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def selectors(expr: str) -> list[str]:
    """Every series selector in a PromQL expression: a metric name and its ``{...}`` matchers, if any
    (quoted label values may hold braces: ``route="/v1/users/{user_id}/recommendations"``).

    >>> selectors('sum by (le) (rate(a_total{route="/x/{id}",k="2"}[5m])) > 1 and on () up{job="f"} == 0 or b')
    ['a_total{route="/x/{id}",k="2"}', 'up{job="f"}', 'b']
    """
    found, i = [], 0
    names = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
    operators = {"and", "or", "unless", "offset", "bool"}
    label_lists = {"by", "without", "on", "ignoring", "group_left", "group_right"}
    while i < len(expr):
        ch = expr[i]
        if ch == '"':
            i = expr.index('"', i + 1) + 1
            continue
        match = names.match(expr, i)
        if not match or (i and (expr[i - 1].isalnum() or expr[i - 1] in "_.")):
            i += 1
            continue
        name, i = match.group(), match.end()
        rest = expr[i:].lstrip()
        if name in label_lists:  # by (le): label names, not metrics
            i = expr.index(")", i) + 1
            continue
        if name in operators or rest.startswith(("(", "by ", "by(", "without")):  # a function or an aggregation
            continue
        if rest.startswith("{"):
            start = expr.index("{", i)
            j, quoted = start + 1, False
            while quoted or expr[j] != "}":
                quoted ^= expr[j] == '"'
                j += 1
            found.append(name + expr[start:j + 1])
            i = j + 1
        else:
            found.append(name)
    return list(dict.fromkeys(found))


def metric_names(expr: str) -> set[str]:
    return {s.split("{", 1)[0] for s in selectors(expr)}


# --- the generated file --------------------------------------------------------------------------------------------
def test_committed_rules_are_what_the_code_builds(tmp_path: Path) -> None:
    assert ALERTS.read_text() == render(), "alerts.yml is stale: run python -m deploy.prometheus.build"
    out = tmp_path / "alerts.yml"
    out.write_text(ALERTS.read_text().replace("> 0.05", "> 0.005"))
    check = [sys.executable, "-m", "deploy.prometheus.build", "--check", "--out", str(out)]
    result = subprocess.run(check, cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 1 and "is stale" in result.stderr


def test_the_slo_and_the_stream_bound_are_parameters(tmp_path: Path) -> None:
    out = tmp_path / "alerts.yml"
    build = [sys.executable, "-m", "deploy.prometheus.build", "--slo-ms", "100", "--stream-maxlen", "20000",
             "--out", str(out)]
    subprocess.run(build, cwd=ROOT, check=True, capture_output=True)
    text = out.read_text()
    assert "--slo-ms 100 --stream-maxlen 20000" in text.splitlines()[0]
    slow = next(r for r in yaml.safe_load(text)["groups"][0]["rules"] if r["alert"] == "LiverecoServingSlow")
    assert "[5m]))) > 0.1\n" in slow["expr"] and "100 ms SLO" in slow["annotations"]["summary"]
    assert "max by (partition) (livereco_serving_stream_entries) > 16000" in text
    bad = subprocess.run([*build[:4], "30", "--out", str(out)], cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 2 and "not a bucket bound" in bad.stderr
    if PROMTOOL:
        result = subprocess.run([PROMTOOL, "check", "rules", str(out)], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_severity_annotations_and_a_runbook_section() -> None:
    shipped = shipped_rules()
    assert [r["alert"] for r in shipped] == [r.alert for r in rules()]
    assert len({r["alert"] for r in shipped}) == len(shipped)
    headings = set(re.findall(r"^### (\w+)$", MONITORING.read_text(), flags=re.M))
    for rule in shipped:
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        annotations = rule["annotations"]
        assert set(annotations) == {"summary", "description", "runbook"}, rule["alert"]
        assert annotations["runbook"] == f"docs/monitoring.md#{rule['alert'].lower()}"
        assert rule["alert"] in headings, f"docs/monitoring.md has no runbook section '### {rule['alert']}'"
        assert "$value" in annotations["summary"] + annotations["description"] or rule["expr"].rstrip().endswith(
            ("== 0", "== 1", 'absent(up{job="livereco-flow"})')), f"{rule['alert']}: say the value"


def test_alerts_read_only_metrics_livereco_defines() -> None:
    """Without promtool or Prometheus too: a typo'd metric name fails here."""
    from prometheus_client import REGISTRY

    import flows.metrics  # noqa: F401  (defines the flow's metrics on the default registry)
    from serving.metrics import ServingMetrics

    families = [*ServingMetrics(partitions=1).registry.collect(), *REGISTRY.collect()]
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}
    defined = {family.name + suffix for family in families for suffix in suffixes.get(family.type, ())} | {"up"}
    used = {name for rule in shipped_rules() for name in metric_names(rule["expr"])}
    assert {"livereco_serving_flow_stalled", "livereco_flow_prequential_hits_total", "up"} <= used
    assert used <= defined, sorted(used - defined)


def test_rules_doctests() -> None:
    import doctest

    import deploy.prometheus.rules as module

    assert doctest.testmod(module, optionflags=doctest.ELLIPSIS).failed == 0


# --- promtool -------------------------------------------------------------------------------------------------------
@needs_promtool
def test_promtool_checks_the_rules() -> None:
    result = subprocess.run([str(PROMTOOL), "check", "rules", str(ALERTS)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules())} rules found" in result.stdout


@needs_promtool
def test_promtool_unit_tests_pass() -> None:
    result = subprocess.run([str(PROMTOOL), "test", "rules", CASES.name], capture_output=True, text=True,
                            cwd=RULES_DIR)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_firing_and_a_quiet_case_on_series_it_reads() -> None:
    cases = yaml.safe_load(CASES.read_text())
    assert cases["rule_files"] == ["alerts.yml"]
    exprs = {rule["alert"]: rule["expr"] for rule in shipped_rules()}
    firing: dict[str, int] = dict.fromkeys(exprs, 0)
    quiet: dict[str, int] = dict.fromkeys(exprs, 0)
    for group in cases["tests"]:
        fed = {s["series"].split("{", 1)[0] for s in group["input_series"]}
        for case in group.get("alert_rule_test", []):
            name = case["alertname"]
            assert name in exprs, f"a case for an alert alerts.yml does not have: {name}"
            if case.get("exp_alerts"):
                firing[name] += 1
            else:
                # A quiet case must be quiet because of the values, not for want of the series the alert reads.
                assert fed & metric_names(exprs[name]), f"{group.get('name')}: {name} reads none of {sorted(fed)}"
                quiet[name] += 1
    assert not [a for a, n in firing.items() if not n], "alerts with no firing case"
    assert not [a for a, n in quiet.items() if not n], "alerts with no quiet case"


# --- a real Prometheus ----------------------------------------------------------------------------------------------
def alert_states(prom: str) -> dict[str, set[str]]:
    status, body = get(f"{prom}/api/v1/alerts")
    assert status == 200, body
    states: dict[str, set[str]] = {}
    for alert in orjson.loads(body)["data"]["alerts"]:
        states.setdefault(alert["labels"]["alertname"], set()).add(alert["state"])
    return states


def send_traffic(base: str, r: int) -> None:
    """Events that rewrite users' lists (and give the prequential scorer predictions), then reads."""
    events = [{"user_id": f"u{u}", "item_id": f"i{(u * 7 + k + r * 3) % 40}", "type": "view",
               "event_id": f"e{r}-{u}-{k}"} for u in range(12) for k in range(3)]
    status, _ = post(f"{base}/v1/events", orjson.dumps(events))
    assert status == 202
    for u in range(12):
        assert get(f"{base}/v1/users/u{u}/recommendations?n=5")[0] == 200
    get(f"{base}/v1/trending")


def test_the_real_prometheus_copy_only_shortens_flow_down() -> None:
    """The test copy of the rules differs from the shipped file only in LiverecoFlowDown's ``for``."""
    text = ALERTS.read_text()
    copy = short_flow_down(text)
    assert copy != text
    assert copy.replace("for: 5s", "for: 1m", 1) == text


def short_flow_down(text: str) -> str:
    head, sep, tail = text.partition("- alert: LiverecoFlowDown\n")
    assert sep, "no LiverecoFlowDown in alerts.yml"
    return head + sep + tail.replace("for: 1m", "for: 5s", 1)


@pytest.mark.slow
@pytest.mark.prometheus
@pytest.mark.skipif(PROMETHEUS is None, reason=MISSING)
def test_every_rule_reads_real_metrics_and_a_stopped_flow_turns_its_alert_pending(
        redis_url: str, namespace: str) -> None:
    built: list[Rule] = rules()
    port, metrics_port = free_port(), free_port()
    env = process_env(redis_url, namespace, port, metrics_port, LIVERECO_FLOW_STALE_S="2")
    base, flow_metrics = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{metrics_port}/metrics"
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp, \
            livereco_process(env, "serve", ready_url=f"{base}/readyz"), \
            livereco_process(env, "flow", ready_url=flow_metrics) as flow, \
            prometheus_scraping(base, flow_metrics, Path(tmp), short_flow_down(ALERTS.read_text())) as prom:
        # 1. Under traffic, every rule evaluates, every selector matches series, every compared quantity is a number.
        problems: dict[str, str] = {}
        deadline, rounds = time.monotonic() + 30, 0
        while time.monotonic() < deadline:
            send_traffic(base, rounds)
            rounds += 1
            if rounds < 4:  # a rate needs two scrapes of a changed counter
                time.sleep(1)
                continue
            problems = {}
            for rule in built:
                query(prom, rule.expr)  # an error (bad PromQL, a bad label matcher) fails here
                for selector in selectors(rule.expr):
                    if not query(prom, selector):
                        problems[f"{rule.alert}: {selector}"] = "no series"
                if not has_number(query(prom, rule.signal)):
                    problems[f"{rule.alert}: {rule.signal}"] = "not a number"
            if not problems:
                break
            time.sleep(1)
        assert not problems, "rules reading nothing real:\n" + "\n".join(f"{k}: {v}" for k, v in problems.items())
        assert alert_states(prom).get("LiverecoFlowDown") is None
        # 2. Stop the flow under traffic: its target goes down, events wait unread.
        flow.terminate()
        flow.wait(timeout=15)
        seen: dict[str, set[str]] = {}
        deadline = time.monotonic() + 25
        while time.monotonic() < deadline:
            send_traffic(base, rounds)
            rounds += 1
            for name, states in alert_states(prom).items():
                seen.setdefault(name, set()).update(states)
            if {"pending", "firing"} <= seen.get("LiverecoFlowDown", set()) and \
                    "pending" in seen.get("LiverecoEventsNotProcessed", set()):
                break
            time.sleep(0.3)
        assert {"pending", "firing"} <= seen.get("LiverecoFlowDown", set()), seen
        assert "pending" in seen.get("LiverecoEventsNotProcessed", set()), seen
        assert "firing" not in seen.get("LiverecoEventsNotProcessed", set())  # its for: is the shipped 2 min
    print(f"{len(built)} rules checked against real metrics, flow stopped, alerts seen: {seen};"
          f" {time.monotonic() - started:.1f} s")
