"""Two ``livereco flow`` processes (one Bytewax cluster) against one process, on a sample of rsc15-100k.

Each configuration reads its own copy of the same events (its own
namespace) and runs live with recovery on; it is drained when the state a
restart would resume with has counted every event (see
``benchmarks/cluster_check.py``, which runs the same comparison on the
whole rsc15-100k train + test log). Model state is read back from the
recovery store (``ItemState.events``, ``UserHistoryState.history.events``); HR@20 comes
from the prequential counters on every process's ``/metrics``, summed.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.cluster_check import ClusterRun, log_counts, replay_log, run_cluster

pytestmark = pytest.mark.slow

EVENTS = 8000
"""rsc15 events replayed: at 4,000 the two runs' HR@20 differed by 0.0034-0.0104 (a fresh-clone CI run failed the
0.01 bound once); at 8,000, 0.0038-0.0071 in four runs, the bound unchanged."""


@pytest.fixture(scope="module")
def sample(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cluster") / "sample.tsv"
    with (shared_data / "rsc15-100k" / "train.tsv").open() as source:
        path.write_text("".join(itertools.islice(source, EVENTS + 1)))
    return path


@pytest.fixture(scope="module")
def runs(redis_url: str, sample: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[int, ClusterRun]]:
    workdir = tmp_path_factory.mktemp("cluster-runs")
    out = {}
    for processes in (1, 2):
        namespace = f"cluster{processes}-{workdir.name}"
        assert replay_log(redis_url, namespace, sample) == EVENTS
        out[processes] = run_cluster(redis_url, namespace, processes, workdir, EVENTS, timeout_s=60)
        print(out[processes].line())
    yield out


def test_two_processes_hold_the_same_model_state_as_one(runs: dict[int, ClusterRun], sample: Path) -> None:
    items, users = log_counts([sample])
    assert sum(items.values()) == EVENTS and len(items) > 1000 and len(users) > 1000
    assert runs[1].item_counts == dict(items)
    assert runs[2].item_counts == dict(items)
    assert runs[1].user_counts == runs[2].user_counts == dict(users)


def test_one_process_scores_every_event_but_each_users_first(runs: dict[int, ClusterRun], sample: Path) -> None:
    _, users = log_counts([sample])
    assert runs[1].predictions == EVENTS - len(users)
    assert 0.3 < runs[1].hr(20) < 0.9  # rsc15 sessions: next-click HR@20 is high


def test_two_processes_score_the_same_events_and_give_the_same_hr20(runs: dict[int, ClusterRun]) -> None:
    assert runs[2].predictions == runs[1].predictions
    assert abs(runs[2].hr(20) - runs[1].hr(20)) <= 0.01
