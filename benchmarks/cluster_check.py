"""One flow process against a two-process Bytewax cluster on the same log: same HR@20, same model state.

The log (by default the shared rsc15-100k train then test) is replayed into
the event streams of two namespaces; ``livereco flow`` then runs over one
namespace as one process and over the other as two processes (``-i 0`` and
``-i 1``, each given both addresses), recovery on in both. What is compared:

* HR@20 (and HR@5/10, MRR@20) from the live flow's prequential counters,
  read from every process's ``/metrics`` and summed over processes;
* per-item and per-user event counts, read from the model state itself
  (``ItemState.events``, ``UserHistoryState.history.events``) in the recovery store with
  :func:`flows.recovery.resume_state`.

The runs are live (no ``--stop-at-end``: a stopped process no longer serves
its metrics). A run is drained when the state a restart would resume with
has counted every replayed event in the user-history stage: Bytewax only
moves the resume epoch past an epoch once every step of it, the sink
included, has finished, so the counters are final at that point.

    .venv/bin/python -m benchmarks.cluster_check [--limit N] [--snapshot-interval 0.5]
"""

from __future__ import annotations

import argparse
import itertools
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from flows.embedded_redis import EmbeddedRedis, free_port
from flows.readiness import wait_until_answering
from flows.recovery import resume_state
from flows.redis_client import connect
from flows.replay import iter_log_events, replay
from flows.stages import ItemState, UserHistoryState  # imported up front: unpickling the first snapshot would import it
from online.contract import Settings

ROOT = Path(__file__).resolve().parents[1]
RSC15 = ROOT.parent / "shared" / "data" / "rsc15-100k"

__all__ = [
    "ClusterRun",
    "flow_env",
    "free_port_pair",
    "log_counts",
    "metric_sum",
    "replay_log",
    "run_cluster",
    "running_flow",
    "store_counts",
]


def flow_env(redis_url: str, namespace: str, metrics_port: int, partitions: int = 2) -> dict[str, str]:
    """The environment of a ``livereco flow`` process: Redis, namespace, stream partitions, metrics port."""
    env = dict(os.environ)
    env.update({
        "REDIS_URL": redis_url,
        "LIVERECO_NAMESPACE": namespace,
        "LIVERECO_PARTITIONS": str(partitions),
        "LIVERECO_HOST": "127.0.0.1",
        "LIVERECO_FLOW_METRICS_PORT": str(metrics_port),
        "PYTHONPATH": str(ROOT),
    })
    return env


def free_port_pair(n: int = 2) -> int:
    """A port ``p`` with ``p .. p + n - 1`` all free (process ``i`` serves its metrics on ``p + i``)."""
    import socket

    for _ in range(100):
        base = free_port()
        socks = []
        try:
            for offset in range(n):
                sock = socket.socket()
                socks.append(sock)
                sock.bind(("127.0.0.1", base + offset))
            return base
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError(f"no {n} consecutive free ports")


def replay_log(redis_url: str, namespace: str, path: Path, *, limit: int | None = None, rate: float = 0.0,
               batch: int = 500, partitions: int = 2) -> int:
    """What ``livereco replay PATH`` does, in this process (no interpreter start-up); the events written."""
    settings = Settings.from_env({}, redis_url=redis_url, namespace=namespace, partitions=partitions)
    client = connect(redis_url)
    try:
        report = replay(path, settings, client, limit=limit, rate=rate, batch=batch)
    finally:
        client.close()
    return report.written


def log_counts(paths: Sequence[Path], limit: int | None = None) -> tuple[Counter[str], Counter[str]]:
    """Events per item and per user in the log files, straight from the files (the truth to compare with)."""
    items: Counter[str] = Counter()
    users: Counter[str] = Counter()
    for path in paths:
        for _, raw in itertools.islice(iter_log_events(path), limit):
            items[str(raw["item_id"])] += 1
            users[str(raw["user_id"])] += 1
    return items, users


def store_counts(store: Path) -> tuple[dict[str, int], dict[str, int]]:
    """``(events per item, events per user)`` as the model state in the recovery store holds them."""
    items: dict[str, int] = {}
    for key, state in resume_state(store, "livereco.items").items():
        assert isinstance(state, ItemState), type(state)
        items[key] = state.events
    users: dict[str, int] = {}
    for key, state in resume_state(store, "livereco.user_history").items():
        assert isinstance(state, UserHistoryState), type(state)
        users[key] = state.history.events
    return items, users


def metric_sum(texts: Sequence[str], name: str, labels: str = "") -> float:
    """One Prometheus sample summed over several processes' ``/metrics`` texts (0 where absent)."""
    prefix = f"{name}{{{labels}}} " if labels else f"{name} "
    return sum(float(line.rsplit(" ", 1)[1]) for text in texts for line in text.splitlines()
               if line.startswith(prefix))


@contextmanager
def running_flow(env: dict[str, str], processes: int, store: Path | None, *flow_args: str, log_dir: Path,
                 ready_timeout_s: float = 30.0) -> Iterator[tuple[list[subprocess.Popen[bytes]], list[str]]]:
    """``livereco flow -r STORE`` as ``processes`` cluster processes; yields them and their metrics URLs.

    ``store=None`` runs without recovery. Each process's output goes to
    ``log_dir/flow-<i>.log``. Leaving the block sends SIGTERM (then SIGKILL)
    to every process still running.
    """
    base = int(env["LIVERECO_FLOW_METRICS_PORT"])
    cluster: list[str] = []
    if processes > 1:
        first = free_port_pair(processes)
        addresses = [f"127.0.0.1:{first + i}" for i in range(processes)]
        for i in range(processes):
            cluster.append(f"-i {i} " + " ".join(f"-a {a}" for a in addresses))
    else:
        cluster.append("")
    children: list[subprocess.Popen[bytes]] = []
    urls = [f"http://127.0.0.1:{base + i}/metrics" for i in range(processes)]
    try:
        for i, extra in enumerate(cluster):
            with (log_dir / f"flow-{i}.log").open("ab") as out:
                children.append(subprocess.Popen(
                    [sys.executable, "-m", "flows.cli", "flow", *(["-r", str(store)] if store else []),
                     *extra.split(), *flow_args],
                    env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT))
        for url in urls:
            wait_until_answering(url, children, timeout_s=ready_timeout_s)
        yield children, urls
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def scrape(urls: Sequence[str]) -> list[str]:
    texts = []
    for url in urls:
        with urllib.request.urlopen(url, timeout=5) as answer:
            texts.append(answer.read().decode())
    return texts


@dataclass
class ClusterRun:
    processes: int
    seconds: float
    predictions: float
    hits: dict[int, float]
    reciprocal_rank_20: float
    item_counts: dict[str, int]
    user_counts: dict[str, int]

    def hr(self, k: int = 20) -> float:
        return self.hits[k] / self.predictions if self.predictions else 0.0

    @property
    def mrr20(self) -> float:
        return self.reciprocal_rank_20 / self.predictions if self.predictions else 0.0

    def line(self) -> str:
        return (f"{self.processes} process(es): HR@5 {self.hr(5):.4f}  HR@10 {self.hr(10):.4f}  HR@20 {self.hr(20):.4f}"
                f"  MRR@20 {self.mrr20:.4f}  over {self.predictions:,.0f} scored events;"
                f" {sum(self.item_counts.values()):,} events in item state, {sum(self.user_counts.values()):,} in"
                f" user state; drained in {self.seconds:.1f} s")


def run_cluster(redis_url: str, namespace: str, processes: int, workdir: Path, expected_events: int, *,
                partitions: int = 2, snapshot_interval_s: float = 0.25, timeout_s: float = 120.0) -> ClusterRun:
    """Run the flow over ``namespace`` (already replayed) as ``processes`` processes until every event is in state."""
    store = workdir / f"recovery-{namespace}"
    env = flow_env(redis_url, namespace, free_port_pair(processes), partitions)
    started = time.monotonic()
    with running_flow(env, processes, store, "-s", str(snapshot_interval_s), log_dir=workdir) as (children, urls):
        deadline = started + timeout_s
        while True:
            texts = scrape(urls)
            # Cheap check first (events parsed by every process), then the store itself.
            if metric_sum(texts, "livereco_flow_events_total", 'type="view"') >= expected_events:
                _, users = store_counts(store)
                if sum(users.values()) >= expected_events:
                    break
            for child in children:
                if child.poll() is not None:
                    raise RuntimeError(f"a flow process exited with {child.returncode}; see {workdir}/flow-*.log")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the flow did not count {expected_events} events within {timeout_s} s")
            time.sleep(0.2)
        seconds = time.monotonic() - started
        texts = scrape(urls)
    items, users = store_counts(store)
    return ClusterRun(
        processes=processes,
        seconds=seconds,
        predictions=metric_sum(texts, "livereco_flow_prequential_predictions_total"),
        hits={k: metric_sum(texts, "livereco_flow_prequential_hits_total", f'k="{k}"') for k in (5, 10, 20)},
        reciprocal_rank_20=metric_sum(texts, "livereco_flow_prequential_reciprocal_rank_total", 'k="20"'),
        item_counts=items,
        user_counts=users,
    )


def compare(redis_url: str, logs: Sequence[Path], workdir: Path, limit: int | None = None,
            snapshot_interval_s: float = 0.25, timeout_s: float = 300.0) -> tuple[ClusterRun, ClusterRun, int]:
    """Replay ``logs`` into two fresh namespaces, run 1 and 2 processes; ``(one, two, events)``."""
    items, _ = log_counts(logs, limit)
    events = sum(items.values())
    runs = []
    for processes in (1, 2):
        namespace = f"cluster{processes}-{time.time_ns() % 10**9}"
        for path in logs:
            replay_log(redis_url, namespace, path, limit=limit)
        runs.append(run_cluster(redis_url, namespace, processes, workdir, events,
                                snapshot_interval_s=snapshot_interval_s, timeout_s=timeout_s))
    return runs[0], runs[1], events


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("logs", nargs="*", type=Path, default=[RSC15 / "train.tsv", RSC15 / "test.tsv"],
                        help="logs replayed one after the other (default: rsc15-100k train then test)")
    parser.add_argument("--limit", type=int, default=None, help="data lines read from each log")
    parser.add_argument("--snapshot-interval", type=float, default=0.5)
    args = parser.parse_args(argv)
    from benchmarks.machine import machine_line

    with tempfile.TemporaryDirectory(prefix="livereco-cluster-") as tmp, EmbeddedRedis() as server:
        one, two, events = compare(server.url, args.logs, Path(tmp), args.limit, args.snapshot_interval)
        truth_items, truth_users = log_counts(args.logs, args.limit)
        print(machine_line())
        print(f"log: {', '.join(map(str, args.logs))} ({events:,} events, {len(truth_items):,} items,"
              f" {len(truth_users):,} users)")
        print(one.line())
        print(two.line())
        print(f"HR@20 difference: {abs(one.hr(20) - two.hr(20)):.4f}")
        same = one.item_counts == two.item_counts == dict(truth_items)
        same_users = one.user_counts == two.user_counts == dict(truth_users)
        print(f"per-item event counts equal (1 process, 2 processes, the log): {same}")
        print(f"per-user event counts equal (1 process, 2 processes, the log): {same_users}")
        return 0 if same and same_users and abs(one.hr(20) - two.hr(20)) <= 0.01 else 1


if __name__ == "__main__":
    sys.exit(main())
