"""``livereco export`` against a real Redis: the same lists the server serves, filters and rules applied, CSV too."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
import time

import orjson
import redis

from flows.catalog_store import CatalogStore
from flows.export import export
from online.catalog.filters import Filters
from online.catalog.item import parse_item
from online.catalog.rules import parse_rules
from online.contract import CandidateList, RedisKeys, Settings, encode_candidates
from tests.conftest import LiveServer
from tests.processes import ROOT


def _seed(client: redis.Redis, keys: RedisKeys, users: int) -> None:
    store = CatalogStore(client, keys)
    store.put_many([parse_item({"item_id": f"i{k}", "categories": [f"c{k % 3}"], "price": float(k),
                                "in_stock": k != 4}) for k in range(30)])
    store.put_rules(parse_rules({"rules": [{"kind": "block", "items": ["i7"]}]}))
    for u in range(users):
        items = [f"i{(u + k) % 30}" for k in range(12)]
        client.set(keys.user_recs(f"u{u}"), encode_candidates(CandidateList(items, [12.0 - k for k in range(12)])))
    client.zadd(keys.trending(), {f"i{k}": 30.0 - k for k in range(30)})


def test_export_writes_what_the_server_serves(live_server: LiveServer, redis_client: redis.Redis, keys: RedisKeys,
                                             settings: Settings) -> None:
    _seed(redis_client, keys, 2500)  # three SCAN pages
    out = io.StringIO()
    assert export(redis_client, settings, out, "jsonl", n=5, page=1000, progress=False) == 2500
    lines = [orjson.loads(line) for line in out.getvalue().splitlines()]
    assert len({line["user_id"] for line in lines}) == 2500
    time.sleep(0.5)  # the server's catalog copy: within ~250 ms
    for line in lines[:20]:
        status, served = live_server.json("GET", f"/v1/users/{line['user_id']}/recommendations?n=5")
        assert status == 200 and served["items"] == line["items"]
        assert all(e["item_id"] not in ("i4", "i7") for e in line["items"])  # out of stock, blocked
    filtered = io.StringIO()
    export(redis_client, settings, filtered, "csv", n=3, filters=Filters(categories=("c1",), max_price=20.0),
           progress=False)
    rows = list(csv.DictReader(io.StringIO(filtered.getvalue())))
    assert len(rows) == 3 * 2500
    assert all(int(row["item_id"][1:]) % 3 == 1 and int(row["item_id"][1:]) <= 20 for row in rows)


def test_the_export_command(redis_client: redis.Redis, keys: RedisKeys, settings: Settings, redis_url: str) -> None:
    _seed(redis_client, keys, 10)
    env = {"REDIS_URL": redis_url, "LIVERECO_NAMESPACE": settings.namespace, "LIVERECO_PARTITIONS": "2",
           "PATH": "/usr/bin:/bin"}
    run = subprocess.run([sys.executable, "-m", "flows.cli", "export", "--format", "csv", "--n", "2", "--category",
                          "c2", "--no-progress"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    rows = list(csv.DictReader(io.StringIO(run.stdout)))
    assert len(rows) == 20 and {row["item_id"] for row in rows} <= {f"i{k}" for k in range(2, 30, 3)}
    assert "10 users" in run.stderr
