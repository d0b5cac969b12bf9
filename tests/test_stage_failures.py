"""A failure inside any stage, for one event, is dead-lettered with that stage's name, and the flow goes on.

Validation keeps every known poison out (tests/test_poison_events.py), so to
reach the guards of the later stages this test injects a fault: one stage
logic's method is replaced, for the test only, by one that raises for one
item. Everything else is the real flow (Bytewax's testing source and sink,
one and two workers). The events after the faulty one — of the same user and
of others — must still produce their lists, and the faulty event must appear
as a dead letter of exactly that stage.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from bytewax.testing import TestingSink, TestingSource, run_main

from flows.dataflow import build_flow
from flows.redis_source import StreamEntry
from flows.stages import ItemLogic, RankerLogic, UserHistoryLogic, UserListLogic
from flows.writes import DeadLetter, UserListWrite, Write
from online.contract import Event, Settings
from online.contract.streams import stream_fields

POISONED = "poisoned-item"


def _entries() -> list[StreamEntry]:
    views = [("ann", "a"), ("ann", "b"), ("bob", "a"), ("bob", POISONED), ("bob", "b"), ("cat", "a"), ("cat", "b"),
             ("ann", POISONED), ("ann", "c"), ("dan", "b"), ("dan", "c")]
    return [StreamEntry("events", f"{1700000000000 + n}-0",
                        {k.encode(): v for k, v in stream_fields(Event(user, item, "view", 1.7e9 + n,
                                                                       context={"category": "c1"})).items()})
            for n, (user, item) in enumerate(views)]


def _raising(original: Callable[..., Any], item_of: Callable[..., str]) -> Callable[..., Any]:
    def fail_on_poisoned(self: Any, *args: Any, **kwargs: Any) -> Any:
        if item_of(*args) == POISONED:
            raise RuntimeError(f"injected fault on {POISONED}")
        return original(self, *args, **kwargs)
    return fail_on_poisoned


FAULTS: dict[str, tuple[type, str, Callable[..., str]]] = {
    "user_history": (UserHistoryLogic, "_learn", lambda parsed: parsed.event.item_id),
    "items": (ItemLogic, "_label", lambda state, other, kind: state.item_id),
    "user_lists": (UserListLogic, "_rank", lambda last, *rest: last.item_id),
}


def _ranker_fault(original: Callable[..., Any]) -> Callable[..., Any]:
    """``RankerLogic._advance`` failing once, when the poisoned item's popularity update is due (in every worker
    layout it is due once: the outcomes after it advance event time past it)."""
    failed: list[bool] = []

    def fail_once(self: Any, until: float) -> Any:
        if not failed and any(update[2] == POISONED and update[0] < until for update in self.state.pending):
            failed.append(True)
            raise RuntimeError(f"injected fault on {POISONED}")
        return original(self, until)
    return fail_once


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("stage", [*sorted(FAULTS), "ranker"])
def test_a_fault_in_one_stage_is_dead_lettered_and_the_flow_goes_on(stage: str, workers: int,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    if stage == "ranker":
        monkeypatch.setattr(RankerLogic, "_advance", _ranker_fault(RankerLogic._advance))
    else:
        cls, method, item_of = FAULTS[stage]
        monkeypatch.setattr(cls, method, _raising(getattr(cls, method), item_of))
    writes: list[Write] = []
    flow = build_flow(Settings(ranker_learning_rate=0.05), source=TestingSource(_entries()), sink=TestingSink(writes),
                      recoverable=False)
    if workers == 1:
        run_main(flow)
    else:
        from bytewax.testing import cluster_main
        cluster_main(flow, [], 0, worker_count_per_proc=workers)

    letters = [w for w in writes if isinstance(w, DeadLetter)]
    assert letters, f"no dead letter from {stage}"
    assert {letter.stage for letter in letters} == {stage}
    assert all("injected fault" in letter.reason for letter in letters)
    lists = {w.user_id: [item for item, _ in w.ranked] for w in writes if isinstance(w, UserListWrite)}
    assert set(lists) >= {"ann", "bob", "cat", "dan"}, "a user after the fault got no list"
    last_of = {w.user_id: w.event_ts for w in writes if isinstance(w, UserListWrite)}
    assert last_of["ann"] == 1.7e9 + 8 and last_of["dan"] == 1.7e9 + 10, "events after the fault were not processed"
