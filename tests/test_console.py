"""The web console in a real headless Chromium, against real flow and server processes.

The page is loaded from the server, a user is looked up by typing into the page (the keyboard, as a reader
would), and what the page shows is checked against the API: the user's list holds the item ids the API
answers, in order, and the throughput figures are above zero. With API keys, the page is open but its data
needs a read key, typed into its key field and sent as a Bearer token.
"""

from __future__ import annotations

import time

import orjson
import pytest

from benchmarks.console_screenshot import browser_page, console_rows, figure, wait_for_personal_list, why_no_browser
from flows.embedded_redis import free_port
from tests.processes import flow_and_server, get, livereco_process, post, process_env

NO_BROWSER = why_no_browser()
needs_browser = pytest.mark.skipif(NO_BROWSER is not None, reason=f"console browser test skipped: {NO_BROWSER}")


def events(user: str, items: list[str], run: str) -> bytes:
    return orjson.dumps([{"user_id": user, "item_id": item, "type": "view", "event_id": f"{run}-{user}-{k}",
                          "context": {"category": f"cat{k % 2}"}} for k, item in enumerate(items)])


def test_the_console_is_served_open_with_its_assets(redis_url: str, namespace: str) -> None:
    """Without a browser too: the page, its script and style, with their types, and the summary's shape."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = process_env(redis_url, namespace, port, free_port(), LIVERECO_API_KEYS="read:console-read-key-0123456789")
    with livereco_process(env, "serve", ready_url=f"{base}/readyz"):
        status, page = get(f"{base}/console")
        assert status == 200 and b'<script src="/console/console.js"' in page
        for asset in ("console.js", "console.css"):
            assert get(f"{base}/console/{asset}")[0] == 200
        assert get(f"{base}/v1/console/summary")[0] == 401  # the data needs a read key


@pytest.mark.slow
@needs_browser
def test_the_console_shows_a_users_list_and_live_throughput(redis_url: str, namespace: str) -> None:
    with flow_and_server(redis_url, namespace) as (base, _):
        # Sessions that go from item to item make co-visitation neighbours; ada then views two of the items.
        for u in range(8):
            assert post(f"{base}/v1/events", events(f"shopper{u}", [f"sku-{(u + k) % 6}" for k in range(4)], "r"))[0] == 202
        assert post(f"{base}/v1/events", events("ada", ["sku-1", "sku-2"], "r"))[0] == 202
        expected = wait_for_personal_list(base, "ada")
        expected_ids = [item["item_id"] for item in expected["items"]]

        summary = orjson.loads(get(f"{base}/v1/console/summary")[1])
        assert summary["flow"]["metrics_reachable"], summary["flow"]["metrics_note"]
        assert summary["flow"]["events_total"] > 0

        with browser_page() as page:
            page.goto(f"{base}/console")
            assert page.title() == "livereco console"
            page.get_by_label("User id").fill("ada")
            page.get_by_label("User id").press("Enter")  # the form submits from the keyboard
            page.wait_for_selector("#user-list tbody tr[data-item-id]")
            assert console_rows(page, "user-list") == expected_ids
            sources = page.eval_on_selector_all("#user-list tbody tr td.source", "cells => cells.map(c => c.textContent)")
            assert sources == [item["source"] for item in expected["items"]]
            assert "personal" in sources
            recent = page.eval_on_selector_all("#user-recent tbody tr td.item", "cells => cells.map(c => c.textContent)")
            assert set(recent) == {"sku-1", "sku-2"}

            page.wait_for_function("Number(document.getElementById('flow-events-per-s').dataset.value) > 0")
            assert (figure(page, "flow-events-per-s") or 0) > 0
            assert (figure(page, "server-events-per-s") or 0) > 0
            assert (figure(page, "freshness-p99") or 0) > 0
            assert page.is_hidden("#flow-note")

            # An item's similar items, opened by activating an item id of the list with the keyboard.
            page.focus("#user-list tbody tr[data-item-id] button")
            first = console_rows(page, "user-list")[0]
            page.keyboard.press("Enter")
            page.wait_for_function(f"document.querySelector('#item-similar tbody tr[data-item-id]') !== null"
                                   f" && document.getElementById('item-id').value === {orjson.dumps(first).decode()}")
            similar = orjson.loads(get(f"{base}/v1/items/{first}/similar?n=10")[1])
            assert console_rows(page, "item-similar") == [item["item_id"] for item in similar["items"]]


@pytest.mark.slow
@needs_browser
def test_with_keys_the_page_asks_for_a_read_key_and_says_what_the_server_knows(redis_url: str, namespace: str) -> None:
    """No flow runs here: the summary says its metrics are unreachable, and the page says so."""
    port, key = free_port(), "console-read-key-0123456789"
    base = f"http://127.0.0.1:{port}"
    env = process_env(redis_url, namespace, port, free_port(), LIVERECO_API_KEYS=f"read:{key}")
    with livereco_process(env, "serve", ready_url=f"{base}/readyz"), browser_page() as page:
        page.goto(f"{base}/console")
        page.wait_for_function("document.getElementById('status').textContent.includes('401')")
        page.get_by_label("API key (read scope)").fill(key)
        page.get_by_label("API key (read scope)").press("Enter")
        page.wait_for_function("document.getElementById('status').textContent.startsWith('Live')")
        assert page.evaluate("sessionStorage.getItem('livereco.apiKey')") == key
        note = page.text_content("#flow-note") or ""
        assert page.is_visible("#flow-note") and "not reachable" in note and "/metrics" in note
        page.get_by_label("User id").fill("nobody")
        page.get_by_label("User id").press("Enter")
        page.wait_for_function("document.getElementById('user-session').textContent.includes('No profile')")
        deadline = time.monotonic() + 5
        while figure(page, "server-requests-per-s") is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert figure(page, "server-requests-per-s") is not None
