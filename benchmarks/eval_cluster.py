"""The evaluation as a Bytewax cluster of N processes on this machine: does a second core help?

Runs the livereco eval flow (the same one ``livereco eval`` runs) with
``cluster_main`` in N forked processes, one worker each, on ``127.0.0.1``;
each process collects the scores its sink partition received and sends them
back. Prints HR@20 / MRR@20 and events/s (events over the slowest process's
flow time) for each N given.

    .venv/bin/python -m benchmarks.eval_cluster [LOG] [--processes 2 1]

On the 2-core development machine (2026-11-21): 2 processes 2,669 events/s
(HR@20 0.7000), 1 process 4,346 (0.7008): what crosses between processes is
pickled, and that costs more than the second core gives.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time
from dataclasses import replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from bytewax._bytewax import cluster_main
from bytewax.testing import TestingSource

from benchmarks.machine import machine_line
from flows import evaluation
from flows.dataflow import build_flow
from flows.embedded_redis import free_port
from flows.gc_policy import periodic_collection
from online.contract import Settings
from online.metrics import PrequentialMetrics

ROOT = Path(__file__).resolve().parents[1]


def _process(data: evaluation.EvalData, settings: Settings, addresses: list[str], proc_id: int,
             conn: Connection) -> None:
    sink = evaluation._CollectingSink()
    source = TestingSource(evaluation._entries(data.events), batch_size=settings.read_count)
    flow = build_flow(settings, source=source, sink=sink, flow_id="livereco-eval", recoverable=False)
    started = time.perf_counter()
    with periodic_collection(settings.gc_interval_s):
        cluster_main(flow, addresses, proc_id)
    conn.send((time.perf_counter() - started, sink.scores))


def run(data: evaluation.EvalData, settings: Settings, processes: int) -> tuple[dict[str, Any], float]:
    """The metrics report and events/s of the eval flow run by ``processes`` forked processes."""
    addresses = [f"127.0.0.1:{free_port()}" for _ in range(processes)]
    context = mp.get_context("fork")  # the children share the loaded log instead of pickling it
    pipes, children = [], []
    for proc_id in range(processes):
        ours, theirs = context.Pipe()
        child = context.Process(target=_process, args=(data, settings, addresses, proc_id, theirs))
        child.start()
        pipes.append(ours)
        children.append(child)
    results = [pipe.recv() for pipe in pipes]
    for child in children:
        child.join()
    scores: dict[int, Any] = {}
    for _, part in results:
        scores.update(part)
    metrics = PrequentialMetrics(evaluation.KS)
    for index, is_scored in enumerate(data.scored):
        if is_scored:
            score = scores.get(index)
            metrics.update(score.listed if score else (), data.events[index].item_id, data.popularity)
    return metrics.report(), len(data.events) / max(seconds for seconds, _ in results)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("log", nargs="?", default=str(ROOT.parent / "shared" / "data" / "rsc15-100k"))
    parser.add_argument("--processes", type=int, nargs="+", default=[2, 1])
    args = parser.parse_args()
    settings = replace(Settings.from_env(), flow_metrics_port=0)
    data = evaluation.load(args.log, settings)
    print(machine_line())
    for processes in args.processes:
        report, events_per_s = run(data, settings, processes)
        print(f"{processes} process(es): HR@20 {report['HR@20']:.4f}  MRR@20 {report['MRR@20']:.4f}  "
              f"{events_per_s:,.0f} events/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
