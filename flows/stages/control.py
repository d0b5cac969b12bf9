"""Erase and merge in the dataflow: how each user-keyed stage handles a control message.

An **erase** of user U reaches U's user-history stage in order with U's events
(it is in U's stream partition). The stage drops U's history (the next event
of U starts a new life, from nothing) and sends :class:`UserErased` straight to
U's user-list stage, which drops U's list state and asks the sink to delete
U's keys (:class:`~flows.writes.UserErasedWrite`) — after any list written
for U's earlier events. Replies of U's earlier events still on their way back
from item stages belong to the erased life and are dropped: the user-list
stage keeps a tombstone (the erased life, no data) for
:data:`TOMBSTONE_S` and then forgets the key, so snapshots taken after that
hold nothing of U.

A **merge** of A into U carries A's recent items and exclusions (read by the
server from what the flow stored for A). U's history absorbs them and sends
each absorbed item a touch of weight 0: the item stage answers with its
neighbours (for U's new list) and learns nothing (A's events counted already).
The server erases A with its own erase.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from flows.stages.messages import Link, PurchaseLink, Touch
from online.contract.control import Control

__all__ = ["TOMBSTONE_S", "ParsedControl", "UserErased", "absorb", "erased_touches"]

TOMBSTONE_S = 30.0
"""How long a user-list stage remembers an erased life (replies of the user's earlier events are dropped)."""


@dataclass(frozen=True, slots=True)
class ParsedControl:
    """A control message read from a stream entry."""

    control: Control
    entry_id: str


@dataclass(frozen=True, slots=True)
class UserErased:
    """User-history → user-list: the user's life ``life`` is over; drop everything and delete their keys."""

    user_id: str
    life: int


def absorb(logic: Any, parsed: ParsedControl) -> list[Touch | Link | PurchaseLink]:
    """A merge in the user-history stage: absorb the other user's items; a weight-0 touch per absorbed item."""
    control = parsed.control
    state = logic.state
    history = state.history
    history.absorb(control.recent, control.exclude)
    now_ms = int(time.time() * 1000)
    touches: list[Touch | Link | PurchaseLink] = []
    for item, _, ts in reversed(control.recent):  # oldest first: the newest is the last touch, as for events
        history.events += 1
        touches.append(Touch(item, control.user_id, parsed.entry_id, history.events, 0.0, ts, now_ms, None, [],
                             history.session_id, history.recent(), list(history.purchased), state.life))
    return touches


def erased_touches(pending: dict[int, Any], life: int) -> None:
    """Drop the replies of an erased life still waiting in a user-list state's ``pending``."""
    for seq in [seq for seq, reply in pending.items() if reply.touch.life <= life]:
        del pending[seq]
