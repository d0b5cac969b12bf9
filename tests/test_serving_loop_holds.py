"""The serving event loop is never held long by background work: a bulk catalog import is applied in small batches.

Through the real server (:class:`conftest.LiveServer`: the app on livereco's
own HTTP server, its event loop in a thread) and a real Redis: a ticker task
on the server's loop notes the loop thread's CPU time between its turns while
the server catches up with 10,000 catalog changes. CPU time, not wall time, so
a busy machine does not move it.
"""

from __future__ import annotations

import asyncio
import gc
import time
from typing import Any

import redis

from flows.catalog_store import CatalogStore
from online.catalog.item import parse_item
from online.contract import RedisKeys
from serving.catalog_state import SERVING_BATCH

CHANGES = 10_000


def _items(count: int, price: float) -> list[Any]:
    return [parse_item({"item_id": f"sku-{k:05d}", "categories": [f"c{k % 10}/s{k % 7}"], "brand": f"b{k % 20}",
                        "price": price + k % 100, "in_stock": k % 20 != 3, "attributes": {"color": "red"}})
            for k in range(count)]


def _wait_for_version(app: Any, version: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while app.catalog.snapshot.version < version:
        assert time.monotonic() < deadline, f"the server's catalog stayed at {app.catalog.snapshot.version} < {version}"
        time.sleep(0.02)


async def _ticker(holds: list[float], stop: asyncio.Event) -> None:
    """The loop thread's CPU seconds between this task's turns, until ``stop``."""
    last = time.thread_time()
    while not stop.is_set():
        await asyncio.sleep(0)
        now = time.thread_time()
        holds.append(now - last)
        last = now


def _why_not_done(task: asyncio.Task[None], loop_thread: Any) -> str:
    """Where the task waits and what the loop thread runs: what a failure needs to be understood."""
    import io
    import sys
    import traceback

    out = io.StringIO()
    task.print_stack(file=out)
    frame = sys._current_frames().get(loop_thread.ident)
    out.write("loop thread:\n" + "".join(traceback.format_stack(frame)) if frame is not None else "loop thread gone\n")
    return f"the cancelled catalog refresh task did not finish:\n{out.getvalue()}"


def test_bulk_catalog_import_never_holds_the_loop(live_server: Any, redis_client: redis.Redis,
                                                  keys: RedisKeys) -> None:
    app = live_server.app
    store = CatalogStore(redis_client, keys)
    store.put_many(_items(100, 1.0))
    _wait_for_version(app, store.version())
    assert app.catalog.replica.change_count == SERVING_BATCH  # the refresh task is running, in serving batches
    task = app._catalog_task
    loop = task.get_loop()
    loop.call_soon_threadsafe(task.cancel)  # the refresh below, with the task's batches, is the only one
    deadline = time.monotonic() + 30  # a generous bound: a loaded machine once took over 10 s to run the cancel
    while not task.done():
        assert time.monotonic() < deadline, _why_not_done(task, live_server.thread)
        time.sleep(0.01)

    store.put_many(_items(CHANGES, 2.0))
    target = store.version()
    holds: list[float] = []

    async def measured_refresh() -> None:
        stop = asyncio.Event()
        ticker = asyncio.ensure_future(_ticker(holds, stop))
        await asyncio.sleep(0)
        await app.catalog.refresh(app.client)
        stop.set()
        await ticker

    # The server runs in this test process, beside everything the suite has built: its heap is frozen as
    # serving.server's tune_gc freezes a server's at start-up, or a full collection of the suite's objects
    # (tens of ms) would land in whichever turn of the loop allocated last.
    gc.collect()
    gc.freeze()
    try:
        asyncio.run_coroutine_threadsafe(measured_refresh(), loop).result(timeout=60)
    finally:
        gc.unfreeze()
    assert app.catalog.snapshot.version == target
    assert len(app.catalog.snapshot) == CHANGES
    # ~13 µs a change: 10,000 in one batch held the loop ~130 ms of CPU at once; SERVING_BATCH at a time, ~1.5 ms
    assert len(holds) >= CHANGES // SERVING_BATCH, len(holds)
    assert max(holds) < 0.02, f"the loop was held {max(holds) * 1e3:.1f} ms of CPU at once"
