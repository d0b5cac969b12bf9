"""The console's screenshot in docs/: a real system, a real user's list, Debian's headless Chromium.

``python -m benchmarks.console_screenshot [--out docs/console.png]`` (or ``make screenshot``) starts an
embedded Redis, real ``livereco flow`` and ``livereco serve`` processes and the synthetic shop (200
events/s), sends a few events for the user ``ada``, waits for her personal list, opens
``/console?user=ada&item=<her first item>`` in headless Chromium (driven by Playwright, no browser
download) and saves the page. The helpers here are also what ``tests/test_console.py`` drives the browser
with.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
"""Flags that work in a container as root, with no network beyond the server under test."""


def chromium_path() -> str | None:
    """Debian's ``chromium`` (or another Chromium/Chrome on PATH), if any."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def why_no_browser() -> str | None:
    """Why the console cannot be driven here (None: it can)."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright Python package is not installed (pip install -e '.[dev]')"
    if chromium_path() is None:
        return "no chromium on PATH: install Debian's chromium package (CI does as root)"
    return None


@contextmanager
def browser_page(width: int = 1400, height: int = 1000) -> Iterator[Any]:
    """A page of a fresh headless Chromium (its own temporary profile), closed afterwards."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright, tempfile.TemporaryDirectory(prefix="livereco-chromium-") as profile:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS,
            viewport={"width": width, "height": height})
        try:
            page = context.new_page()
            page.set_default_timeout(20_000)
            yield page
        finally:
            context.close()


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return json.loads(answer.read())


def post_json(url: str, body: Any) -> int:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as answer:
        return int(answer.status)


def wait_for_personal_list(base: str, user: str, timeout_s: float = 30.0) -> dict[str, Any]:
    """The user's list once the flow has written it and it holds still (two equal answers 0.5 s apart)."""
    deadline = time.monotonic() + timeout_s
    previous: list[str] | None = None
    while time.monotonic() < deadline:
        answer = get_json(f"{base}/v1/users/{user}/recommendations?n=10")
        items = [item["item_id"] for item in answer["items"]]
        if answer["source"] == "personal" and items and items == previous:
            return dict(answer)
        previous = items if answer["source"] == "personal" else None
        time.sleep(0.5)
    raise TimeoutError(f"{user}: no stable personal list within {timeout_s:g} s")


def console_rows(page: Any, table: str) -> list[str]:
    """The item ids the console shows in a list table, in order."""
    return [str(v) for v in page.eval_on_selector_all(f"#{table} tbody tr[data-item-id]",
                                                      "rows => rows.map(r => r.dataset.itemId)")]


def figure(page: Any, element_id: str) -> float | None:
    """The number behind a figure of the console (its ``data-value``), None while it has none."""
    value = page.get_attribute(f"#{element_id}", "data-value")
    return float(value) if value else None


def ask_for_lists(base: str, stop: threading.Event, rate: float = 20.0) -> None:
    """What a shop's pages do: ask for lists (the shop's users and ``ada``), until ``stop``."""
    k = 0
    while not stop.wait(1.0 / rate):
        user = "ada" if k % 5 == 0 else f"user-{(k * 37) % 5000:04d}"
        with suppress(OSError):
            get_json(f"{base}/v1/users/{user}/recommendations?n=10")
        k += 1


ADA = [("sku-00001", "view"), ("sku-00002", "view"), ("sku-00003", "add_to_cart"), ("sku-00002", "view")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "console.png")
    parser.add_argument("--warm-up", type=float, default=8.0, help="seconds of synthetic traffic first (default: 8)")
    args = parser.parse_args(argv)
    problem = why_no_browser()
    if problem:
        print(f"console_screenshot: {problem}", file=sys.stderr)
        return 1
    from flows.embedded_redis import EmbeddedRedis
    from flows.synthetic_shop.producer import produce
    from tests.processes import flow_and_server

    stop = threading.Event()
    with EmbeddedRedis() as redis, flow_and_server(redis.url, f"shot{uuid.uuid4().hex[:6]}") as (base, _):
        shop = threading.Thread(target=produce, args=(base, 200.0), daemon=True,
                                kwargs={"stop": stop, "log": open("/dev/null", "w")})  # noqa: SIM115
        shop.start()
        pages = threading.Thread(target=ask_for_lists, args=(base, stop), daemon=True)
        pages.start()
        try:
            time.sleep(args.warm_up)
            now = time.time()
            post_json(f"{base}/v1/events", [
                {"user_id": "ada", "item_id": item, "type": kind, "event_id": f"ada-{k}", "ts": now - 60 + k,
                 "context": {"device": "web"}} for k, (item, kind) in enumerate(ADA)])
            wait_for_personal_list(base, "ada")
            with browser_page() as page:
                page.goto(f"{base}/console?user=ada&item={ADA[0][0]}")
                page.wait_for_selector("#user-list tbody tr[data-item-id]")
                page.wait_for_selector("#item-similar tbody tr[data-item-id]")
                page.wait_for_function("Number(document.getElementById('flow-events-per-s').dataset.value) > 0")
                page.wait_for_timeout(2500)  # one more poll: rates over a few seconds of the shop
                args.out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(args.out), full_page=True)
        finally:
            stop.set()
            shop.join(timeout=10)
            pages.join(timeout=5)
    print(f"console_screenshot: wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
