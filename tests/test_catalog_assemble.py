"""Filters, rules (every kind, and their order), diversity and the final list, on an in-process catalog."""

from __future__ import annotations

import random

import pytest

from online.blend import Pool, blend
from online.catalog.assemble import assemble
from online.catalog.filters import FilterError, Filters
from online.catalog.item import parse_item
from online.catalog.rules import parse_rules
from online.catalog.snapshot import CatalogSnapshot

NOW = 1_750_000_000.0
DAY = 86_400.0


def shop() -> CatalogSnapshot:
    """20 treadmills, 20 shoes, 20 mats: ids t0.., s0.., m0..; brand acme for even numbers, zen for odd."""
    snapshot = CatalogSnapshot()
    for prefix, category in (("t", "sports/fitness/treadmills"), ("s", "sports/running/shoes"), ("m", "sports/fitness/mats")):
        for number in range(20):
            snapshot.put(parse_item({"item_id": f"{prefix}{number}", "categories": [category],
                                     "brand": "acme" if number % 2 == 0 else "zen", "price": 10.0 * (number + 1),
                                     "attributes": {"color": "red" if number < 10 else "blue"},
                                     "tags": ["summer"] if number == 19 else [],
                                     "created_at": NOW - number * DAY}))
    return snapshot


def blended_treadmills_first() -> list[tuple[str, float, str]]:
    items = [f"t{n}" for n in range(20)] + [f"s{n}" for n in range(20)] + [f"m{n}" for n in range(20)]
    return [(item, 100.0 - position, "personal") for position, item in enumerate(items)]


def ids(listed: list[tuple[str, float, str]]) -> list[str]:
    return [item for item, _, _ in listed]


def test_every_item_passes_every_filter_and_n_come_back() -> None:
    snapshot = shop()
    snapshot.put(parse_item({"item_id": "t5", "categories": ["sports/fitness/treadmills"], "price": 60.0, "in_stock": False}))
    snapshot.put(parse_item({"item_id": "t6", "categories": ["sports/fitness/treadmills"], "price": 70.0,
                             "available_from": NOW + DAY}))
    blended = blended_treadmills_first()
    rules = parse_rules({"rules": [{"kind": "block", "items": ["t7"]}]})
    filters = Filters.from_query({"exclude": "t0,t1,t2", "category": "sports/fitness", "min_price": "30",
                                  "max_price": "150"})
    listed = assemble(blended, snapshot, n=10, filters=filters, rules=rules, now=NOW, diversity_cap=0)
    assert len(listed) == 10
    for item in ids(listed):
        row = snapshot.row(item)
        assert item not in {"t0", "t1", "t2", "t5", "t6", "t7"}
        assert snapshot.in_category(row, "sports/fitness") and 30 <= (snapshot.price_of(row) or 0) <= 150
        assert snapshot.available(row, NOW)
    assert ids(listed)[:3] == ["t3", "t4", "t8"]


def test_refill_goes_to_the_category_trending_then_trending() -> None:
    snapshot = shop()
    blended = [("t0", 3.0, "personal"), ("s0", 2.0, "personal")]
    listed = assemble(blended, snapshot, n=4, filters=Filters.from_query({"category": "sports/fitness"}),
                      category_trending=[("m3", 1.0), ("s1", 0.9)], trending=[("t9", 1.0), ("m4", 0.5)], now=NOW)
    assert listed == [("t0", 3.0, "personal"), ("m3", 1.0, "trending"), ("t9", 1.0, "trending"),
                      ("m4", 0.5, "trending")]


def test_attribute_brand_in_stock_any_and_exclude_seen() -> None:
    snapshot = shop()
    snapshot.put(parse_item({"item_id": "t2", "categories": ["sports/fitness/treadmills"], "brand": "acme",
                             "attributes": {"color": "red"}, "in_stock": False}))
    blended = blended_treadmills_first()
    query = {"attr.color": "red", "brand": "acme", "in_stock": "any", "exclude_seen": "true"}
    listed = assemble(blended, snapshot, n=5, filters=Filters.from_query(query), seen={"t0"}, now=NOW, diversity_cap=0)
    assert ids(listed) == ["t2", "t4", "t6", "t8", "s0"]
    listed = assemble(blended, snapshot, n=3, filters=Filters.from_query({"brand": "zen"}), now=NOW, diversity_cap=0)
    assert ids(listed) == ["t1", "t3", "t5"]


def test_unknown_and_malformed_parameters_are_named() -> None:
    with pytest.raises(FilterError) as error:
        Filters.from_query({"n": "5", "in_stok": "1"}, known={"n"})
    assert error.value.param == "in_stok"
    for params, param in (({"min_price": "ten"}, "min_price"), ({"in_stock": "maybe"}, "in_stock"),
                          ({"exclude_seen": "perhaps"}, "exclude_seen"), ({"max_price": ["1", "2"]}, "max_price")):
        with pytest.raises(FilterError) as error:
            Filters.from_query(params)
        assert error.value.param == param


def test_without_a_catalog_nothing_but_exclusions_filters() -> None:
    listed = assemble([("a", 2.0, "personal"), ("b", 1.0, "personal")], CatalogSnapshot(), n=5,
                      filters=Filters.from_query({"exclude": "a"}), trending=[("c", 1.0)], now=NOW)
    assert ids(listed) == ["b", "c"]


def test_an_item_outside_a_catalog_never_appears() -> None:
    listed = assemble([("ghost", 9.0, "personal"), ("t0", 1.0, "personal")], shop(), n=5, now=NOW)
    assert "ghost" not in ids(listed)


@pytest.mark.parametrize("selector", [{"items": ["t1"]}, {"categories": ["sports/fitness"]}, {"brands": ["zen"]},
                                      {"tags": ["summer"]}])
def test_block_by_each_selector(selector: dict[str, list[str]]) -> None:
    snapshot = shop()
    listed = assemble(blended_treadmills_first(), snapshot, n=60, rules=parse_rules({"rules": [{"kind": "block", **selector}]}),
                      now=NOW, diversity_cap=0)
    blocked = {item for item in snapshot if (
        item in selector.get("items", ()) or
        any(snapshot.in_category(snapshot.row(item), c) for c in selector.get("categories", ())) or
        snapshot.brand_of(snapshot.row(item)) in selector.get("brands", ()) or
        any(snapshot.has_tag(snapshot.row(item), t) for t in selector.get("tags", ())))}
    assert blocked and not blocked & set(ids(listed)) and len(listed) == 60 - len(blocked)


def test_boost_bury_and_their_window() -> None:
    snapshot, blended = shop(), blended_treadmills_first()
    boost = parse_rules({"rules": [{"kind": "boost", "factor": 100, "categories": ["sports/running"]}]})
    assert ids(assemble(blended, snapshot, n=3, rules=boost, now=NOW, diversity_cap=0)) == ["s0", "s1", "s2"]
    bury = parse_rules({"rules": [{"kind": "bury", "factor": 0.01, "items": ["t0", "t1"]}]})
    assert ids(assemble(blended, snapshot, n=3, rules=bury, now=NOW, diversity_cap=0)) == ["t2", "t3", "t4"]
    later = parse_rules({"rules": [{"kind": "boost", "factor": 100, "brands": ["zen"], "start": NOW + DAY}]})
    assert ids(assemble(blended, snapshot, n=3, rules=later, now=NOW, diversity_cap=0)) == ["t0", "t1", "t2"]
    assert ids(assemble(blended, snapshot, n=3, rules=later, now=NOW + 2 * DAY, diversity_cap=0)) == ["t1", "t3", "t5"]


def test_new_arrivals_boost_only_recent_items() -> None:
    snapshot = shop()
    blended = [(f"t{n}", 1.0, "personal") for n in range(19, -1, -1)]  # oldest first
    rules = parse_rules({"rules": [{"kind": "new_arrivals", "days": 2.5, "factor": 50}]})
    assert ids(assemble(blended, snapshot, n=4, rules=rules, now=NOW, diversity_cap=0)) == ["t2", "t1", "t0", "t19"]


def test_pin_at_a_position_and_only_on_its_pages() -> None:
    snapshot, blended = shop(), blended_treadmills_first()
    rules = parse_rules({"rules": [{"kind": "pin", "item": "m5", "position": 2, "categories": ["sports/fitness"]}]})
    on_page = assemble(blended, snapshot, n=4, filters=Filters.from_query({"category": "sports/fitness/mats"}),
                       rules=rules, now=NOW, diversity_cap=0)
    assert ids(on_page) == ["m0", "m5", "m1", "m2"] and on_page[1][2] == "pinned"
    assert ids(assemble(blended, snapshot, n=3, rules=rules, now=NOW, diversity_cap=0)) == ["t0", "t1", "t2"]
    outside = parse_rules({"rules": [{"kind": "pin", "item": "s3", "position": 1}]})
    priced = assemble(blended, snapshot, n=3, filters=Filters.from_query({"max_price": "20"}), rules=outside, now=NOW,
                      diversity_cap=0)
    assert "s3" not in ids(priced)  # a pinned item must pass the request's filters


def test_promotion_slots() -> None:
    snapshot, blended = shop(), blended_treadmills_first()
    rules = parse_rules({"rules": [{"kind": "promotion", "name": "summer", "slots": 2, "of": 10,
                                    "filter": {"tags": ["summer"]}}]})
    listed = assemble(blended, snapshot, n=10, rules=rules, now=NOW, diversity_cap=0)
    promoted = [(place, item) for place, (item, _, source) in enumerate(listed) if source == "promotion"]
    assert promoted == [(3, "t19"), (6, "s19")]
    assert [item for item, _, source in listed if source != "promotion"] == [f"t{n}" for n in range(8)]
    by_price = parse_rules({"rules": [{"kind": "promotion", "slots": 1, "filter": {"brands": ["zen"], "min_price": 150}}]})
    assert [item for item, _, source in assemble(blended, snapshot, n=5, rules=by_price, now=NOW, diversity_cap=0)
            if source == "promotion"] == ["t15"]


def test_the_order_block_boost_new_arrivals_pin_promotion_diversity() -> None:
    snapshot, blended = shop(), blended_treadmills_first()
    rules = parse_rules({"rules": [
        {"kind": "promotion", "slots": 1, "of": 5, "filter": {"items": ["m9"]}},  # document order does not matter
        {"kind": "pin", "item": "t1", "position": 1},
        {"kind": "new_arrivals", "days": 1.5, "factor": 10},                        # t0, t1, s0, s1, m0, m1
        {"kind": "boost", "factor": 8, "categories": ["sports/running"]},
        {"kind": "block", "items": ["t0", "s0", "m9"]}]})
    listed = assemble(blended, snapshot, n=6, rules=rules, now=NOW, diversity_cap=2, diversity_window=6)
    # block first: t0 and s0 go, and the promotion has nothing to place (m9 is blocked). Rank scores
    # 1/(1 + place) after the block: t2 1/2, s1 1/20 × 8 × 10 (boost and new arrival multiply) = 4,
    # s2 1/21 × 8, m0 1/39 × 10; t1 is pinned first; the diversity cap (2 of a category in the first 6)
    # holds back t3 and s3 behind m0 and m1.
    assert listed[0] == ("t1", 99.0, "pinned")
    assert ids(listed) == ["t1", "s1", "t2", "s2", "m0", "m1"]
    assert "m9" not in ids(listed)


def test_diversity_cap_per_request_and_off() -> None:
    snapshot, blended = shop(), blended_treadmills_first()
    capped = assemble(blended, snapshot, n=10, now=NOW)  # default: 3 of a category in the top 10
    categories = [snapshot.first_category(snapshot.row(item)) for item in ids(capped)]
    assert max(categories.count(category) for category in set(categories)) == 4  # 3 kinds in 10 places: one has 4
    assert ids(capped)[:3] == ["t0", "t1", "t2"]
    assert ids(assemble(blended, snapshot, n=10, now=NOW, diversity_cap=0)) == [f"t{n}" for n in range(10)]
    one_each = assemble(blended, snapshot, n=3, now=NOW, diversity_cap=1, diversity_window=3)
    assert ids(one_each) == ["t0", "s0", "m0"]


def test_assemble_takes_what_blend_produces_with_its_sources() -> None:
    snapshot = shop()
    pool = Pool(personal=[("t0", 3.0), ("t1", 2.0), ("ghost", 1.5)], trending=[("s0", 1.0), ("t0", 0.5)],
                affinity=[("m0", 1.0)])
    blended = blend(pool, {}, n=100, explore=["m7"], explore_at=2)
    listed = assemble(blended, snapshot, n=5, now=NOW)
    assert [(item, source) for item, _, source in listed] == [
        ("t0", "personal"), ("m7", "explore"), ("t1", "personal"), ("s0", "trending"), ("m0", "affinity")]


def test_random_requests_always_satisfy_their_filters() -> None:
    rng = random.Random(7)
    snapshot = shop()
    for n in range(5):
        snapshot.put(parse_item({"item_id": f"t{n}", "categories": ["sports/fitness/treadmills"],
                                 "in_stock": rng.random() < 0.5, "price": rng.uniform(0, 300)}))
    everything = blended_treadmills_first()
    for _ in range(200):
        blended = rng.sample(everything, 30)
        query = {"max_price": str(rng.uniform(20, 300)), "category": rng.choice(["sports", "sports/fitness",
                                                                                 "sports/running/shoes"]),
                 "exclude": ",".join(rng.sample([item for item, _, _ in everything], 10))}
        filters = Filters.from_query(query)
        listed = assemble(blended, snapshot, n=10, filters=filters, trending=everything and [(i, s) for i, s, _ in everything],
                          now=NOW)
        accept = filters.predicate(snapshot, NOW)
        assert all(accept(item) for item in ids(listed))
        assert len(listed) == min(10, sum(1 for item in snapshot if accept(item)))


def test_reading_only_a_prefix_of_the_candidates_gives_the_full_answer() -> None:
    from online.catalog.diversity import diversify
    from online.catalog.filters import refill

    rng = random.Random(3)
    snapshot = shop()
    everything = blended_treadmills_first()
    for _ in range(100):
        blended = rng.sample(everything, 60)
        cap, n = rng.choice([1, 2, 3]), rng.choice([3, 10, 20])
        accept = Filters().predicate(snapshot, NOW)
        full = diversify(refill(blended, accept, (), []), lambda entry: snapshot.first_category(snapshot.row(entry[0])),
                         cap, 10)
        assert assemble(blended, snapshot, n=n, now=NOW, diversity_cap=cap) == full[:n]
