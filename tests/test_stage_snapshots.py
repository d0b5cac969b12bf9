"""Recovery snapshots written before ``flows/stages.py`` became a package still load.

Snapshots pickle the stages' states by class path. Those written before the
split name ``flows.stages.<Class>``; the package re-exports every class a
state holds, so such a snapshot resumes into the same classes (no new
``STATE_FORMAT``).
"""

from __future__ import annotations

import pickle

import pytest

import flows.stages
from flows.model import LiverecoModel
from online.contract import Event, Settings


def _states() -> list[object]:
    model = LiverecoModel(Settings(purchase_window_s=3600.0))
    sessions = [("ann", ["ia", "ib", "ic"]), ("bob", ["ia", "ib", "id"]), ("ann", ["ic", "id"])]
    for number, (user, items) in enumerate(sessions):
        for step, item in enumerate(items):
            model.learn_one(Event(user, item, "purchase" if item == "id" else "view", 1.7e9 + 60 * number + step,
                                  context={"category": "k" + item}))
    return [model.histories["ann"].state, model.items["ib"].state, model.user_lists["ann"].state,
            model.rankers[0].state]


def _as_before_the_split(state: object) -> bytes:
    """``state`` pickled as the single ``flows.stages`` module named its classes (protocol 2 spells paths out)."""
    data = pickle.dumps(state, protocol=2)
    for name in flows.stages.__all__:
        cls = getattr(flows.stages, name)
        if isinstance(cls, type):
            data = data.replace(f"c{cls.__module__}\n{name}\n".encode(), f"cflows.stages\n{name}\n".encode())
    return data


@pytest.mark.parametrize("index", range(4))
def test_a_snapshot_naming_the_old_module_loads_into_the_same_state(index: int) -> None:
    state = _states()[index]
    old = _as_before_the_split(state)
    assert b"cflows.stages\n" in old and b"cflows.stages." not in old
    # Both through one unpickling: a set's iteration order may change when it is rebuilt (hash collisions).
    new = pickle.dumps(state, protocol=2)
    assert pickle.dumps(pickle.loads(old), protocol=2) == pickle.dumps(pickle.loads(new), protocol=2)
