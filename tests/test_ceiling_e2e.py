"""The end-to-end ceiling's empty flow is a real flow process over real Redis streams: it drains every event."""

from __future__ import annotations

import redis

from benchmarks.ceiling_e2e import counter_key, empty_throughput
from benchmarks.ingest import PARTITIONS, shop_events, write_all


def test_the_empty_flow_process_drains_every_event_and_writes_each_user_once(redis_url: str, namespace: str) -> None:
    events = shop_events(20_000)
    write_all(redis_url, namespace, events)
    rate = empty_throughput(redis_url, namespace, PARTITIONS, len(events), timeout_s=120)
    client = redis.Redis.from_url(redis_url)
    assert int(client.get(counter_key(namespace)) or 0) == len(events)
    users = {event.user_id for event in events}
    written = sum(1 for _ in client.scan_iter(f"{namespace}:ceiling:list:*", count=1000))
    assert written == len(users)
    assert rate > 0
