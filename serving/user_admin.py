"""Erasing a user and merging an anonymous visitor into an account: the server's half.

**Erase** (``DELETE /v1/users/{user_id}``, admin) reaches every place a
user's data lives (docs/privacy.md), at once where the server can and through
the flow where the data is the flow's:

1. the user's entries still in their event stream partition are deleted
   (``XDEL``; unread ones are then never processed);
2. an erase control message is appended to that partition, after everything
   the flow has read of the user: every stage drops the user's state, the
   sink deletes their keys again (in case a list was being written), and the
   flow's source deletes the control message once no restart can need it;
3. the user's keys are deleted (list, profile, attributes);
4. dead letters naming the user are deleted.

Erasing is idempotent: a second call finds nothing more and sends one more
erase. A user who comes back starts from nothing.

**Merge** (``POST /v1/users/{user_id}/merge`` with ``{"from": "<anonymous
id>"}``, write) waits (at most a couple of seconds) until the flow has read
the visitor's latest events, reads what the flow stored for the visitor (recent
items with their weights and times, exclusions), appends a merge control
message to the account's partition — the account's history absorbs them in
the flow — and erases the visitor. Merging an unknown or empty visitor only
erases it; merging twice is harmless.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from online.contract import RedisKeys, StreamProgress, decode_candidates, decode_profile
from online.contract.control import Control
from online.contract.progress import entry_order
from online.contract.streams import entry_user_id

__all__ = ["erase_user", "merge_users"]

_PAGE = 1000
MERGE_WAIT_S = 2.5
"""Longest a merge waits for the flow to read the visitor's latest events."""


def _text(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


async def _delete_entries(client: Any, stream: str, user_id: str) -> int:
    """``XDEL`` every entry of ``stream`` that names ``user_id``, a page at a time; how many went."""
    deleted, start = 0, "-"
    while True:
        entries = await client.xrange(stream, min=start, max="+", count=_PAGE)
        ids = [entry_id for entry_id, fields in entries if entry_user_id(fields) == user_id]
        if ids:
            deleted += int(await client.xdel(stream, *ids))
        if len(entries) < _PAGE:
            return deleted
        start = "(" + _text(entries[-1][0])


async def _delete_dead_letters(client: Any, keys: RedisKeys, user_id: str) -> int:
    needle = user_id.encode()
    deleted, start = 0, "-"
    while True:
        entries = await client.xrange(keys.dead_letter(), min=start, max="+", count=_PAGE)
        ids = [entry_id for entry_id, fields in entries if needle in fields.get(b"raw", b"")]
        if ids:
            deleted += int(await client.xdel(keys.dead_letter(), *ids))
        if len(entries) < _PAGE:
            return deleted
        start = "(" + _text(entries[-1][0])


async def erase_user(client: Any, keys: RedisKeys, user_id: str, extra_keys: tuple[str, ...] = ()) -> dict[str, int]:
    """Erase ``user_id`` (steps in the module docstring); counts of what went, by place."""
    stream = keys.stream_for_user(user_id)
    entries = await _delete_entries(client, stream, user_id)
    await client.xadd(stream, Control("erase", user_id).fields())
    deleted_keys = int(await client.delete(keys.user_recs(user_id), keys.user_profile(user_id), *extra_keys))
    letters = await _delete_dead_letters(client, keys, user_id)
    return {"keys": deleted_keys, "stream_entries": entries, "dead_letters": letters}


async def _flow_has_read(client: Any, keys: RedisKeys, stream: str, deadline: float) -> bool:
    """Wait until the flow's published read position on ``stream`` reaches its newest entry (or the deadline)."""
    newest = await client.xrevrange(stream, count=1)
    if not newest:
        return True
    target = entry_order(_text(newest[0][0]))
    while time.monotonic() < deadline:
        raw = await client.hget(keys.flow_progress(), stream)
        if raw is not None and entry_order(StreamProgress.decode(raw).read_id) >= target:
            await asyncio.sleep(0.1)  # read: its list write follows within milliseconds
            return True
        await asyncio.sleep(0.05)
    return False



async def merge_users(client: Any, keys: RedisKeys, into: str, source: str,
                      extra_keys: tuple[str, ...] = ()) -> dict[str, Any]:
    """Fold ``source``'s history into ``into`` through the flow, then erase ``source``."""
    caught_up = await _flow_has_read(client, keys, keys.stream_for_user(source), time.monotonic() + MERGE_WAIT_S)
    raw_profile = await client.get(keys.user_profile(source))
    raw_list = await client.get(keys.user_recs(source))
    recent = tuple(decode_profile(raw_profile).recent) if raw_profile is not None else ()
    exclude = tuple(decode_candidates(raw_list).exclude) if raw_list is not None else ()
    if recent or exclude:
        await client.xadd(keys.stream_for_user(into), Control("merge", into, source, recent, exclude).fields())
    erased = await erase_user(client, keys, source, extra_keys)
    return {"items": len(recent), "exclusions": len(exclude), "flow_caught_up": caught_up, "erased": erased}
