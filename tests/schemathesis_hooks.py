"""schemathesis hooks for tests/test_schemathesis.py (loaded through ``SCHEMATHESIS_HOOKS``).

One rule of the event contract no static schema can hold: ``ts`` may be at most a day past the *server's clock*
(and a ``ts`` string must name a real instant). The document states it in words; for a request generated as
valid, this hook moves each event's ``ts`` to a minute ago, in the form it was generated in (a number or a
string), so "valid data is accepted" is checked on everything else; and an integer id generated as 5.0
(JSON Schema cannot tell it from 5) is sent as 5. Invalid (negative) cases are sent untouched.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import schemathesis


def _recent(ts: Any) -> Any:
    now = time.time() - 60.0
    if isinstance(ts, str):
        return datetime.fromtimestamp(now, UTC).isoformat()
    return now


_IDS = ("user_id", "item_id", "session_id", "event_id")


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    meta = case.meta
    if case.operation.path != "/v1/events" or meta is None or not meta.generation.mode.is_positive:
        return
    for event in case.body if isinstance(case.body, list) else [case.body]:
        if not isinstance(event, dict):
            continue
        if event.get("ts") is not None:
            event["ts"] = _recent(event["ts"])
        for name in _IDS:  # JSON Schema's integer includes 1.0; the contract's integer ids are written as integers
            if isinstance(event.get(name), float) and event[name].is_integer():
                event[name] = int(event[name])
