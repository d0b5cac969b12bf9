"""A user's history keeps its bounds and orders with plain dicts and lists (``STATE_FORMAT`` 11).

``UserHistory`` kept its recent items and purchases in ``OrderedDict``\\ s and its session's items and latest
purchases in ``deque(maxlen=...)``; these tests hold the new containers to what those did, against a reference
written with the old containers: the same observations, recent items, exclusions and purchase windows.
"""

from __future__ import annotations

import pickle
import random
from collections import OrderedDict, deque

from online.contract import Event
from online.user_history import UserHistory


class _Reference:
    """The old containers' semantics (``deque(maxlen)`` drops from the left, ``popitem(last=False)`` the oldest)."""

    def __init__(self, recent_items: int, link_window: int, window_purchases: int) -> None:
        self.recent_items = recent_items
        self.session: deque[str] = deque(maxlen=link_window)
        self.recent: OrderedDict[str, float] = OrderedDict()
        self.purchased: OrderedDict[str, float] = OrderedDict()
        self.bought: deque[str] = deque(maxlen=window_purchases)

    def learn(self, item: str, weight: float, purchase: bool, new_session: bool, ts: float) -> list[str]:
        if new_session:
            self.session.clear()
        previous = [other for other in reversed(self.session) if other != item]
        if weight > 0.0:
            if item in self.session:
                self.session.remove(item)
            self.session.append(item)
        self.recent[item] = self.recent.pop(item, 0.0) + weight
        if len(self.recent) > self.recent_items:
            self.recent.popitem(last=False)
        if purchase:
            self.purchased.pop(item, None)
            self.purchased[item] = ts
            if len(self.purchased) > self.recent_items:
                self.purchased.popitem(last=False)
            self.bought.append(item)
        return previous


def test_random_histories_match_the_old_containers() -> None:
    rng = random.Random(7)
    for trial in range(20):
        history = UserHistory(recent_items=6, session_gap_s=100.0, link_window=3)
        reference = _Reference(6, 3, UserHistory.window_purchases)
        ts = 1.7e9
        for step in range(120):
            gap = rng.choice([1.0, 5.0, 500.0]) if step else 0.0
            ts += gap
            item = f"i{rng.randrange(12)}"
            purchase = rng.random() < 0.2
            weight = -1.0 if rng.random() < 0.1 else (5.0 if purchase else 1.0)
            event = Event("ann", item, "purchase" if purchase else "view", ts, event_id=f"{trial}-{step}")
            observed = history.learn_one(event, weight)
            assert observed is not None
            previous = reference.learn(item, weight, purchase, observed.new_session, ts)
            assert observed.previous == previous
            assert [(i, w) for i, w, _ in history.recent()] == list(reversed(reference.recent.items()))
            assert list(history.purchased) == list(reference.purchased)
            window = history.purchase_window(ts, window_s=1e9)
            assert (window.purchases if window is not None else ()) == tuple(reversed(reference.bought))
        again = pickle.loads(pickle.dumps(history))
        assert again.recent() == history.recent() and list(again.purchased) == list(history.purchased)
        last = Event("ann", "i0", "purchase", ts + 1.0, event_id=f"{trial}-end")
        expected = history.learn_one(last, 5.0)
        assert expected is not None
        observed = again.learn_one(last, 5.0)
        assert observed is not None and observed.previous == expected.previous


def test_the_bounds_hold() -> None:
    history = UserHistory(recent_items=4, link_window=5)
    for n in range(12):
        history.learn_one(Event("ann", f"p{n}", "purchase", 1.7e9 + n), 5.0)
    observed = history.learn_one(Event("ann", "x", "view", 1.7e9 + 20), 1.0)
    assert observed is not None and observed.previous == ["p11", "p10", "p9", "p8", "p7"]  # the last link_window
    assert [item for item, _, _ in history.recent()] == ["x", "p11", "p10", "p9"]
    assert list(history.purchased) == ["p8", "p9", "p10", "p11"]
    window = history.purchase_window(1.7e9 + 20, window_s=3600.0)
    assert window is not None and window.purchases == tuple(f"p{n}" for n in range(11, 3, -1))  # the last 8
    history.absorb([("y", 1.0, 1.7e9 + 30)], ["z"])
    assert [item for item, _, _ in history.recent()] == ["y", "x", "p11", "p10"]
    assert list(history.purchased) == ["p9", "p10", "p11", "z"]


def test_a_compiled_history_refuses_the_old_containers_hence_state_format_11() -> None:
    """Why ``STATE_FORMAT`` went to 11: the compiled class type-checks its attributes when a snapshot loads, and an
    older snapshot's ``deque`` is not a list (the recovery store refuses such snapshots before the flow starts)."""
    import pytest

    import online.user_history
    from flows.recovery import STATE_FORMAT

    assert STATE_FORMAT >= 11
    if str(online.user_history.__file__).endswith(".py"):
        pytest.skip("the pure-Python build does not type-check a snapshot's attributes")
    build, args, state = UserHistory().__reduce_ex__(4)[:3]
    older = {**state, "_session_items": deque(maxlen=5)}
    with pytest.raises(TypeError, match="list object expected"):
        build(*args).__setstate__(older)
