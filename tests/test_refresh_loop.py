"""The server's background refreshes end when cancelled, even when a cancellation is swallowed on the way.

Python 3.11's ``asyncio.wait_for`` (which redis-py wraps around each write when a
socket timeout is set, as the server's client does) drops a ``cancel()`` that lands
in the loop turn its inner task finished: a refresh loop cancelled mid-pipeline went
back to sleep, never done (the full suite's ``test_serving_loop_holds`` waited 30 s
for it). Through a real Redis, and with a refresh that swallows the cancel the same way.
"""

from __future__ import annotations

import asyncio
import random

import redis

from flows.catalog_store import CatalogStore
from online.catalog.item import parse_item
from online.contract import Settings
from serving.catalog_state import ServingCatalog
from serving.redis_connect import connect_async
from serving.refresh_loop import refresh_forever


def test_a_cancel_swallowed_inside_a_refresh_still_ends_the_loop() -> None:
    async def scenario() -> tuple[bool, int]:
        refreshes = 0
        entered = asyncio.Event()

        async def swallowing_refresh() -> None:  # what 3.11's wait_for does when its inner task is already done
            nonlocal refreshes
            refreshes += 1
            entered.set()
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                return

        task = asyncio.ensure_future(refresh_forever(swallowing_refresh, lambda: 0.0, "test"))
        await entered.wait()
        task.cancel()
        await asyncio.wait([task], timeout=5)
        return task.cancelled(), refreshes

    cancelled, refreshes = asyncio.run(scenario())
    assert cancelled, "the refresh loop went on after its cancel was swallowed"
    assert refreshes == 1


def test_the_catalog_refresh_cancelled_mid_pipeline_always_ends(redis_url: str, settings: Settings) -> None:
    store = CatalogStore(redis.Redis.from_url(redis_url), settings.keys)
    store.put_many([parse_item({"item_id": f"sku-{k:05d}", "categories": [f"c{k % 10}"], "price": 1.0 + k % 100})
                    for k in range(3000)])
    rng = random.Random(7)

    async def scenario() -> list[str]:
        client = connect_async(redis_url, socket_connect_timeout=1.0, socket_timeout=2.0)  # as the server's client
        stuck: list[str] = []
        try:
            for trial in range(60):
                catalog = ServingCatalog(settings.keys, interval_s=0.0)  # empty: 30 pipelines to catch up
                task = asyncio.ensure_future(catalog.run(client))
                await asyncio.sleep(rng.random() * 0.03)
                task.cancel()
                await asyncio.wait([task], timeout=5)
                if not task.done():
                    stuck.append(f"trial {trial}: {task!r}")
                    break  # it would stay so: the loop sleeps on, its cancel gone
        finally:
            await client.aclose()
        return stuck

    stuck = asyncio.run(scenario())
    assert not stuck, f"a cancelled catalog refresh did not end: {stuck}"
