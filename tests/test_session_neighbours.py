"""Session neighbours: sessions similar to the current one find its next item; state stays bounded and pickles."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from flows.evaluation import evaluate_baseline, evaluate_livereco, load
from flows.model import LiverecoModel
from flows.stages import ItemLogic, Link, NeighbourReply, Touch
from online.contract import Event, Settings
from online.session_neighbours import SessionNeighbours
from tests.test_evaluation import session_log, write_split
from tests.test_model import assert_same

ON = Settings.from_env({}, flow_metrics_port=0, session_neighbours=2.0)
OFF = Settings.from_env({}, flow_metrics_port=0)
T0 = 1.7e9


def _personal(settings: Settings) -> list[str]:
    """The personal pool after four sessions z a w, three x a y (co-visitation of a favours w), and x a now."""
    model = LiverecoModel(settings)
    sessions = [("z", "a", "w")] * 4 + [("x", "a", "y")] * 3 + [("x", "a")]
    for number, items in enumerate(sessions):
        for step, item in enumerate(items):
            model.learn_one(Event(f"user{number}", item, "view", T0 + 60 * number + step))
    pool = model.user_lists[f"user{len(sessions) - 1}"].state.previous
    assert pool is not None
    return [item for item, _ in pool.ranked]


def test_only_the_overlap_with_the_session_puts_its_next_item_first() -> None:
    off, on = _personal(OFF), _personal(ON)
    assert off.index("w") < off.index("y"), off  # co-visitation alone: a is followed by w more often
    assert on.index("y") < on.index("w"), on  # sessions that also went through x went on to y


def test_the_current_session_and_sessions_without_the_item_after_it_are_left_out() -> None:
    s = SessionNeighbours(capacity=5, length=4)
    s.learn_touch("me", "a", ["x"])
    s.learn_next("me", "b")
    assert s.scores("a", ["x"], session="me") == {}
    s.learn_touch("other", "a", [])
    assert s.scores("a", ["x"], session="me") == {}  # nothing before or after a in it yet
    s.learn_next("gone", "c")  # a session the item does not keep: nothing happens
    assert len(s) == 2


def test_state_is_bounded_by_sessions_and_items_per_session() -> None:
    s = SessionNeighbours(capacity=3, length=4)
    for number in range(50):
        session = f"s{number}"
        s.learn_touch(session, "a", [f"p{number}-{j}" for j in range(10)])
        for j in range(10):
            s.learn_next(session, f"n{number}-{j}")
    assert len(s) == 3
    assert all(len(items) == 4 for items in s.sessions())
    assert s.sessions()[0] == ("p49-1", "p49-0", "a", "n49-0")  # newest first; the nearest half before, then after

    logic = ItemLogic(ON, None, recoverable=False)
    for number in range(ON.sessions_per_item + 10):
        logic.on_batch([_touch("a", f"u{number}", ["x", "y"])])
        logic.on_batch([Link("a", "b", 1.0, T0, session=f"u{number}\x1fs1")])
    assert logic.state is not None and logic.state.sessions is not None
    assert len(logic.state.sessions) == ON.sessions_per_item


def test_off_keeps_no_sessions_and_replies_without_scores() -> None:
    logic = ItemLogic(OFF, None, recoverable=False)
    for number in range(3):
        assert _reply(logic.on_batch([_touch("a", f"u{number}", ["x"])])[0]) is None
    assert logic.state is not None and logic.state.sessions is None


def test_item_state_with_sessions_resumes_from_a_snapshot_and_goes_on_alike() -> None:
    logic = ItemLogic(ON, None)
    logic.on_batch([_touch("a", "u1", ["x"]), Link("a", "y", 1.0, T0, session="u1\x1fs1")])
    resumed = ItemLogic(ON, logic.snapshot())
    assert resumed.state is not None and resumed.state.sessions is not None
    assert resumed.state.sessions.sessions() == [("x", "a", "y")]
    after = [_reply(logic.on_batch([_touch("a", "u2", ["x"])])[0]),
             _reply(resumed.on_batch([_touch("a", "u2", ["x"])])[0])]
    assert after[0] == after[1] == {"y": 1.5, "x": 0.75}


@pytest.mark.parametrize(("env", "value"), [("LIVERECO_SESSION_NEIGHBOURS", "-1"),
                                            ("LIVERECO_SESSIONS_PER_ITEM", "0")])
def test_bad_settings_name_the_variable(env: str, value: str) -> None:
    with pytest.raises(ValueError, match=env):
        Settings.from_env({env: value})


def test_the_model_scores_a_session_log_as_the_dataflow_with_session_neighbours_on(tmp_path: Path) -> None:
    write_split(tmp_path, session_log(400), test_from=300)
    data = load(tmp_path, ON)
    flow, _, _ = evaluate_livereco(data, ON, batch_size=1)
    assert_same(evaluate_baseline(LiverecoModel(ON), data), flow)


def _reply(out: Iterable[Any]) -> dict[str, float] | None:
    return next(value for value in out if isinstance(value, NeighbourReply)).sessions


def _touch(item: str, user: str, previous: list[str]) -> Touch:
    return Touch(item, user, "1-1", 1, 1.0, T0, 1, None, previous, "s1", [], [], session_key=f"{user}\x1fs1")
