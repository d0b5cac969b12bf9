"""The "no second treadmill" rule: after a purchase its kind falls back and what its buyers bought next rises.

From the parts (the window the user history opens, the item stage's
"bought next" lists and category labels, :class:`online.purchases.AfterPurchase`)
to its effect on the synthetic shop, measured with the rule and without it;
and a check that the measurement fails when the rule is off.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import orjson
import pytest

from benchmarks.purchase_window import PurchaseEffect, measure, shop_events
from flows.evaluation import evaluate_baseline, evaluate_livereco, load
from flows.model import LiverecoModel
from flows.stages import ItemLogic, Link, NeighbourReply, PurchaseLink, Touch
from flows.synthetic_shop import Catalog
from online.contract import Event, Settings
from online.purchases import AfterPurchase, PurchaseWindow
from online.user_history import UserHistory

T0 = 1_700_000_000.0
SETTINGS = Settings.from_env({}, flow_metrics_port=0)
RULE_OFF = Settings.from_env({}, flow_metrics_port=0, purchase_window_s=0.0)
DAY = 86400.0


def event(user: str, item: str, kind: str, ts: float, category: str | None = None) -> Event:
    return Event(user, item, kind, T0 + ts, context={"category": category} if category else {})


# --------------------------------------------------------------------------- settings


def test_the_settings_have_defaults_and_bad_values_name_their_variable() -> None:
    assert (SETTINGS.purchase_window_s, SETTINGS.purchase_demote, SETTINGS.purchase_boost) == (7 * DAY, 0.1, 0.25)
    with pytest.raises(ValueError, match=r"LIVERECO_PURCHASE_WINDOW_S=-1\.0: must not be negative"):
        Settings.from_env({"LIVERECO_PURCHASE_WINDOW_S": "-1"})
    with pytest.raises(ValueError, match="LIVERECO_PURCHASE_WINDOW_S='a week': expected a number"):
        Settings.from_env({"LIVERECO_PURCHASE_WINDOW_S": "a week"})
    with pytest.raises(ValueError, match=r"LIVERECO_PURCHASE_DEMOTE=1\.5: must be between 0 and 1"):
        Settings.from_env({"LIVERECO_PURCHASE_DEMOTE": "1.5"})
    with pytest.raises(ValueError, match=r"LIVERECO_PURCHASE_DEMOTE=nan: must be between 0 and 1"):
        Settings.from_env({"LIVERECO_PURCHASE_DEMOTE": "nan"})
    with pytest.raises(ValueError, match=r"LIVERECO_PURCHASE_BOOST=-0\.5: must not be negative"):
        Settings.from_env({"LIVERECO_PURCHASE_BOOST": "-0.5"})
    with pytest.raises(ValueError, match="LIVERECO_PURCHASE_BOOST=nan: must be a number"):
        Settings.from_env({"LIVERECO_PURCHASE_BOOST": "nan"})
    assert Settings.from_env({"LIVERECO_PURCHASE_WINDOW_S": "0", "LIVERECO_PURCHASE_DEMOTE": "0",
                              "LIVERECO_PURCHASE_BOOST": "0"}).purchase_window_s == 0.0


# --------------------------------------------------------------------------- the parts


def test_the_history_opens_a_window_at_a_purchase_and_closes_it_after_the_window() -> None:
    history = UserHistory()
    history.learn_one(event("u", "t1", "view", 0.0, "treadmills"), 1.0)
    assert history.purchase_window(T0, 3600.0) is None  # no purchase: the usual case
    history.learn_one(event("u", "s1", "view", 10.0, "shoes"), 1.0)
    history.learn_one(event("u", "t2", "purchase", 20.0, "treadmills"), 5.0)
    window = history.purchase_window(T0 + 20.0, 3600.0, bought="t2")
    assert window == PurchaseWindow(("t2",), frozenset({"treadmills"}), (("t2", "treadmills"), ("t1", "treadmills")),
                                    "t2")
    history.learn_one(event("u", "m1", "purchase", 60.0), 5.0)  # no category: the window keeps what it knows
    later = history.purchase_window(T0 + 60.0, 3600.0)
    assert later is not None and later.purchases == ("m1", "t2") and later.kinds == {"treadmills"}
    assert history.purchase_window(T0 + 20.0 + 3600.0, 3600.0).purchases == ("m1",)  # type: ignore[union-attr]
    assert history.purchase_window(T0 + 60.0 + 3600.0, 3600.0) is None


def test_a_purchase_links_earlier_purchases_of_the_window_to_it() -> None:
    model = LiverecoModel(SETTINGS)
    model.learn_one(event("u", "t1", "purchase", 0.0, "treadmills"))
    model.learn_one(event("u", "m1", "purchase", DAY, "mats"))
    model.learn_one(event("u", "s1", "purchase", 2 * DAY, "shoes"))
    model.learn_one(event("u", "x1", "purchase", 10 * DAY, "bottles"))  # more than a window after the others
    bought_next = {item: [other for other, _ in logic.state.bought_next.top(10)]
                   for item, logic in model.items.items() if logic.state and logic.state.bought_next}
    assert bought_next == {"t1": ["m1", "s1"], "m1": ["s1"]}
    off = LiverecoModel(RULE_OFF)
    for e in (event("u", "t1", "purchase", 0.0), event("u", "m1", "purchase", 1.0)):
        off.learn_one(e)
    assert all(logic.state is None or logic.state.bought_next is None for logic in off.items.values())


def touch(item: str, category: str | None = None, previous: tuple[tuple[str, str | None], ...] = (),
          window: PurchaseWindow | None = None) -> Touch:
    return Touch(item, "u", "1-1", 1, 1.0, T0, 1, category, [other for other, _ in previous], "s1", [], [],
                 previous_kinds=tuple(kind for _, kind in previous), window=window)


def test_the_item_stage_knows_its_neighbours_kinds_and_names_those_bought_in_a_window() -> None:
    logic = ItemLogic(SETTINGS, None, recoverable=False)
    logic.on_batch([touch("t1", "treadmills")])
    logic.on_batch([Link("t1", "t2", 1.0, T0, "treadmills"), Link("t1", "m1", 1.0, T0, "mats"),
                    Link("t1", "u1", 1.0, T0)])  # no category: taken as the item's own
    logic.on_batch([touch("t1", "treadmills", previous=(("t3", "treadmills"), ("s1", "shoes")))])
    state = logic.state
    assert state is not None and state.kinds == {"m1": "mats", "s1": "shoes"}  # only kinds other than its own
    logic.on_batch([PurchaseLink("t1", "m1", 5.0, T0), PurchaseLink("t1", "m2", 2.0, T0)])
    plain = logic.on_batch([touch("t1", "treadmills")])[0]
    reply = next(r for r in plain if isinstance(r, NeighbourReply))
    assert (reply.of_kind, reply.bought_next) == ((), None)  # outside a window: as before
    bought = PurchaseWindow(("t1",), frozenset({"treadmills"}), bought="t1")
    reply = next(r for r in logic.on_batch([touch("t1", "treadmills", window=bought)])[0]
                 if isinstance(r, NeighbourReply))
    assert sorted(reply.of_kind) == [("t2", "treadmills"), ("t3", "treadmills"), ("u1", "treadmills")]
    assert reply.bought_next is not None and [item for item, _ in reply.bought_next] == ["m1", "m2"]


def test_the_item_stage_keeps_a_bounded_number_of_neighbour_kinds() -> None:
    logic = ItemLogic(Settings.from_env({}, neighbours=5), None, recoverable=False)
    logic.on_batch([touch("a", "a-kind")])
    for number in range(200):
        logic.on_batch([Link("a", f"n{number}", 1.0 + number, T0, f"kind{number}")])
    state = logic.state
    assert state is not None and len(state.neighbours) == 10
    assert state.kinds is not None and len(state.kinds) <= ItemLogic.max_kinds
    assert {item for item, _ in state.neighbours.top(5)} <= set(state.kinds)  # what replies send


def test_after_purchase_demotes_the_kind_boosts_bought_next_and_follows_the_window() -> None:
    rule = AfterPurchase(demote=0.0, boost=1.0)
    window = PurchaseWindow(("t1",), frozenset({"treadmills"}), (("t2", "treadmills"),), bought="t1")
    rule.learn_one(window, bought_next=[("m1", 1.0), ("t3", 0.5), ("gone", 1.0)], labels=[("t3", "treadmills")])
    ranked = [("t2", 4.0), ("t3", 3.0), ("s1", 2.0), ("b1", 1.0)]
    recent = [("t1", 5.0, T0), ("t2", 1.0, T0 - 1)]
    reranked = rule.rerank(ranked, 4, recent, exclude={"gone"}, position_decay=2.0)
    assert [item for item, _ in reranked] == ["s1", "m1", "b1", "t3"]  # t3: fell back, rose as bought next
    assert dict(reranked)["m1"] == pytest.approx(1.791759, rel=1e-6)  # log1p(5): t1's influence in the merge
    older = [("x", 1.0, T0 + 1), ("y", 1.0, T0 + 1), *recent]  # t1 third newest: its boost fades with it
    assert dict(rule.rerank(ranked, 5, older, position_decay=2.0))["m1"] == pytest.approx(1.791759 / 9, rel=1e-6)

    # A second purchase, of another kind: both kinds fall back, both lists rise.
    rule.learn_one(PurchaseWindow(("s1", "t1"), frozenset({"treadmills", "shoes"}), bought="s1"),
                   bought_next=[("sock", 1.0)], labels=[("s2", "shoes")])
    assert rule.kinds == {"treadmills", "shoes"} and rule.of_kind("t3") and rule.of_kind("s2")
    assert set(rule.bought_next()) == {"t1", "s1"}
    # t1 leaves the window: its kind and its list go, s1's stay.
    rule.learn_one(PurchaseWindow(("s1",), frozenset({"shoes"})))
    assert not rule.of_kind("t3") and rule.of_kind("s2") and list(rule.bought_next()) == ["s1"]


def test_after_purchase_keeps_a_bounded_number_of_labels() -> None:
    rule = AfterPurchase(max_labels=10)
    window = PurchaseWindow(("t1",), frozenset({"k"}))
    for number in range(100):
        rule.learn_one(window, labels=[(f"i{number}", "k")])
    assert not rule.of_kind("i89") and rule.of_kind("i90") and rule.of_kind("i99")


def test_without_categories_nothing_falls_back_but_bought_next_rises() -> None:
    model = LiverecoModel(Settings.from_env({}, purchase_boost=1.0))
    for number in range(3):  # buyers of t1 go on to buy m1, a day later (not in the same session)
        model.learn_one(event(f"b{number}", "t1", "purchase", number))
    for number in range(3):
        model.learn_one(event(f"b{number}", "m1", "purchase", DAY + number))
    for step, item in enumerate(("t2", "t3", "t1")):  # others compare treadmills
        model.learn_one(event("c", item, "view", 2 * DAY + step))
    model.learn_one(event("u", "t2", "view", 3 * DAY))
    model.learn_one(event("u", "t1", "purchase", 3 * DAY + 1.0))
    state = model.user_lists["u"].state
    assert state.after_purchase is not None and not state.after_purchase.kinds
    ranked = [item for item, _ in state.previous.ranked]  # type: ignore[union-attr]
    assert ranked[:3] == ["t2", "m1", "t3"]  # t2: the buyer's own recent item; m1 rose; t3 did not fall


# --------------------------------------------------------------------------- its effect on the synthetic shop


@pytest.fixture(scope="module")
def shop() -> tuple[Catalog, list[Event]]:
    return shop_events(16_000, n_users=300, seed=3)


@pytest.fixture(scope="module")
def rule_off(shop: tuple[Catalog, list[Event]]) -> PurchaseEffect:
    catalog, events = shop
    return measure(events, catalog, RULE_OFF)


@pytest.fixture(scope="module")
def rule_on(shop: tuple[Catalog, list[Event]]) -> PurchaseEffect:
    catalog, events = shop
    return measure(events, catalog, SETTINGS)


def check_the_rule(before: PurchaseEffect, after: PurchaseEffect) -> None:
    """What the rule must do after a purchase: fewer of the bought kind, what buyers bought next in the list."""
    mean = PurchaseEffect.mean
    assert before.purchases == after.purchases > 250
    assert mean(after.personal_share) < 0.7 * mean(before.personal_share), "the bought kind did not fall back"
    assert mean(after.served_share) < 0.7 * mean(before.served_share), "the bought kind did not fall back"
    assert len(after.bought_next_found) > 80
    assert mean(after.bought_next_found) > 0.7 > mean(before.bought_next_found) + 0.2, "bought next did not rise"
    assert mean(after.after_hits) >= mean(before.after_hits), "the next view after a purchase is predicted worse"
    assert mean(after.view_hits) > mean(before.view_hits) - 0.005, "the rule costs the other views"


@pytest.mark.slow
def test_after_a_purchase_the_bought_kind_falls_back_and_what_buyers_bought_next_rises(
        rule_off: PurchaseEffect, rule_on: PurchaseEffect) -> None:
    check_the_rule(rule_off, rule_on)


@pytest.mark.slow
def test_the_check_fails_with_the_rule_off(rule_off: PurchaseEffect) -> None:
    with pytest.raises(AssertionError, match="did not fall back"):
        check_the_rule(rule_off, rule_off)


@pytest.mark.slow
def test_the_shop_with_purchases_and_categories_scores_as_in_the_dataflow(
        shop: tuple[Catalog, list[Event]], tmp_path: Path) -> None:
    _, events = shop
    # The model applies trending at once, the flow in event time: they differ for events sharing a timestamp.
    distinct: list[Event] = []
    for e in events[:5000]:
        distinct.append(e if not distinct or e.ts > distinct[-1].ts else replace(e, ts=distinct[-1].ts + 0.001))
    log = tmp_path / "shop.jsonl"
    log.write_bytes(b"".join(orjson.dumps(e.to_dict()) + b"\n" for e in distinct))
    data = load(log, SETTINGS, mode="session", warmup_fraction=0.0)
    assert sum(e.type == "purchase" for e in data.events) > 50 and sum(data.scored) > 2000
    flow, _, _ = evaluate_livereco(data, SETTINGS, batch_size=1)
    model = evaluate_baseline(LiverecoModel(SETTINGS), data)
    assert model.predictions == flow.predictions
    assert model.report() == flow.report()
