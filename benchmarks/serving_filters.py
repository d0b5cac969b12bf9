"""What filters and rules cost per request: ``benchmarks.serving --filters`` (a 100k-item catalog, one server process).

The same users and lists as :mod:`benchmarks.serving`; ``wrk`` at saturation,
one run of ``--duration`` seconds per case, each case on the same server:

* ``no catalog``: the hot path as it was before the catalog existed;
* ``catalog, defaults``: the 100k-item catalog loaded (stock and availability
  filter, diversity cap 3 in 10);
* ``+ filters``: a category, a price range and an attribute;
* ``+ rules``: those filters and the six rule kinds in force (under a
  new-arrivals rule an answer expires when an item becomes or stops being new);
* ``+ rules, no new_arrivals``: the other five kinds.

``--http livereco:0,livereco`` runs each case on two servers side by side
(``LIVERECO_HTTP_SERVER[:LIVERECO_SERVED_CACHE_LISTS]``; here: the served-list
cache off and on), one server after the other through every case, for a
before/after in one run.

Reported: achieved req/s, latency p50/p99 and the server's CPU µs per request
(user + system, the figure least moved by other jobs on a shared machine).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

from benchmarks.serving_harness import ROOT, USERS, run_wrk, server_process, session_cpu_s
from flows.catalog_store import CatalogStore
from flows.embedded_redis import free_port
from online.catalog.item import parse_item
from online.catalog.rules import parse_rules
from online.contract import RedisKeys

__all__ = ["CASES", "bench_filters", "seed_catalog"]

FILTERS = "&category=c1&min_price=10&max_price=200&attr.color=red"
RULES = {"rules": [
    {"kind": "block", "brands": ["b7"]},
    {"kind": "boost", "factor": 2.0, "categories": ["c1/s2"]},
    {"kind": "bury", "factor": 0.5, "tags": ["clearance"]},
    {"kind": "new_arrivals", "days": 14, "factor": 1.5},
    {"kind": "pin", "item": "sku-00001", "position": 1, "categories": ["c1"]},
    {"kind": "promotion", "name": "summer", "slots": 2, "of": 10, "filter": {"tags": ["summer"]}}]}
CASES: tuple[tuple[str, str, dict[str, Any] | None], ...] = (
    ("catalog, defaults (stock + diversity)", "", None),
    ("+ category, price range, attribute", FILTERS, None),
    ("+ rules (6 kinds)", FILTERS, RULES),
    ("+ rules (5 kinds, no new_arrivals)", FILTERS,
     {"rules": [rule for rule in RULES["rules"] if rule["kind"] != "new_arrivals"]}),
)
"""Each case: its label, its query and the rules put in force before it (``None``: as before)."""


def seed_catalog(url: str, namespace: str, items: int) -> None:
    """``items`` items: 10 top categories of 7 subcategories, 20 brands, prices 1-500, 5% out of stock, tags."""
    store = CatalogStore(redis.Redis.from_url(url), RedisKeys(namespace, 4))
    batch = []
    for k in range(items):
        batch.append(parse_item({
            "item_id": f"sku-{k:05d}", "categories": [f"c{k % 10}/s{k % 7}"], "brand": f"b{k % 20}",
            "price": float(1 + (k * 37) % 500), "in_stock": k % 20 != 3,
            "tags": ["summer"] if k % 50 == 0 else ["clearance"] if k % 30 == 0 else [],
            "attributes": {"color": ("red", "blue", "green")[k % 3]}, "created_at": 1.7e9 + k}))
        if len(batch) == 1000:
            store.put_many(batch)
            batch = []
    if batch:
        store.put_many(batch)


def _script(directory: Path, name: str, query: str) -> str:
    path = directory / f"{name}.lua"
    path.write_text(f"""
math.randomseed(7)
request = function()
  return wrk.format("GET", "/v1/users/u" .. math.random(0, {USERS - 1}) .. "/recommendations?n=10{query}")
end
""")
    return str(path)


def bench_filters(redis_url: str, namespace: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    """One saturation run per case and server (``args.http``; the first case without a catalog); rows of the table."""
    rows: list[dict[str, Any]] = []
    servers = list(getattr(args, "http", None) or ["livereco"])
    command = [sys.executable, "-m", "flows.cli", "serve", "--workers", "1"]

    def started(stack: contextlib.ExitStack, *specs: str) -> list[tuple[str, str, int]]:
        """The servers of ``specs`` started (each on a port picked just before it starts): spec, URL, session."""
        running = []
        for spec in specs:
            http, _, cache = spec.partition(":")
            port = free_port()
            env = {**os.environ, "REDIS_URL": redis_url, "LIVERECO_NAMESPACE": namespace, "LIVERECO_PORT": str(port),
                   "PYTHONPATH": str(ROOT), "LIVERECO_HTTP_SERVER": http,
                   # no flow runs here: the seeded catalog changes stay unread, which /readyz would call a stall
                   "LIVERECO_FLOW_STALE_S": "3600"}
            if cache:
                env["LIVERECO_SERVED_CACHE_LISTS"] = cache
            running.append((spec, *stack.enter_context(server_process(command, env, port))))
        return running

    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)

        def measure(label: str, base: str, session: int, query: str) -> None:
            script = _script(directory, str(len(rows)), query)
            run_wrk(base, 2, args.connections, script)
            cpu = session_cpu_s(session)
            result = run_wrk(base, args.duration, args.connections, script)
            answered = result["achieved"] * args.duration
            rows.append({"case": label, **result, "cpu_us": (session_cpu_s(session) - cpu) / answered * 1e6})
            print(f"{label}: {result['achieved']:,.0f} req/s, p50 {result['p50']:.2f} ms, "
                  f"{rows[-1]['cpu_us']:.0f} µs CPU/req", file=sys.stderr)

        def label_of(case: str, spec: str) -> str:
            return case if len(servers) == 1 else f"{case} [{spec}]"

        for spec in servers:
            with contextlib.ExitStack() as stack:
                for _, base, session in started(stack, spec):
                    measure(label_of("no catalog (the hot path)", spec), base, session, "")
        seed_catalog(redis_url, namespace, args.items)
        store = CatalogStore(redis.Redis.from_url(redis_url), RedisKeys(namespace, 4))
        for spec in servers:  # one server at a time, each through every case
            store.put_rules(parse_rules({"rules": []}))
            with contextlib.ExitStack() as stack:
                ((_, base, session),) = started(stack, spec)
                for label, query, rules in CASES:
                    if rules is not None:
                        store.put_rules(parse_rules(rules))
                        time.sleep(1.0)  # the server's copy refreshes every ~250 ms
                    measure(label_of(label, spec), base, session, query)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| case | req/s | p50 ms | p99 ms | server CPU µs/req |", "|---|---|---|---|---|"]
    lines += [f"| {r['case']} | {r['achieved']:,.0f} | {r['p50']:.2f} | {r['p99']:.2f} | {r['cpu_us']:.0f} |"
              for r in rows]
    return "\n".join(lines)
