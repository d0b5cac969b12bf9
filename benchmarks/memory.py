"""Memory benchmark: Redis bytes per user and per item, and flow RSS over a long soak.

1. Redis, as the flow writes it: synthetic sessions (10 events per user) go
   through the real dataflow and the real Redis sink into an embedded Redis;
   bytes per user are the ``MEMORY USAGE`` of the user's two keys (candidate
   list + profile) and the ``used_memory`` delta over users, bytes per item the
   ``MEMORY USAGE`` of its neighbour list.
2. Redis, full lists: every user written by the real sink (``RedisSink``) with
   exactly ``LIVERECO_CANDIDATES`` (50) candidates and ``LIVERECO_RECENT_ITEMS``
   (20) recent items, a 32-d session embedding and ``--affinities`` (5, what
   the flow writes) category affinities, every item with ``LIVERECO_NEIGHBOURS``
   (50) neighbours: the upper bound of what production stores. The previous
   encoding (version 1) and other layouts are written the same way and
   measured beside it (nothing in production changes).
3. Flow RSS soak: the real dataflow (default stages, one worker) over
   ``--events`` synthetic events of ``--users`` users (who come round in a
   cycle, so every user has been seen by half-way) and ``--items`` Zipf-popular
   items, fed by a lazy generator (``TestingSource`` over a generator keeps
   one batch in memory) into a sink that discards writes. It runs in a child
   process; VmRSS is sampled every ``--sample-every`` events.

4. With ``--state-breakdown``, the soak is instrumented instead
   (:mod:`benchmarks.state_breakdown`): at ``--breakdown-points`` points it
   also walks a sample of every stage's keys and prints bytes per user and per
   item for each state structure, pymalloc's live and free bytes, and how full
   each bounded structure is.

    .venv/bin/python -m benchmarks.memory                 # 2M events, 200k users, 50k items (~10 min)
    .venv/bin/python -m benchmarks.memory --quick         # small sizes, a smoke check (~30 s)
    .venv/bin/python -m benchmarks.memory --no-soak --redis-users 10000   # only the Redis measurements (~1 min)
    .venv/bin/python -m benchmarks.memory --events 500000 --users 50000 --json
    .venv/bin/python -m benchmarks.memory --no-redis --users 20000 --events 200000 --state-breakdown
    .venv/bin/python -m benchmarks.memory --no-redis --user-ttl-s 60          # idle users leave after 60 s
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from functools import partial
from typing import Any

import orjson

from benchmarks.child_process import run_in_child
from benchmarks.machine import machine_line
from benchmarks.memory_workload import PROFILE_AFFINITIES
from benchmarks.redis_footprint import (
    Alternative,
    FlowFootprint,
    FullFootprint,
    alternative_footprints,
    flow_footprint,
    full_footprint,
    print_redis,
)
from benchmarks.rss_soak import SoakResult, print_soak, soak_in_child
from benchmarks.state_breakdown import print_breakdown, run_breakdown
from flows.embedded_redis import EmbeddedRedis
from online.contract import Settings


def _print_report(flow: FlowFootprint | None, full: list[FullFootprint], alternatives: list[Alternative],
                  result: SoakResult | None, sample_every: int) -> None:
    if flow is not None:
        print_redis(flow, full, alternatives)
    if result is not None:
        print_soak(result, sample_every)


def _state_breakdown(args: argparse.Namespace, machine: str, settings: Settings, flow: FlowFootprint | None,
                     full: list[FullFootprint], alternatives: list[Alternative]) -> int:
    """The soak instrumented by :mod:`benchmarks.state_breakdown`."""
    points = [args.events * (i + 1) // args.breakdown_points for i in range(max(1, args.breakdown_points))]
    breakdown = run_in_child(partial(run_breakdown, progress=True), settings, args.events, args.users, args.items,
                             points, args.breakdown_sample, what="breakdown")
    if args.json:
        print(orjson.dumps({"machine": machine, "redis_flow": asdict(flow) if flow else None,
                            "redis_full": [asdict(f) for f in full], "alternatives": [asdict(a) for a in alternatives],
                            "breakdown": asdict(breakdown)}, option=orjson.OPT_INDENT_2).decode())
        return 0
    if flow is not None:
        print_redis(flow, full, alternatives)
    print_breakdown(breakdown)
    print(machine)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=2_000_000, help="soak events")
    parser.add_argument("--users", type=int, default=200_000, help="soak users (they come round in a cycle)")
    parser.add_argument("--items", type=int, default=50_000, help="catalog size (Zipf popularity)")
    parser.add_argument("--sample-every", type=int, default=100_000, help="RSS sample interval, in events")
    parser.add_argument("--redis-users", type=int, default=20_000,
                        help="users for the Redis measurements (10 events each through the flow)")
    parser.add_argument("--no-redis", action="store_true", help="only the RSS soak")
    parser.add_argument("--no-soak", action="store_true", help="only the Redis measurements (no RSS soak)")
    parser.add_argument("--affinities", type=int, default=PROFILE_AFFINITIES,
                        help="category affinities in each full user's profile (the flow writes 5, keeps up to 16)")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke check in about half a minute")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of tables")
    parser.add_argument("--user-ttl-s", type=int, default=None,
                        help="LIVERECO_USER_TTL_S for the soak's flow (default: the setting's default)")
    parser.add_argument("--state-breakdown", action="store_true",
                        help="instrumented soak: bytes per user and per item for each state structure")
    parser.add_argument("--breakdown-points", type=int, default=4, help="with --state-breakdown: how many tables")
    parser.add_argument("--breakdown-sample", type=int, default=1000,
                        help="with --state-breakdown: keys walked per stage at each point (0: all)")
    args = parser.parse_args(argv)
    if args.quick:
        args.events, args.users, args.items, args.sample_every, args.redis_users = 60_000, 6_000, 5_000, 10_000, 1_000
    machine = machine_line()
    if not args.json:
        print(machine)
    flow: FlowFootprint | None = None
    full: list[FullFootprint] = []
    alternatives: list[Alternative] = []
    if not args.no_redis:
        with EmbeddedRedis() as server:
            flow = flow_footprint(server.url, args.redis_users, items=min(args.items, 20_000))
            full = [full_footprint(server.url, args.redis_users, args.redis_users // 4, style, args.affinities)
                    for style in ("sku", "numeric")]
            alternatives = alternative_footprints(server.url, args.redis_users, affinities=args.affinities)
    overrides: dict[str, Any] = {} if args.user_ttl_s is None else {"user_ttl_s": args.user_ttl_s}
    settings = Settings.from_env({}, redis_url="", flow_metrics_port=0, **overrides)
    if args.state_breakdown:
        return _state_breakdown(args, machine, settings, flow, full, alternatives)
    if args.no_soak:
        if args.json:
            print(orjson.dumps({"machine": machine, "redis_flow": asdict(flow) if flow else None,
                                "redis_full": [asdict(f) for f in full],
                                "alternatives": [asdict(a) for a in alternatives]}, option=orjson.OPT_INDENT_2).decode())
        else:
            _print_report(flow, full, alternatives, None, args.sample_every)
            print(machine)
        return 0
    result = soak_in_child(settings, args.events, args.users, args.items, args.sample_every)
    if args.json:
        grown, pct = result.growth_last_half()
        print(orjson.dumps({
            "machine": machine, "redis_flow": asdict(flow) if flow else None, "redis_full": [asdict(f) for f in full],
            "alternatives": [asdict(a) for a in alternatives],
            "soak": {**asdict(result), "events_per_s": round(result.events_per_s, 1),
                     "growth_last_half_mib": round(grown, 1), "growth_last_half_pct": round(pct, 2),
                     "per_user_bytes": round(result.per_user_bytes())},
        }, option=orjson.OPT_INDENT_2).decode())
        return 0
    _print_report(flow, full, alternatives, result, args.sample_every)
    print(machine)
    return 0


if __name__ == "__main__":
    sys.exit(main())
