"""The responding shop (``livereco produce --respond``): shoppers fetch their list, click what suits their hidden taste,
and send its ``rec_id`` back, so a list that matches taste better earns more clicks (and a worse ranking loses CTR).

The click model is tested with the simulator alone (lists made from its hidden tastes against random lists); one
test runs the producer against real flow and server processes and finds the clicks attributed.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable, Iterator

import pytest
import redis

from flows.embedded_redis import free_port
from flows.synthetic_shop import (
    Catalog,
    ListFetcher,
    Listing,
    ProduceStats,
    ShopSimulator,
    add_arguments,
    produce,
)
from online.contract import RedisKeys, parse_event
from tests.processes import flow_and_server, get, metric_value

N_EVENTS = 12_000


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.generate(n_items=1000, n_categories=20, seed=3)


_RUNS: dict[str, tuple[int, int, list[dict]]] = {}


def _run(catalog: Catalog, make_list: Callable[[ShopSimulator, str, random.Random], list[str]]
         ) -> tuple[int, int, list[dict]]:
    """(lists shown, clicks on them, the events) of a simulation whose shoppers are shown ``make_list``'s lists."""
    if make_list.__name__ in _RUNS:
        return _RUNS[make_list.__name__]
    sim = ShopSimulator(catalog, n_users=300, seed=3, events_per_s=20)
    rng = random.Random(11)
    shown = 0

    def fetch(user_id: str) -> Listing:
        nonlocal shown
        shown += 1
        return f"r{shown}", make_list(sim, user_id, rng)

    events = list(sim.events(limit=N_EVENTS, fetch=fetch))
    clicks = sum(1 for e in events if e["type"] == "view" and "rec_id" in e)
    _RUNS[make_list.__name__] = shown, clicks, events
    return shown, clicks, events


_TASTE_LISTS: dict[tuple[int, str], list[str]] = {}


def _by_taste(sim: ShopSimulator, user_id: str, k: int) -> list[str]:
    """The ``k`` items ``user_id`` likes best (as their tastes were at their first list: a purchase damps a taste)."""
    key = (id(sim), user_id)
    if key not in _TASTE_LISTS:
        _TASTE_LISTS[key] = sorted(sim.catalog.item_ids, key=lambda item: -sim.appeal(user_id, item))[:10]
    return _TASTE_LISTS[key][:k]


def _taste(sim: ShopSimulator, user_id: str, rng: random.Random) -> list[str]:
    return _by_taste(sim, user_id, 10)


def _random(sim: ShopSimulator, user_id: str, rng: random.Random) -> list[str]:
    return rng.sample(sim.catalog.item_ids, 10)


def _best_first(sim: ShopSimulator, user_id: str, rng: random.Random) -> list[str]:
    return _by_taste(sim, user_id, 5) + rng.sample(sim.catalog.item_ids, 5)


def _best_last(sim: ShopSimulator, user_id: str, rng: random.Random) -> list[str]:
    return rng.sample(sim.catalog.item_ids, 5) + _by_taste(sim, user_id, 5)


def test_a_list_that_matches_taste_earns_more_clicks_than_a_random_one(catalog: Catalog) -> None:
    shown, taste_clicks, _ = _run(catalog, _taste)
    shown_random, random_clicks, _ = _run(catalog, _random)
    assert shown > 800 and shown_random > 800
    taste_ctr, random_ctr = taste_clicks / shown, random_clicks / shown_random
    print(f"clicks per list: taste {taste_ctr:.3f}, random {random_ctr:.3f}")
    assert 0.2 < taste_ctr < 0.9, taste_ctr  # clicks per list: neither never nor always
    assert taste_ctr > 2.5 * random_ctr, (taste_ctr, random_ctr)


def test_a_worse_ranking_of_the_same_items_loses_clicks(catalog: Catalog) -> None:
    shown_first, first_clicks, _ = _run(catalog, _best_first)
    shown_last, last_clicks, _ = _run(catalog, _best_last)
    first_ctr, last_ctr = first_clicks / shown_first, last_clicks / shown_last
    print(f"clicks per list: best first {first_ctr:.3f}, best last {last_ctr:.3f}")
    assert first_ctr > 1.5 * last_ctr, (first_ctr, last_ctr)  # the same items, read from the top: position matters


def test_the_click_and_what_it_led_to_carry_the_rec_id(catalog: Catalog) -> None:
    _, _, events = _run(catalog, _taste)
    carrying = [e for e in events if "rec_id" in e]
    by_session: dict[str, list[dict]] = {}
    for e in events:
        by_session.setdefault(e["session_id"], []).append(e)
    assert {e["type"] for e in carrying} == {"view", "add_to_cart", "purchase"}
    for e in carrying:
        session = by_session[e["session_id"]]
        first_view = next(x for x in session if x["type"] == "view")
        assert first_view.get("rec_id") == e["rec_id"] and first_view["item_id"] == e["item_id"]  # the clicked item
        assert sum(1 for x in session if x["type"] == "view" and "rec_id" in x) == 1  # one click, a revisit is a view
        assert parse_event(e, now=e["ts"]).rec_id == e["rec_id"]  # the contract takes it


def test_without_a_list_shoppers_browse_on_their_own(catalog: Catalog) -> None:
    plain = list(ShopSimulator(catalog, n_users=100, seed=5).events(limit=2000))
    no_lists = list(ShopSimulator(catalog, n_users=100, seed=5).events(limit=2000, fetch=lambda user_id: None))
    assert no_lists == plain  # no list, no rec_id, the same shop


def test_appeal_is_the_hidden_taste(catalog: Catalog) -> None:
    sim = ShopSimulator(catalog, n_users=50, seed=3)
    with pytest.raises(KeyError):
        sim.appeal("user-99999", catalog.item_ids[0])
    liked = sorted(sim.appeal("user-00007", item) for item in catalog.item_ids)
    assert liked[-1] == 1.0 and liked[len(liked) // 2] < 0.2  # a few favourite categories, most items unappealing


def test_a_list_fetcher_that_fails_counts_and_pauses() -> None:
    stats = ProduceStats()
    fetcher = ListFetcher(f"http://127.0.0.1:{free_port()}", stats)  # nothing listens there
    try:
        assert fetcher("user-00001") is None and stats.list_failures == 1
        assert fetcher("user-00002") is None and stats.list_failures == 1  # paused for a second: not tried again
    finally:
        fetcher.close()


@pytest.fixture()
def system(redis_url: str, namespace: str) -> Iterator[tuple[str, str]]:
    with flow_and_server(redis_url, namespace) as urls:
        yield urls


@pytest.mark.slow
def test_the_responding_shop_through_real_server_and_flow(system: tuple[str, str], redis_client: redis.Redis,
                                                          namespace: str) -> None:
    base, flow_metrics = system
    stats = produce(base, 150.0, seed=7, n_users=60, n_items=300, duration_s=12.0, respond=True, linger_s=0.2)
    assert stats.ok and stats.rejected == 0, stats.errors
    assert stats.lists_fetched > 100 and stats.list_failures == 0, stats.summary()
    assert "lists fetched" in stats.summary()
    keys = RedisKeys(namespace, 2)

    def counted() -> dict[str, float]:
        return {k.decode(): float(v) for k, v in redis_client.hgetall(keys.variant_stats("", "default")).items()}

    deadline = time.monotonic() + 15
    while counted().get("scored_lists", 0) < stats.lists_fetched * 0.9 and time.monotonic() < deadline:
        time.sleep(0.2)
    figures = counted()
    assert figures["impressions"] >= 5 * stats.lists_fetched  # up to 10 items a list (fewer while trending is short)
    assert stats.lists_fetched * 0.9 <= figures["scored_lists"] <= stats.lists_fetched  # each labelled once at most
    assert 0 < figures["hits_at_10"] < figures["scored_lists"]

    def settled() -> tuple[str, dict[str, float], float, float, float]:
        """The flow's metrics and the variant's hash, once they agree: the flow counts a click or a scored list
        when it attributes it, the sink adds it to the hash with a later batch (so either may be read first)."""
        while True:
            text, figures = get(flow_metrics)[1].decode(), counted()
            attributed = sum(metric_value(text, "livereco_flow_attributed_total",
                                          f'kind="click",source="{source}",status="attributed",variant="default"')
                             for source in ("personal", "trending", "explore", "affinity"))
            hits, misses = (metric_value(text, "livereco_flow_served_lists_scored_total",
                                         f'outcome="{outcome}",variant="default"') for outcome in ("hit", "miss"))
            agree = figures.get("clicks") == attributed and figures.get("scored_lists") == hits + misses
            if (agree and figures == counted()) or time.monotonic() > deadline + 10:
                return text, figures, attributed, hits, misses
            time.sleep(0.2)

    text, figures, attributed, hits, misses = settled()
    assert attributed >= 10 and figures["clicks"] == attributed  # the clicks came back with their rec_id
    assert metric_value(text, "livereco_flow_attributed_total",
                        'kind="click",source="other",status="unknown",variant="none"') == 0  # every rec_id known
    assert 0.005 < figures["clicks"] / figures["impressions"] < 0.5
    for stage in ("parse", "user_history", "items", "user_lists", "ranker", "sink"):  # the live per-stage profile
        assert metric_value(text, "livereco_flow_stage_cpu_seconds_total", f'stage="{stage}"') > 0, stage
    assert hits + misses == figures["scored_lists"] and hits == figures["hits_at_10"]  # Prometheus: the same numbers


def test_the_respond_flag() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert parser.parse_args(["--respond"]).respond is True and parser.parse_args([]).respond is False
