"""Where the evaluation's time goes: CPU per dataflow stage, unprofiled.

Runs ``livereco eval``'s livereco model (streaming) once, timing each stage
logic's ``on_batch`` and the parser with the thread's CPU clock (robust to
other jobs on a shared machine, unlike wall time), and prints each stage's
share of the run's CPU; the rest is Bytewax moving items between operators.

    .venv/bin/python -m benchmarks.eval_stages [LOG]     # default ../shared/data/rsc15-100k

``LIVERECO_GC_INTERVAL_S=0`` runs it with Python's automatic garbage
collector, to see what the flow's collection policy saves.
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from benchmarks.machine import machine_line
from flows import dataflow, evaluation, stages
from flows.stages.items import ItemListedLogic
from flows.stages.ranker import RankerListedLogic
from flows.stages.user_lists import UserListListedLogic
from online.contract import Settings

ROOT = Path(__file__).resolve().parents[1]
# The dataflow runs the listed logics (one emit per key batch), each with its own ``on_batch``; the evaluation
# model the item-by-item ones: both are timed, under the stage's one name.
STAGES = (stages.UserHistoryLogic, stages.ItemLogic, stages.UserListLogic, stages.RankerLogic,
          ItemListedLogic, UserListListedLogic, RankerListedLogic)


def _timed(spent: dict[str, float], name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def timed(*args: Any) -> Any:
        started = time.thread_time()
        try:
            return fn(*args)
        finally:
            spent[name] += time.thread_time() - started

    return timed


def main() -> int:
    log = sys.argv[1] if len(sys.argv) > 1 else str(ROOT.parent / "shared" / "data" / "rsc15-100k")
    settings = replace(Settings.from_env(), flow_metrics_port=0)
    data = evaluation.load(log, settings)
    spent: dict[str, float] = defaultdict(float)
    originals = {cls: cls.on_batch for cls in STAGES}
    for cls in STAGES:
        cls.on_batch = _timed(spent, cls.__name__.replace("Listed", ""), cls.on_batch)  # type: ignore[method-assign]
    parse = dataflow.parse_entries  # compiled, build_flow calls it directly: only a pure-Python run times it
    dataflow.parse_entries = _timed(spent, "parse", parse)
    try:
        cpu_started = time.process_time()
        metrics, events_per_s, _ = evaluation.evaluate_livereco(data, settings)
        cpu = time.process_time() - cpu_started
    finally:
        for cls, on_batch in originals.items():
            cls.on_batch = on_batch  # type: ignore[method-assign]
        dataflow.parse_entries = parse
    print(machine_line())
    report = metrics.report(len(data.catalog))
    print(f"{data.name}: {len(data.events):,} events, {events_per_s:,.0f} events/s wall, "
          f"{len(data.events) / cpu:,.0f} events per CPU-second; HR@20 {report['HR@20']:.4f}, "
          f"MRR@20 {report['MRR@20']:.4f}")
    print("| stage | CPU s | share |\n|---|---|---|")
    for name, seconds in sorted(spent.items(), key=lambda pair: -pair[1]):
        print(f"| {name} | {seconds:.2f} | {100 * seconds / cpu:.0f}% |")
    rest = cpu - sum(spent.values())
    also = "" if "parse" in spent else " (and parsing: compiled, it is timed only with LIVERECO_PURE_PYTHON=1)"
    print(f"| Bytewax and the rest{also} | {rest:.2f} | {100 * rest / cpu:.0f}% |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
