"""The state breakdown's parts at tiny sizes: the instrumented soak, one key at its bound, the heap walk."""

from __future__ import annotations

from benchmarks.heap_walk import HeapWalk
from benchmarks.state_at_bound import at_bound
from benchmarks.state_breakdown import run_breakdown
from online.contract import Settings


def test_the_instrumented_soak_walks_every_stage_at_each_point() -> None:
    settings = Settings.from_env({}, redis_url="", flow_metrics_port=0)
    result = run_breakdown(settings, events=3000, users=300, items=400, points=[1500], sample=50)
    assert [p.events for p in result.points] == [1500, 3000]
    last = result.points[-1]
    stages = {s.stage: s for s in last.stages}
    assert set(stages) == {"user_history", "items", "user_lists", "ranker"}
    assert stages["user_history"].keys == 300  # every user came round by 5 x 300 events
    assert 0 < stages["items"].keys <= 400
    for stage in ("user_history", "items", "user_lists"):
        assert stages[stage].total_per_key > 100, stage
        assert 0 < stages[stage].walked <= 50 * 2
    assert result.built["user_history"] >= 300
    assert last.rss_mib > 0 and last.pymalloc.allocated_blocks > 0


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
