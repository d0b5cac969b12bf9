"""``livereco export``: every user's current served list, for e-mail and push campaigns, in bounded memory.

Walks the users' candidate lists with ``SCAN`` in pages (``--page`` keys at
a time) and computes each user's list with the server's own code path,
:func:`serving.served_list.served_list` (blend with the flow's ranker weights,
filters and refill, rules, diversity cap), against a copy of the catalog and
the rules read once at the start. The reads of a whole page go in one
pipelined round trip. Written as it goes, one user at a time, as JSON lines
(``{"user_id", "source", "fallback", "items": [{"item_id", "score", "source"}]}``)
or CSV (``user_id,rank,item_id,score,source``), to a file or stdout; the
progress display goes to stderr. Memory: the catalog copy plus one page.

    livereco export --format jsonl --n 20 --category sports --max-price 100 -o campaign.jsonl
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections.abc import Iterator
from typing import IO, Any

import msgspec

from flows.catalog_store import run_steps
from flows.progress import Progress
from flows.redis_client import connect
from online.catalog.filters import Filters
from online.catalog.protocol import CatalogCommands
from online.catalog.rules import Rules, RulesCommands
from online.catalog.snapshot import CatalogReplica, CatalogSnapshot
from online.contract import RedisKeys, Settings
from serving.lists import ListAnswer
from serving.ranker_weights import RankerWeights
from serving.served_list import ListSpec, served_list

__all__ = ["add_arguments", "export", "run", "user_ids"]


def user_ids(client: Any, keys: RedisKeys, page: int = 1000) -> Iterator[list[str]]:
    """The users with a candidate list, a ``SCAN`` page at a time."""
    pattern = keys.user_recs("*")
    prefix, suffix = pattern.split("*", 1)
    cursor = 0
    while True:
        cursor, found = client.scan(cursor, match=pattern, count=page)
        users = [key[len(prefix):len(key) - len(suffix)] for key in (k.decode() if isinstance(k, bytes) else k
                                                                        for k in found)]
        if users:
            yield users
        if int(cursor) == 0:
            return


def _lists(client: Any, keys: RedisKeys, specs: list[tuple[str, ListSpec]], snapshot: CatalogSnapshot,
           rules: Rules, now: float) -> Iterator[tuple[str, ListAnswer]]:
    """Every user's :func:`~serving.served_list.served_list`, their reads sent together, step by step."""
    running = []
    for user, spec in specs:
        steps = served_list(keys, spec, snapshot, rules, now)
        running.append((user, steps, next(steps)))
    done: dict[str, ListAnswer] = {}
    while running:
        pipe = client.pipeline(transaction=False)
        for _, _, batch in running:
            for command in batch:
                pipe.execute_command(*command)
        replies = pipe.execute()
        waiting, offset = [], 0
        for user, steps, batch in running:
            part = replies[offset:offset + len(batch)]
            offset += len(batch)
            try:
                waiting.append((user, steps, steps.send(part)))
            except StopIteration as finished:
                done[user] = finished.value
        running = waiting
    for user, _ in specs:
        yield user, done[user]


def export(client: Any, settings: Settings, out: IO[str], fmt: str = "jsonl", n: int = 20,
           filters: Filters | None = None, diversity_cap: int | None = None, page: int = 1000,
           progress: bool = True) -> int:
    """Write every user's served list to ``out``; the number of users written."""
    keys = settings.keys
    replica = CatalogReplica(CatalogCommands(keys))
    run_steps(client, replica.refresh())
    rules = run_steps(client, RulesCommands(keys).get())
    weights = RankerWeights(settings.ranker_shards)
    weights.update(client.hgetall(keys.ranker()))
    filters = filters or Filters(exclude_seen=settings.exclude_seen == 1)
    cap = settings.diversity_cap if diversity_cap is None else diversity_cap
    writer = csv.writer(out) if fmt == "csv" else None
    if writer is not None:
        writer.writerow(["user_id", "rank", "item_id", "score", "source"])
    encode = msgspec.json.Encoder().encode
    shown = Progress(None, "livereco export", unit="users", stream=sys.stderr, enabled=progress)
    written = 0
    now = time.time()
    for users in user_ids(client, keys, page):
        specs = [(user, ListSpec(
            n=n, filters=filters, list_key=keys.user_recs(user), weights=weights.for_user(user),
            depth=settings.candidates, stored_exclude_max=2 * settings.recent_items,
            explore=weights.explore_for(user), explore_at=settings.explore_position,
            affinity_top=settings.affinity_categories, affinity_items=settings.affinity_items,
            profile_key=keys.user_profile(user) if filters.exclude_seen else None,
            diversity_cap=cap, diversity_window=settings.diversity_window)) for user in users]
        for user, answer in _lists(client, keys, specs, replica.snapshot, rules, now):
            if writer is not None:
                for rank, entry in enumerate(answer.items, start=1):
                    writer.writerow([user, rank, entry.item_id, entry.score, entry.source])
            else:
                out.write(encode({"user_id": user, "source": answer.source, "fallback": answer.fallback,
                                  "items": answer.items}).decode())
                out.write("\n")
            written += 1
        shown.update(written)
    shown.close()
    return written


def _attribute(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"{text!r}: expected name=value")
    return name, value


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    p.add_argument("--n", type=int, default=20, help="items per user")
    p.add_argument("-o", "--output", help="file to write (default: stdout)")
    p.add_argument("--category", action="append", default=[], help="only items in this category or below (repeat: any)")
    p.add_argument("--brand", action="append", default=[], help="only items of this brand (repeat: any)")
    p.add_argument("--min-price", type=float)
    p.add_argument("--max-price", type=float)
    p.add_argument("--in-stock", choices=("true", "any"), default="true")
    p.add_argument("--attr", action="append", type=_attribute, default=[], help="name=value (repeat: all of them)")
    p.add_argument("--exclude-seen", choices=("true", "false"), help="default: LIVERECO_EXCLUDE_SEEN")
    p.add_argument("--diversity-cap", type=int, help="default: LIVERECO_DIVERSITY_CAP")
    p.add_argument("--page", type=int, default=1000, help="users read per round trip")
    p.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace, settings: Settings) -> int:
    filters = Filters(categories=tuple(c.strip("/") for c in args.category), brands=frozenset(args.brand),
                      min_price=args.min_price, max_price=args.max_price, in_stock=args.in_stock == "true",
                      attributes=tuple(sorted(args.attr)),
                      exclude_seen=settings.exclude_seen == 1 if args.exclude_seen is None else args.exclude_seen == "true")
    client = connect(settings.redis_url)
    out: IO[str] = open(args.output, "w", newline="", encoding="utf-8") if args.output else sys.stdout  # noqa: SIM115
    try:
        count = export(client, settings, out, args.format, args.n, filters, args.diversity_cap, args.page,
                       progress=not args.no_progress)
    finally:
        if args.output:
            out.close()
    print(f"livereco export: {count:,} users", file=sys.stderr)
    return 0
