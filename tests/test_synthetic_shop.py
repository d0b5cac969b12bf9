"""The synthetic shop: a seeded catalog, shoppers whose behaviour is learnable, and a paced HTTP producer.

The producer is tested against a real ``ThreadingHTTPServer`` on loopback,
never a mock, so keep-alive, batching, pacing and error answers go through
``http.client`` for real.
"""

from __future__ import annotations

import argparse
import io
import random
import socket
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import pairwise
from typing import Any

import numpy as np
import orjson
import pytest

from flows.synthetic_shop import (
    CATEGORY_SPECS,
    Catalog,
    ProduceStats,
    ShopSimulator,
    add_arguments,
    default_url,
    produce,
    run,
)
from online.contract import Settings, parse_event

N_EVENTS = 24_000


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.generate(n_items=1000, n_categories=20, seed=3)


@pytest.fixture(scope="module")
def stream(catalog: Catalog) -> list[dict[str, Any]]:
    """24k events of 300 users (few users, so each has many sessions)."""
    return list(ShopSimulator(catalog, n_users=300, seed=3, events_per_s=20).events(limit=N_EVENTS))


@pytest.fixture(scope="module")
def sessions(stream: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Events by session, sessions in order of their first event."""
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in stream:
        out[e["session_id"]].append(e)
    return dict(out)


def _views(session: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in session if e["type"] == "view"]


# --------------------------------------------------------------------------- catalog


def test_catalog_items_categories_prices_bundles(catalog: Catalog) -> None:
    assert len(catalog) == 1000
    assert len(set(catalog.item_ids)) == 1000
    assert catalog.item_ids[42] == "sku-00042" and catalog.index_of("sku-00042") == 42
    assert catalog.categories == tuple(s.name for s in CATEGORY_SPECS)
    assert np.bincount(catalog.item_category, minlength=20).min() >= 3
    assert (catalog.price > 0).all()
    medians = {c: float(np.median(catalog.price[catalog.item_category == i])) for i, c in enumerate(catalog.categories)}
    assert medians["treadmills"] > 5 * medians["treadmill-mats"]
    assert medians["treadmill-mats"] > medians["yoga-blocks"]
    assert len({catalog.brands[b] for b in catalog.item_brand}) > 10

    # Every item in exactly one bundle of 3-8 items of one category.
    members = sorted(i for b in catalog.bundles for i in b)
    assert members == list(range(1000))
    for b, items in enumerate(catalog.bundles):
        assert 3 <= len(items) <= 8
        assert {int(catalog.item_category[i]) for i in items} == {catalog.bundle_category[b]}
        assert all(catalog.item_bundle[i] == b for i in items)
        # Links go to bundles of the complementary categories, never the bundle's own category.
        linked = [catalog.bundle_category[x] for x in catalog.bundle_links[b]]
        assert linked == list(catalog.complements[catalog.bundle_category[b]])

    assert "treadmills" not in catalog.complements_of("treadmills")
    assert "treadmill-mats" in catalog.complements_of("treadmills")
    assert all(c not in catalog.complements[c] for c in range(20))


def test_catalog_popularity_is_zipf(catalog: Catalog) -> None:
    pop = np.sort(catalog.popularity)[::-1]
    assert pop.sum() == pytest.approx(1.0)
    assert pop[0] / pop[9] == pytest.approx(10**1.1, rel=1e-6)
    assert pop[:100].sum() > 0.6  # top 10% of items


def test_catalog_is_seeded(catalog: Catalog) -> None:
    same = Catalog.generate(n_items=1000, n_categories=20, seed=3)
    other = Catalog.generate(n_items=1000, n_categories=20, seed=4)
    for name in ("item_category", "item_brand", "price", "popularity", "item_bundle"):
        assert np.array_equal(getattr(same, name), getattr(catalog, name)), name
    assert same.bundle_links == catalog.bundle_links
    assert not np.array_equal(other.price, catalog.price)
    assert not np.array_equal(other.item_category, catalog.item_category)


def test_catalog_subsets_and_bad_sizes() -> None:
    small = Catalog.generate(n_items=60, n_categories=5, seed=1)
    assert small.categories == tuple(s.name for s in CATEGORY_SPECS[:5])
    assert all(d < 5 for ds in small.complements for d in ds)
    with pytest.raises(ValueError, match="n_categories"):
        Catalog.generate(n_items=1000, n_categories=21)
    with pytest.raises(ValueError, match="n_items"):
        Catalog.generate(n_items=50, n_categories=20)


# --------------------------------------------------------------------------- simulator


def test_events_are_seeded(catalog: Catalog) -> None:
    def take(seed: int, **kw: Any) -> list[dict[str, Any]]:
        return list(ShopSimulator(catalog, n_users=200, seed=seed, **kw).events(limit=1000))

    first = take(11)
    assert take(11) == first
    other = take(12)
    assert other != first
    assert [e["item_id"] for e in other] != [e["item_id"] for e in first]
    # The run id changes the ids only, not the behaviour.
    relabelled = take(11, run_id="run2")
    assert [(e["user_id"], e["item_id"], e["type"], e["ts"]) for e in relabelled] == [
        (e["user_id"], e["item_id"], e["type"], e["ts"]) for e in first
    ]
    assert {e["event_id"] for e in relabelled}.isdisjoint({e["event_id"] for e in first})
    assert all(e["session_id"].startswith("run2-") for e in relabelled)


def test_every_event_passes_the_contract(catalog: Catalog, stream: list[dict[str, Any]]) -> None:
    now = stream[-1]["ts"] + 1.0
    described = {
        item.item_id: {"category": item.category, "brand": item.brand, "price": item.price}
        for item in map(catalog.item, range(len(catalog)))
    }
    for e in stream:
        parsed = parse_event(e, now=now)
        assert parsed.session_id == e["session_id"] and parsed.event_id == e["event_id"]
        context = dict(e["context"])
        assert context.pop("device") in ("web", "ios", "android")
        assert context == described[e["item_id"]]
        assert ("value" in e) == (e["type"] in ("rating", "purchase"))
        if e["type"] == "purchase":
            assert e["value"] == described[e["item_id"]]["price"]  # the order's value
    assert len({e["event_id"] for e in stream}) == len(stream)
    assert all(a["ts"] <= b["ts"] for a, b in pairwise(stream))
    types = Counter(e["type"] for e in stream)
    assert set(types) == {
        "view", "impression", "add_to_cart", "remove_from_cart", "purchase", "rating", "dislike", "wishlist", "share"
    }
    assert {e["value"] for e in stream if e["type"] == "rating"} <= {1.0, 2.0, 3.0, 4.0, 5.0}
    devices = Counter(e["context"]["device"] for e in stream)
    assert devices["web"] > devices["ios"] > devices["android"] > 0.1 * len(stream)


def test_ts_follows_the_clock_passed_in(catalog: Catalog) -> None:
    ticks = iter(range(1_750_000_000, 1_760_000_000))
    events = list(ShopSimulator(catalog, n_users=50, seed=1).events(clock=lambda: float(next(ticks)), limit=20))
    assert [e["ts"] for e in events] == [1_750_000_000.0 + k for k in range(20)]
    live = next(ShopSimulator(catalog, n_users=50, seed=1).events(clock=time.time))
    assert abs(live["ts"] - time.time()) < 5


def test_popularity_is_skewed(catalog: Catalog, stream: list[dict[str, Any]]) -> None:
    views = [e["item_id"] for e in stream[:20_000] if e["type"] == "view"]
    counts = sorted(Counter(views).values(), reverse=True)
    top = sum(counts[: len(catalog) // 10])
    assert top / len(views) > 0.4
    assert len(counts) > 0.5 * len(catalog)  # the long tail is visited too


def test_sessions_are_structured(catalog: Catalog, stream: list[dict[str, Any]],
                                 sessions: dict[str, list[dict[str, Any]]]) -> None:
    # Sessions that started in the first third have ended before the stream does.
    early = {e["session_id"] for e in stream[: N_EVENTS // 3]}
    lengths = [len(sessions[s]) for s in early]
    assert min(lengths) >= 3 and max(lengths) <= 15
    assert 5 <= float(np.mean(lengths)) <= 10
    # Many sessions are interleaved: neighbours in the stream rarely share a session.
    same_session = sum(a["session_id"] == b["session_id"] for a, b in pairwise(stream))
    assert same_session / len(stream) < 0.2
    # Gaps inside a session are seconds.
    gaps = [b["ts"] - a["ts"] for s in early for a, b in zip(sessions[s], sessions[s][1:], strict=False)]
    assert 1.0 <= float(np.median(gaps)) <= 20.0 and max(gaps) <= 120.0

    bundle = catalog.item_bundle
    category = catalog.item_category
    pairs = [
        (catalog.index_of(a["item_id"]), catalog.index_of(b["item_id"]))
        for sess in sessions.values()
        for a, b in zip(_views(sess), _views(sess)[1:], strict=False)
    ]
    same_bundle = np.mean([bundle[a] == bundle[b] for a, b in pairs])
    same_category = np.mean([category[a] == category[b] for a, b in pairs])
    views = [catalog.index_of(e["item_id"]) for e in stream if e["type"] == "view"]
    random.Random(0).shuffle(views)
    random_bundle = np.mean([bundle[a] == bundle[b] for a, b in pairwise(views)])
    random_category = np.mean([category[a] == category[b] for a, b in pairwise(views)])
    assert same_bundle > 0.5 and same_bundle > 8 * random_bundle
    assert same_category > 0.65 and same_category > 5 * random_category


def test_carts_and_purchases(sessions: dict[str, list[dict[str, Any]]], stream: list[dict[str, Any]]) -> None:
    types = Counter(e["type"] for e in stream)
    assert 0.07 <= types["add_to_cart"] / types["view"] <= 0.13
    assert 0.2 <= types["purchase"] / types["add_to_cart"] <= 0.4
    assert 0 < types["dislike"] / types["view"] < 0.02
    assert 0.05 < types["impression"] / types["view"] < 0.3
    purchases = 0
    for sess in sessions.values():
        carted: set[str] = set()
        for e in sess:
            if e["type"] == "add_to_cart":
                carted.add(e["item_id"])
            elif e["type"] in ("purchase", "remove_from_cart"):
                assert e["item_id"] in carted, (e, sess)
                carted.discard(e["item_id"])
                purchases += e["type"] == "purchase"
    assert purchases == types["purchase"] > 100


def test_purchases_steer_later_sessions(catalog: Catalog, sessions: dict[str, list[dict[str, Any]]]) -> None:
    by_user: dict[str, list[list[dict[str, Any]]]] = defaultdict(list)
    for sess in sessions.values():
        by_user[sess[0]["user_id"]].append(sess)
    complements = {c: set(catalog.complements_of(c)) for c in catalog.categories}

    repeat = bought_total = follow = follow_total = 0
    for user_sessions in by_user.values():
        bought: set[str] = set()
        previous: set[str] = set()
        for sess in user_sessions:
            now_bought = {e["context"]["category"] for e in sess if e["type"] == "purchase"}
            repeat += len(now_bought & bought)
            bought_total += len(now_bought)
            views = _views(sess)
            if previous and views:  # the session right after a purchase
                follow_total += 1
                follow += any(views[0]["context"]["category"] in complements[c] for c in previous)
            bought |= now_bought
            previous = now_bought
    assert bought_total > 300 and follow_total > 200
    assert repeat / bought_total < 0.1  # a second treadmill is rare ...
    follow_rate = follow / follow_total
    assert follow_rate > 0.5  # ... the mats come next

    # Baseline: a random session's first view against a random purchase's complements.
    rng = random.Random(1)
    firsts = [_views(s)[0]["context"]["category"] for s in sessions.values() if _views(s)]
    bought_categories = [e["context"]["category"] for s in sessions.values() for e in s if e["type"] == "purchase"]
    baseline = np.mean([rng.choice(firsts) in complements[rng.choice(bought_categories)] for _ in range(3000)])
    assert follow_rate > 3 * baseline


def test_simulator_continues_across_calls(catalog: Catalog) -> None:
    whole = list(ShopSimulator(catalog, n_users=100, seed=5).events(limit=1000))
    sim = ShopSimulator(catalog, n_users=100, seed=5)
    parts = list(sim.events(limit=400)) + list(sim.events(limit=600))
    assert parts == whole


# --------------------------------------------------------------------------- producer against a real server


Responder = Callable[[int, list[Any]], tuple[int, dict[str, Any]]]


def _accept_all(index: int, batch: list[Any]) -> tuple[int, dict[str, Any]]:
    return 202, {"accepted": len(batch)}


class _Shop:
    """What the test server saw: every POSTed array, and the client ports (one per connection)."""

    def __init__(self) -> None:
        self.batches: list[list[dict[str, Any]]] = []
        self.paths: list[str] = []
        self.catalogs: list[list[dict[str, Any]]] = []
        self.client_ports: set[int] = set()
        self.lock = threading.Lock()

    @property
    def events(self) -> list[dict[str, Any]]:
        return [e for b in self.batches for e in b]


@contextmanager
def _server(respond: Responder = _accept_all, port: int = 0) -> Iterator[tuple[str, _Shop]]:
    shop = _Shop()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive
        disable_nagle_algorithm = True  # headers and body are two writes: no delayed-ACK stalls

        def do_POST(self) -> None:
            body = orjson.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if self.path == "/v1/items":  # the catalog, published once at the start
                shop.catalogs.append(body)
                data = orjson.dumps({"written": len(body), "unchanged": 0, "rejected": 0, "errors": []})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            with shop.lock:
                index = len(shop.batches)
                shop.batches.append(body)
                shop.paths.append(self.path)
                shop.client_ports.add(self.client_address[1])
            status, answer = respond(index, body)
            data = orjson.dumps(answer)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", shop
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _produce(url: str, rate: float, **kwargs: Any) -> ProduceStats:
    """:func:`produce` with a small shop, so that setup takes milliseconds."""
    return produce(url, rate, seed=7, n_users=100, n_items=300, **kwargs)


def test_produce_paces_batches_and_keeps_the_connection() -> None:
    log = io.StringIO()
    with _server() as (url, shop):
        began = time.time()
        stats = _produce(url, 2000.0, duration_s=None, max_events=400, batch_size=40, log=log)
    events = shop.events
    assert len(events) == stats.sent == stats.accepted == 400
    assert stats.rejected == stats.dropped == 0 and stats.ok
    assert stats.batches == len(shop.batches) >= 10
    assert all(1 <= len(b) <= 40 for b in shop.batches)
    assert set(shop.paths) == {"/v1/events"}
    assert len(shop.catalogs) == 1 and shop.catalogs[0][0]["categories"][0].startswith("sports/")
    assert len(shop.client_ports) == 1 and stats.reconnects == 0  # one keep-alive connection
    assert stats.elapsed_s >= 399 / 2000.0  # paced: the last event was not due before then
    now = time.time()
    for e in events:
        parse_event(e, now=now)
        assert began - 1 <= e["ts"] <= now + 1  # live timestamps
    assert len({e["event_id"] for e in events}) == 400
    assert log.getvalue() == ""


def test_produce_runs_for_a_duration() -> None:
    with _server() as (url, shop):
        stats = _produce(url, 500.0, duration_s=0.2, log=io.StringIO())
    assert stats.elapsed_s >= 0.2
    assert 0 < stats.sent == len(shop.events) <= 0.2 * 500 + 1
    assert stats.accepted == stats.sent


def test_produce_reports_rejected_batches_once_per_error() -> None:
    def respond(index: int, batch: list[Any]) -> tuple[int, dict[str, Any]]:
        if index in (1, 3):
            return 422, {"error": f"events[{index + 2}].ts: 1.0 is before 2000-01-01"}
        return 202, {"accepted": len(batch)}

    log = io.StringIO()
    with _server(respond) as (url, shop):
        stats = _produce(url, 2000.0, duration_s=None, max_events=300, batch_size=50, log=log)
    refused = len(shop.batches[1]) + len(shop.batches[3])
    assert stats.rejected == refused > 0
    assert stats.accepted == 300 - refused and stats.sent == 300
    assert stats.ok  # a rejection is reported, not fatal
    assert list(stats.errors.values()) == [refused]  # the two bodies differ only in numbers: one error
    (key,) = stats.errors
    assert "422" in key and "is before 2000" in key
    printed = log.getvalue()
    assert printed.count("rejected") == 1 and "events[3].ts" in printed


def test_produce_counts_a_partial_acceptance() -> None:
    with _server(lambda i, b: (202, {"accepted": len(b) - 1})) as (url, _shop):
        stats = _produce(url, 5000.0, duration_s=None, max_events=100, batch_size=25, log=io.StringIO())
    assert stats.accepted == 96 and stats.rejected == 4


def test_produce_waits_for_a_late_server_and_retries_unavailable() -> None:
    port = _free_port()
    log = io.StringIO()
    result: list[Any] = []
    worker = threading.Thread(
        target=lambda: result.append(
            _produce(f"http://127.0.0.1:{port}", 2000.0, duration_s=None, max_events=100, wait_s=10.0, log=log)
        )
    )
    worker.start()
    time.sleep(0.2)
    # The server comes up, answers 503 once (still starting), then accepts.
    with _server(lambda i, b: (503, {"error": "starting"}) if i == 0 else (202, {"accepted": len(b)}), port) as (
        _url,
        shop,
    ):
        worker.join(10)
    assert not worker.is_alive()
    (stats,) = result
    assert stats.ok and stats.accepted == 100 and stats.dropped == 0
    assert len(shop.events) == 100 + len(shop.batches[0])  # the 503'd batch was sent again
    assert [e["event_id"] for e in shop.batches[0]] == [e["event_id"] for e in shop.batches[1]]
    text = log.getvalue()
    assert f"waiting for the server at http://127.0.0.1:{port} ..." in text
    assert "is answering" in text


def test_produce_gives_up_on_a_server_that_never_answers() -> None:
    port = _free_port()
    log = io.StringIO()
    began = time.monotonic()
    stats = _produce(f"http://127.0.0.1:{port}", 1000.0, duration_s=None, max_events=10, wait_s=0.3, log=log)
    assert time.monotonic() - began < 3
    assert not stats.ok and stats.gave_up and stats.sent == 0 and stats.dropped > 0
    assert "waiting for the server" in log.getvalue() and "no answer from" in log.getvalue()


def test_produce_stops_on_the_stop_event() -> None:
    stop = threading.Event()
    with _server() as (url, shop):
        threading.Timer(0.1, stop.set).start()
        began = time.monotonic()
        stats = _produce(url, 1000.0, duration_s=None, stop=stop, log=io.StringIO())
    assert time.monotonic() - began < 2
    assert stats.sent == len(shop.events) > 0 and stats.dropped == 0


def test_produce_ends_cleanly_on_ctrl_c() -> None:
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("KeyboardInterrupt goes to the main thread")
    import _thread

    def respond(index: int, batch: list[Any]) -> tuple[int, dict[str, Any]]:
        if index == 2:
            _thread.interrupt_main()  # as if Ctrl-C were pressed
        return 202, {"accepted": len(batch)}

    with _server(respond) as (url, _shop):
        stats = _produce(url, 2000.0, duration_s=5.0, log=io.StringIO())
    assert stats.interrupted and stats.elapsed_s < 4
    assert "(interrupted)" in stats.summary()


def test_cli_flags_and_run(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    defaults = parser.parse_args([])
    assert (defaults.url, defaults.rate, defaults.users, defaults.items, defaults.seed, defaults.duration) == (
        None, 200.0, 5000, 2000, 7, None,
    )
    assert default_url(Settings(host="127.0.0.1", port=8123)) == "http://127.0.0.1:8123"
    with _server() as (url, shop):
        args = parser.parse_args(["--url", url, "--rate", "1000", "--duration", "0.1", "--users", "50",
                                  "--items", "200", "--batch-size", "20"])
        assert run(args, Settings()) == 0
    assert shop.events and all(len(b) <= 20 for b in shop.batches)
    assert "produced" in capsys.readouterr().err
    port = _free_port()
    args = parser.parse_args(["--wait", "0.1", "--users", "10", "--items", "100"])
    assert run(args, Settings(port=port)) == 1  # nothing listens: waits, then gives up
    assert f"waiting for the server at http://127.0.0.1:{port}" in capsys.readouterr().err
