"""``livereco inspect user USER_ID``: everything livereco holds about one user, for a privacy officer (and the tests).

It looks everywhere a user's data can live (docs/privacy.md lists them):

* Redis keys whose name holds the id (a ``SCAN`` over the namespace), with their type and TTL;
* entries of the event streams carrying the user's id (their partition's stream, read whole);
* entries of the dead-letter stream whose raw bytes hold the id;
* with ``--recovery DIR``, the flow's recovery store: the state a restart would resume with, per
  stage keyed by user, and — stricter — every stored snapshot row of any epoch whose bytes hold
  the id (older epochs stay in the store until Bytewax collects them).

Prints a report and exits 0 when nothing was found, 1 when something was (so a script can assert an
erasure worked).
"""

from __future__ import annotations

import argparse
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from online.contract import RedisKeys, Settings
from online.contract.streams import entry_user_id

__all__ = ["UserFootprint", "add_arguments", "find_user", "run"]

USER_STEPS = ("livereco.user_history", "livereco.user_lists")
"""The stateful steps keyed by user."""


@dataclass
class UserFootprint:
    """Where one user's data was found."""

    user_id: str
    redis_keys: list[tuple[str, str, int]] = field(default_factory=list)
    """(key, type, TTL in seconds or -1)."""
    stream_entries: list[tuple[str, str]] = field(default_factory=list)
    """(stream, entry id)."""
    dead_letters: list[str] = field(default_factory=list)
    recovery_state: list[tuple[str, str]] = field(default_factory=list)
    """(step, key) in the state a restart would resume with."""
    recovery_rows: int = 0
    """Snapshot rows of any epoch whose bytes hold the id."""

    @property
    def empty(self) -> bool:
        return not (self.redis_keys or self.stream_entries or self.dead_letters or self.recovery_state
                    or self.recovery_rows)

    def report(self) -> str:
        lines = [f"user {self.user_id!r}:"]
        lines.append(f"  Redis keys: {len(self.redis_keys)}")
        lines += [f"    {key} ({kind}, TTL {ttl} s)" for key, kind, ttl in self.redis_keys]
        lines.append(f"  event stream entries: {len(self.stream_entries)}")
        lines += [f"    {stream} {entry}" for stream, entry in self.stream_entries[:20]]
        lines.append(f"  dead letters: {len(self.dead_letters)}")
        lines.append(f"  flow state a restart would resume with: {len(self.recovery_state)}")
        lines += [f"    {step} key {key!r}" for step, key in self.recovery_state]
        lines.append(f"  recovery store rows of any epoch holding the id: {self.recovery_rows}")
        lines.append("  nothing found" if self.empty else "  found: see above")
        return "\n".join(lines)


def _text(raw: Any) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


def find_user(client: Any, keys: RedisKeys, user_id: str, recovery: Path | None = None,
              batch: int = 1000) -> UserFootprint:
    """Look for ``user_id`` in Redis (keys, its event stream, dead letters) and in the recovery store."""
    found = UserFootprint(user_id)
    needle = user_id.encode()
    for key in client.scan_iter(match=f"{keys.namespace}:*", count=batch):
        if needle in key:
            name = _text(key)
            found.redis_keys.append((name, _text(client.type(key)), int(client.ttl(key))))
    stream = keys.stream_for_user(user_id)
    start = "-"
    while True:
        entries = client.xrange(stream, min=start, max="+", count=batch)
        for entry_id, fields in entries:
            if entry_user_id(fields) == user_id:
                found.stream_entries.append((stream, _text(entry_id)))
        if len(entries) < batch:
            break
        start = "(" + _text(entries[-1][0])
    for entry_id, fields in client.xrange(keys.dead_letter()):
        if needle in fields.get(b"raw", b"") or needle in fields.get(b"reason", b""):
            found.dead_letters.append(_text(entry_id))
    if recovery is not None:
        from flows.recovery import partition_files, resume_state
        for step in USER_STEPS:
            if user_id in resume_state(recovery, step, decode=False):
                found.recovery_state.append((step, user_id))
        for path in partition_files(recovery).values():
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
                for (ser,) in conn.execute("SELECT ser_change FROM snaps WHERE ser_change IS NOT NULL"):
                    if needle in ser:
                        found.recovery_rows += 1
    return found


def add_arguments(parser: argparse.ArgumentParser) -> None:
    what = parser.add_subparsers(dest="what", required=True)
    user = what.add_parser("user", help="everything Redis and the recovery store hold about one user")
    user.add_argument("user_id")
    user.add_argument("--recovery", type=Path, default=None, metavar="DIR",
                      help="the flow's recovery store to search too (e.g. .livereco/recovery)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from flows.redis_client import connect
    client = connect(settings.redis_url)
    try:
        found = find_user(client, settings.keys, args.user_id, args.recovery)
    finally:
        client.close()
    print(found.report())
    return 0 if found.empty else 1
