"""Grafana dashboards as code: the committed JSON is what deploy/grafana/ builds, and every query returns data.

The second test runs real ``livereco flow`` and ``livereco serve`` processes, posts traffic, lets
Debian's ``prometheus`` scrape both, and runs every PromQL expression of every panel of every
committed dashboard through Prometheus's HTTP API: a typo'd metric or label cannot survive.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
import pytest

from deploy.grafana.build import DASHBOARD_DIR, expressions, stale, write
from deploy.grafana.dashboards import DASHBOARDS
from tests.processes import ROOT, flow_and_server, get, post
from tests.real_prometheus import MISSING, PROMETHEUS, has_number, prometheus_scraping, query

PROVISIONING = ROOT / "deploy" / "grafana" / "provisioning"
# What Grafana substitutes before it sends a query; 1m spans dozens of the test's 1 s scrapes.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$window": "1m"}


def committed() -> dict[str, dict[str, object]]:
    return {path.stem: json.loads(path.read_text()) for path in sorted(DASHBOARD_DIR.glob("*.json"))}


def test_committed_dashboards_are_what_the_code_builds(tmp_path: Path) -> None:
    written = write(tmp_path)
    assert sorted(p.name for p in written) == sorted(p.name for p in DASHBOARD_DIR.glob("*.json"))
    for path in written:
        assert path.read_text() == (DASHBOARD_DIR / path.name).read_text(), \
            f"{path.name} is stale: run python -m deploy.grafana.build"
    assert stale() == []


def test_check_mode_reports_a_stale_dashboard(tmp_path: Path) -> None:
    write(tmp_path)
    overview = tmp_path / "overview.json"
    overview.write_text(overview.read_text().replace("livereco_serving_requests_total", "livereco_serving_request_total"))
    result = subprocess.run([sys.executable, "-m", "deploy.grafana.build", "--check", "--out", str(tmp_path)],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 1
    assert "overview.json is stale" in result.stderr
    assert "pipeline" not in result.stderr


def test_every_panel_asks_one_question_of_livereco_metrics() -> None:
    boards = committed()
    assert set(boards) == set(DASHBOARDS) == {"overview", "pipeline", "quality"}
    for stem, board in boards.items():
        assert board["uid"] == f"livereco-{stem}"
        panels = [p for p in board["panels"] if p["type"] != "row"]  # type: ignore[attr-defined]
        titles = [p["title"] for p in panels]
        assert len(titles) == len(set(titles)), f"{stem}: two panels ask the same question"
        ids = [p["id"] for p in board["panels"]]  # type: ignore[attr-defined]
        assert len(ids) == len(set(ids))
        for panel in panels:
            assert panel["title"].endswith("?"), f"{stem}: '{panel['title']}' is not a question"
            assert panel["targets"], f"{stem}: '{panel['title']}' has no query"
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    exprs = [expr for board in boards.values() for _, expr in expressions(board)]
    for needed in ("livereco_serving_request_duration_seconds_bucket", "livereco_serving_fallbacks_total",
                   "livereco_flow_stream_lag_seconds", "livereco_flow_freshness_seconds_bucket",
                   'livereco_flow_dead_letters_total', "livereco_flow_prequential_hits_total",
                   "livereco_flow_prequential_reciprocal_rank_total", 'status=~"5.."'):
        assert any(needed in expr for expr in exprs), needed


def test_provisioning_points_grafana_at_the_dashboards_and_prometheus() -> None:
    yaml = pytest.importorskip("yaml")
    datasources = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus" and source["isDefault"] is True
    providers = yaml.safe_load((PROVISIONING / "dashboards" / "livereco.yml").read_text())
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards/livereco"


def substitute(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"a Grafana variable the test does not know: {expr}"
    return expr


def send_traffic(base: str, r: int) -> None:
    """Round ``r``: new events that rewrite users' lists (and give the ranker something to score), then requests
    of every kind, a bad event and an unknown user among them."""
    events = [{"user_id": f"u{u}", "item_id": f"i{(u * 7 + k + r * 3) % 60}", "type": "view",
               "event_id": f"e{r}-{u}-{k}", "context": {"category": f"c{(u + k) % 3}"}}
              for u in range(12) for k in range(3)]
    assert post(f"{base}/v1/events", orjson.dumps(events))[0] == 202
    # A bad event is rejected (a 4xx, events_rejected{field}) and is not written.
    assert post(f"{base}/v1/events", orjson.dumps({"user_id": "u1", "item_id": "i1", "type": "teleport"}))[0] == 422
    clicks = []
    for u in range(12):
        status, body = get(f"{base}/v1/users/u{u}/recommendations?n=5")
        assert status == 200
        answer = orjson.loads(body)
        if answer["items"] and u % 3 == 0:  # a click on the list's first item, credited to the list by its rec_id
            clicks.append({"user_id": f"u{u}", "item_id": answer["items"][0]["item_id"], "type": "click",
                           "event_id": f"c{r}-{u}", "rec_id": answer["rec_id"]})
    if clicks:
        assert post(f"{base}/v1/events", orjson.dumps(clicks))[0] == 202
    assert get(f"{base}/v1/users/stranger-{r}/recommendations")[0] == 200  # falls back: unknown
    assert get(f"{base}/v1/users/stranger-{r}/profile")[0] == 404
    assert get(f"{base}/v1/items/i1/similar")[0] == 200
    assert get(f"{base}/v1/trending")[0] == 200


@pytest.mark.slow
@pytest.mark.prometheus
@pytest.mark.skipif(PROMETHEUS is None, reason=MISSING)
def test_every_dashboard_query_returns_data_from_real_prometheus(redis_url: str, namespace: str) -> None:
    panels = [(stem, title, expr) for stem, board in committed().items() for title, expr in expressions(board)]
    with tempfile.TemporaryDirectory() as tmp, flow_and_server(redis_url, namespace) as (base, flow_metrics), \
            prometheus_scraping(base, flow_metrics, Path(tmp)) as prom:
        missing: dict[str, str] = {}
        deadline = time.monotonic() + 40
        rounds = 0
        while time.monotonic() < deadline:
            send_traffic(base, rounds)
            rounds += 1
            if rounds < 4:  # a rate needs two scrapes of a changed counter: keep traffic flowing a few seconds
                time.sleep(1)
                continue
            missing = {}
            for stem, title, expr in panels:
                result = query(prom, substitute(expr))
                if not has_number(result):
                    missing[f"{stem}: {title}: {expr}"] = json.dumps(result)[:200]
            if not missing:
                break
            time.sleep(1)
        assert not missing, "panel queries with no data:\n" + "\n".join(f"{k} -> {v}" for k, v in missing.items())
        # The queries read real traffic, not just pre-initialised zeros.
        assert float(query(prom, 'sum(livereco_flow_events_total{type="view"})')[0]["value"][1]) > 0  # type: ignore[index]
        hr = query(prom, substitute(next(e for s, t, e in panels if "(HR@20)" in t)))
        assert 0 <= float(hr[0]["value"][1]) <= 1  # type: ignore[index]
