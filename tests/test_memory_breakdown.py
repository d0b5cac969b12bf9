"""The state breakdown's parts at tiny sizes: the instrumented soak, one key at its bound, the heap walk."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from benchmarks.heap_walk import HeapWalk
from benchmarks.state_at_bound import at_bound
from online.compiled import PURE_PYTHON_ENV
from online.contract import Settings
from tests.processes import ROOT

_SOAK = """
import json
from benchmarks.state_breakdown import run_breakdown
from online.compiled import PURE_PYTHON_ENV
from online.contract import Settings
from tests.processes import ROOT
settings = Settings.from_env({}, redis_url="", flow_metrics_port=0)
result = run_breakdown(settings, events=3000, users=300, items=400, points=[1500], sample=50)
print(json.dumps({"events": [p.events for p in result.points], "built": result.built,
                  "rss": result.points[-1].rss_mib, "blocks": result.points[-1].pymalloc.allocated_blocks,
                  "stages": {s.stage: [s.keys, s.walked, s.total_per_key] for s in result.points[-1].stages}}))
"""


def test_the_instrumented_soak_walks_every_stage_at_each_point() -> None:
    # The breakdown counts stage logics by wrapping the classes flows.dataflow builds, which only the Python
    # sources allow (a compiled module keeps its own references): it runs on them, in a child process.
    done = subprocess.run([sys.executable, "-c", _SOAK], capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env={**os.environ, PURE_PYTHON_ENV: "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["events"] == [1500, 3000]
    stages = result["stages"]
    assert set(stages) == {"user_history", "items", "user_lists", "ranker"}
    assert stages["user_history"][0] == 300  # every user came round by 5 x 300 events
    assert 0 < stages["items"][0] <= 400
    for stage in ("user_history", "items", "user_lists"):
        _, walked, per_key = stages[stage]
        assert per_key > 100, stage
        assert 0 < walked <= 50 * 2
    assert result["built"]["user_history"] >= 300
    assert result["rss"] > 0 and result["blocks"] > 0


def test_one_user_and_one_item_at_their_bounds() -> None:
    settings = Settings.from_env({}, redis_url="", flow_metrics_port=0)
    reports, user, item = at_bound(settings, user_events=40, sessions=4, item_links=300)
    fill = {r.stage: r.fill for r in reports}
    assert fill["user_history"]["recent items (mean)"] == settings.recent_items
    assert fill["items"]["neighbours (mean)"] == 2 * settings.neighbours
    assert all(v.bytes > 0 for v in user[:1] + item[:1])


def test_the_heap_walk_splits_a_shared_object_between_its_referrers() -> None:
    alone = HeapWalk()
    alone.state("a", ["".join(["y"] * 200)])  # built at run time: no code object holds it
    shared = "".join(["x"] * 200)  # held here and by the list: half of it is the list's
    both = HeapWalk()
    both.state("a", [shared])
    string = alone.buckets["a"].kinds["str"]
    assert alone.buckets["a"].shared == 0 and string > 200
    assert both.buckets["a"].kinds["str"] == string / 2 == both.buckets["a"].shared
