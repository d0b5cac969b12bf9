"""The event contract: what a producer may send, validated in one place.

Both the ingestion endpoint (``serving``) and the dataflow (``flows``) call
:func:`parse_event`, so an event the server accepts is an event the flow
accepts, and a message written straight into a stream by a producer gets the
same checks (and, when it fails, lands in the dead-letter stream with the same
reason the HTTP API would have given).

Examples
--------
>>> e = parse_event({"user_id": "u1", "item_id": "sku-9", "type": "view", "ts": 1700000000})
>>> e.user_id, e.item_id, e.type, e.ts
('u1', 'sku-9', 'view', 1700000000.0)
>>> parse_event({"user_id": "u1", "type": "view"})
Traceback (most recent call last):
...
online.contract.events.EventError: item_id: is required
>>> parse_event({"user_id": "u1", "item_id": "a", "type": "teleport"}).type
Traceback (most recent call last):
...
online.contract.events.EventError: type: unknown event type 'teleport' (known: add_to_cart, click, dislike, impression, purchase, rating, remove_from_cart, share, view, wishlist)
>>> DEFAULT_WEIGHTS.weight_of(parse_event({"user_id": "u", "item_id": "a", "type": "purchase"}))
5.0
"""

from __future__ import annotations

import math
import re
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from online.init_pickle import reduce_by_init

__all__ = [
    "DEFAULT_LIMITS",
    "DEFAULT_WEIGHTS",
    "HISTORICAL_LIMITS",
    "Event",
    "EventError",
    "EventLimits",
    "EventTypeWeights",
    "parse_event",
    "parse_ts",
    "unprintable_character",
    "unsafe_character",
]

_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029" + chr(0xD800) + "-" + chr(0xDFFF) + "]")
"""Characters no id or context string may hold: C0 and C1 controls (the stored lists separate ids by a
newline), line and paragraph separators, and lone surrogates (not UTF-8). Emoji with skin tones and
zero-width-joiner sequences (``👩🏽‍💻``) are fine: ``str.isprintable`` refused the joiner."""


def unsafe_character(text: str) -> str | None:
    """A description of the first character of ``text`` that no context string may hold, or ``None``.

    >>> unsafe_character("👩🏽‍💻 and 👨‍👩‍👧‍👦"), unsafe_character("shoes\\nx")
    (None, 'a control character U+000A at position 5')
    """
    if text.isprintable():  # every unsafe character is unprintable: one call instead of a regular-expression search
        return None
    found = _UNSAFE.search(text)
    if found is None:
        return None
    return f"a control character U+{ord(found.group()):04X} at position {found.start()}"


def unprintable_character(text: str) -> str | None:
    """A description of the first character of ``text`` that no id may hold, or ``None``: ids are printable
    (emoji sequences included, see :func:`_printable`), so they cannot hide a bidi override or a line break.

    >>> unprintable_character("👨‍👩‍👧‍👦"), unprintable_character("a\\u202eb")
    (None, 'a non-printable character U+202E at position 1')
    """
    if _printable(text):
        return None
    position, char = next((n, c) for n, c in enumerate(text) if not (c.isprintable() or c in _EMOJI_FORMAT))
    return f"a non-printable character U+{ord(char):04X} at position {position}"


# 2000-01-01T00:00:00Z: older timestamps are almost always a unit mistake
# (milliseconds read as seconds would be far in the future instead).
_MIN_TS = 946_684_800.0


class EventError(ValueError):
    """An event failed validation; ``field`` names the offending field.

    >>> str(EventError("ts", "must be a number"))
    'ts: must be a number'
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class EventLimits:
    """Bounds that keep one event small and its ids sane.

    ``max_future_s`` bounds clock skew of producers; ``min_ts`` rejects
    timestamps before 2000 (usually milliseconds sent as seconds, or zero).
    Those two are for live ingestion (the server and the live flow);
    :data:`HISTORICAL_LIMITS` reads a historical log with its own timestamps.
    """

    max_id_length: int = 256
    max_context_keys: int = 16
    max_context_key_length: int = 64
    max_context_value_length: int = 256
    max_future_s: float = 24 * 3600.0
    min_ts: float = _MIN_TS
    max_abs_value: float = 1e9

    def __reduce__(self) -> tuple[Any, ...]:  # a frozen dataclass compiled by mypyc needs it to unpickle
        return reduce_by_init(self)


DEFAULT_LIMITS = EventLimits()
"""Live ingestion: nothing before 2000, nothing more than a day ahead of the receiver's clock."""

HISTORICAL_LIMITS = EventLimits(max_future_s=math.inf, min_ts=0.0)
"""A historical log (``livereco eval``): any time from the epoch on, and no bound relative to today's clock
(a log from 1998 or a synthetic one dated 2040 is read as it is). The size limits are the live ones.

>>> parse_ts(820454400, now=1.8e9, limits=HISTORICAL_LIMITS), parse_ts(3e9, now=1.8e9, limits=HISTORICAL_LIMITS)
(820454400.0, 3000000000.0)
>>> parse_ts(-1, now=1.8e9, limits=HISTORICAL_LIMITS)
Traceback (most recent call last):
...
online.contract.events.EventError: ts: -1.0 is before 1970-01-01T00:00:00Z (a zero or a unit mistake?)
"""


@dataclass(slots=True)
class Event:
    """One validated user event.

    ``ts`` is epoch seconds (event time: when it happened at the producer).
    ``session_id`` is optional; without it the dataflow segments sessions by
    inactivity. ``context`` is a small map of strings and numbers (device,
    page, category, ...).

    Treat an event as a value: nothing changes one after it is made. It is
    not a frozen dataclass because the flow makes one per event and a frozen
    dataclass's ``__init__`` (every field through ``object.__setattr__``)
    costs several times a plain one's.
    """

    user_id: str
    item_id: str
    type: str
    ts: float
    session_id: str | None = None
    value: float | None = None
    event_id: str | None = None
    context: Mapping[str, str | float] = field(default_factory=dict)
    rec_id: str | None = None
    """The ``rec_id`` of the served list this event answers (attribution); ``""`` when the event carried a
    malformed one (the event still counts, its attribution is ``unknown``)."""

    def __init__(self, user_id: str, item_id: str, type: str, ts: float, session_id: str | None = None,
                 value: float | None = None, event_id: str | None = None,
                 context: Mapping[str, str | float] | None = None, rec_id: str | None = None) -> None:
        # Written out, not generated: mypyc compiles only the methods in the source (see online.init_pickle).
        self.user_id = user_id
        self.item_id = item_id
        self.type = type
        self.ts = ts
        self.session_id = session_id
        self.value = value
        self.event_id = event_id
        self.context = {} if context is None else context
        self.rec_id = rec_id

    def to_dict(self) -> dict[str, Any]:
        """The JSON form written to the event streams (``None`` fields left out).

        >>> Event("u", "i", "view", 1.5e9).to_dict()
        {'user_id': 'u', 'item_id': 'i', 'type': 'view', 'ts': 1500000000.0}
        """
        out: dict[str, Any] = {
            "user_id": self.user_id,
            "item_id": self.item_id,
            "type": self.type,
            "ts": self.ts,
        }
        if self.session_id is not None:
            out["session_id"] = self.session_id
        if self.value is not None:
            out["value"] = self.value
        if self.event_id is not None:
            out["event_id"] = self.event_id
        if self.context:
            out["context"] = dict(self.context)
        if self.rec_id is not None:
            out["rec_id"] = self.rec_id
        return out

    def __reduce__(self) -> tuple[Any, ...]:  # by its constructor arguments: the same pickle compiled or not
        return reduce_by_init(self)


@dataclass(frozen=True, slots=True)
class EventTypeWeights:
    """How much each event type says about a user's interest.

    A rating's weight scales with how far its ``value`` lies from the middle
    of ``rating_range``: the top of the scale counts ``weights["rating"]``,
    the middle zero, the bottom minus that. Negative weights (``dislike``)
    push items down; zero-weight types (``impression``) are recorded but do
    not count as interest.

    >>> w = EventTypeWeights.from_spec("view=1,purchase=8,wishlist=2")
    >>> w.weights["purchase"], w.weights["add_to_cart"]
    (8.0, 3.0)
    >>> w.rating_weight(5.0), w.rating_weight(3.0), w.rating_weight(1.0)
    (4.0, 0.0, -4.0)
    """

    weights: Mapping[str, float] = field(
        default_factory=lambda: {
            "impression": 0.0,
            "view": 1.0,
            "click": 1.0,
            "share": 2.0,
            "wishlist": 2.0,
            "add_to_cart": 3.0,
            "remove_from_cart": -1.0,
            "purchase": 5.0,
            "rating": 4.0,
            "dislike": -3.0,
        }
    )
    rating_range: tuple[float, float] = (1.0, 5.0)

    @classmethod
    def from_spec(
        cls, spec: str | None, rating_range: str | tuple[float, float] | None = None
    ) -> EventTypeWeights:
        """Defaults overridden (or extended with new types) by ``type=weight,...``."""
        base = cls()
        weights = dict(base.weights)
        for part in (spec or "").split(","):
            part = part.strip()
            if not part:
                continue
            name, sep, raw = part.partition("=")
            name = name.strip()
            if not sep or not name:
                raise ValueError(f"event weight {part!r}: expected type=weight")
            try:
                weights[name] = float(raw)
            except ValueError:
                raise ValueError(f"event weight {part!r}: {raw!r} is not a number") from None
        rr = base.rating_range
        if isinstance(rating_range, str) and rating_range.strip():
            lo, _, hi = rating_range.partition(",")
            try:
                rr = (float(lo), float(hi))
            except ValueError:
                raise ValueError(f"rating range {rating_range!r}: expected 'min,max'") from None
        elif isinstance(rating_range, tuple):
            rr = rating_range
        if not rr[0] < rr[1]:
            raise ValueError(f"rating range {rr}: min must be below max")
        return cls(weights=weights, rating_range=rr)

    @property
    def known_types(self) -> frozenset[str]:
        return frozenset(self.weights)

    def rating_weight(self, value: float) -> float:
        lo, hi = self.rating_range
        mid = (lo + hi) / 2.0
        scaled = (min(max(value, lo), hi) - mid) / (hi - mid)
        return self.weights.get("rating", 0.0) * scaled

    def weight_of(self, event: Event) -> float:
        """The interest weight of one event."""
        if event.type == "rating" and event.value is not None:
            return self.rating_weight(event.value)
        return self.weights.get(event.type, 0.0)

    def __reduce__(self) -> tuple[Any, ...]:  # a frozen dataclass compiled by mypyc needs it to unpickle
        return reduce_by_init(self)


DEFAULT_WEIGHTS = EventTypeWeights()


def _iso_ts(text: str) -> float:
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise EventError("ts", f"{text[:40]!r} is neither epoch seconds nor ISO 8601") from None
    if parsed.tzinfo is None:
        raise EventError("ts", f"{text[:40]!r} has no time zone (add Z or +00:00)")
    return parsed.timestamp()


def _iso_utc(ts: float) -> str:
    """``ts`` as ISO 8601 UTC, to the second (``2000-01-01T00:00:00Z`` for the live bound)."""
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_ts(raw: Any, now: float, limits: EventLimits = DEFAULT_LIMITS) -> float:
    """Epoch seconds from a number or an ISO 8601 string, within sane bounds.

    >>> parse_ts("2024-01-02T03:04:05Z", now=1.8e9)
    1704164645.0
    >>> parse_ts(None, now=1.8e9)
    1800000000.0
    >>> parse_ts(1.7e12, now=1.8e9)
    Traceback (most recent call last):
    ...
    online.contract.events.EventError: ts: 1700000000000.0 is more than 86400 s in the future (milliseconds instead of seconds?)
    """
    if raw is None:
        return float(now)
    if isinstance(raw, bool):
        raise EventError("ts", "must be epoch seconds or an ISO 8601 string, not a boolean")
    if isinstance(raw, (int, float)):  # a tuple: a union would be built per call
        ts = float(raw)
    elif isinstance(raw, str):
        text = raw.strip()
        try:
            ts = float(text)
        except ValueError:
            ts = _iso_ts(text)
    else:
        raise EventError("ts", f"must be epoch seconds or an ISO 8601 string, not {type(raw).__name__}")
    if not math.isfinite(ts):
        raise EventError("ts", "must be finite")
    if ts > now + limits.max_future_s:
        raise EventError(
            "ts",
            f"{ts} is more than {limits.max_future_s:.0f} s in the future"
            " (milliseconds instead of seconds?)",
        )
    if ts < limits.min_ts:
        raise EventError("ts", f"{ts} is before {_iso_utc(limits.min_ts)} (a zero or a unit mistake?)")
    return ts


_EMOJI_FORMAT = frozenset("\u200c\u200d") | frozenset(map(chr, range(0xE0020, 0xE0080)))
"""Invisible format characters emoji are made of (ZWNJ, ZWJ: 👩🏽\u200d💻; tags: subdivision flags), allowed in ids;
other format characters (bidi overrides, U+202E) stay refused with the control characters."""


def _printable(text: str) -> bool:
    r"""``str.isprintable`` but for the format characters of emoji sequences.

    >>> _printable("👩🏽\u200d💻"), _printable("👨\u200d👩\u200d👧\u200d👦"), _printable("a\u202eb"), _printable("a\nb")
    (True, True, False, False)
    """
    return text.isprintable() or all(c.isprintable() or c in _EMOJI_FORMAT for c in text)


def _identifier(obj: dict[str, Any], name: str, limits: EventLimits, required: bool) -> str | None:
    raw = obj.get(name)
    if raw is None:
        if required:
            raise EventError(name, "is required")
        return None
    if type(raw) is str:  # the common case first: no str() copy, no isinstance of a union (built per call)
        text: str = raw
    elif isinstance(raw, bool) or not isinstance(raw, (str, int)):
        raise EventError(name, f"must be a string, not {type(raw).__name__}")
    else:
        text = str(raw)
    if not text:
        raise EventError(name, "must not be empty")
    if len(text) > limits.max_id_length:
        raise EventError(name, f"is {len(text)} characters long; the limit is {limits.max_id_length}")
    if (unsafe := unprintable_character(text)) is not None:
        raise EventError(name, f"contains {unsafe}")
    return text


def _context(raw: Any, limits: EventLimits) -> dict[str, str | float]:
    if raw is None:
        return {}
    if type(raw) is not dict and not isinstance(raw, Mapping):  # a decoded object is a dict: no ABC check for it
        raise EventError("context", f"must be an object, not {type(raw).__name__}")
    if len(raw) > limits.max_context_keys:
        raise EventError("context", f"has {len(raw)} keys; the limit is {limits.max_context_keys}")
    out: dict[str, str | float] = {}
    for key, value in raw.items():
        if not isinstance(key, str) or not key or len(key) > limits.max_context_key_length:
            raise EventError("context", f"key {str(key)[:40]!r} must be 1-{limits.max_context_key_length} characters")
        if (unsafe := unsafe_character(key)) is not None:
            raise EventError("context", f"key {key[:40]!r} contains {unsafe}")
        # Type tests of a tuple, not of a union (``str | int | float`` builds a union object per test), and the
        # field's name for the message only when there is one.
        if isinstance(value, str):
            if len(value) > limits.max_context_value_length:
                raise EventError(f"context.{key}", f"is {len(value)} characters long; "
                                                   f"the limit is {limits.max_context_value_length}")
            if (unsafe := unsafe_character(value)) is not None:
                raise EventError(f"context.{key}", f"contains {unsafe}")
            out[key] = value
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            raise EventError(f"context.{key}", f"must be a string or a number, not {type(value).__name__}")
        else:
            if not math.isfinite(value):
                raise EventError(f"context.{key}", "must be finite")
            out[key] = float(value)
    return out


_FIELDS = frozenset(("user_id", "item_id", "type", "ts", "session_id", "value", "event_id", "context", "rec_id"))
MAX_REC_ID_LENGTH = 64


def _rec_id(raw: Any) -> str | None:
    """A ``rec_id`` as sent, ``""`` for a malformed one: attribution must never cost an event.

    >>> _rec_id("r-1f3a"), _rec_id(None), _rec_id(42), _rec_id("x" * 65), _rec_id("a\\nb")
    ('r-1f3a', None, '', '', '')
    """
    if raw is None:
        return None
    if not isinstance(raw, str) or not raw or len(raw) > MAX_REC_ID_LENGTH or not raw.isprintable():
        return ""
    return raw


def parse_event(
    obj: Any,
    now: float | None = None,
    weights: EventTypeWeights = DEFAULT_WEIGHTS,
    limits: EventLimits = DEFAULT_LIMITS,
) -> Event:
    """Validate a decoded JSON object into an :class:`Event`.

    Raises :class:`EventError` naming the first offending field. Unknown
    top-level fields are rejected too, so a typo (``itemId``) is not silently
    ignored.
    """
    if type(obj) is not dict:  # a decoded object is a dict: read as one (native lookups), other mappings copied
        if not isinstance(obj, Mapping):
            raise EventError("event", f"must be a JSON object, not {type(obj).__name__}")
        obj = dict(obj)
    fields: dict[str, Any] = obj
    unknown = [k for k in fields if k not in _FIELDS]
    if unknown:
        raise EventError(str(unknown[0])[:64], f"is not a known field (known: {', '.join(sorted(_FIELDS))})")
    user_id = _identifier(fields, "user_id", limits, required=True)
    item_id = _identifier(fields, "item_id", limits, required=True)
    raw_type = fields.get("type")
    if raw_type is None:
        raise EventError("type", "is required")
    if not isinstance(raw_type, str):
        raise EventError("type", f"must be a string, not {type(raw_type).__name__}")
    if raw_type not in weights.weights:
        raise EventError(
            "type",
            f"unknown event type {raw_type[:64]!r} (known: {', '.join(sorted(weights.weights))})",
        )
    raw_value = fields.get("value")
    value: float | None = None
    if raw_value is not None:
        if isinstance(raw_value, bool) or not isinstance(raw_value, (int, float)):
            raise EventError("value", f"must be a number, not {type(raw_value).__name__}")
        value = float(raw_value)
        if not math.isfinite(value) or abs(value) > limits.max_abs_value:
            raise EventError("value", f"must be finite and at most {limits.max_abs_value:g} in size")
    if raw_type == "rating" and value is None:
        raise EventError("value", "is required for a rating")
    ts = parse_ts(fields.get("ts"), time.time() if now is None else now, limits)
    assert user_id is not None and item_id is not None
    return Event(
        # Interned: a parsed id is a new string per event, and the flow keeps ids in many lists
        # (neighbours, recent items, candidates); one shared copy per distinct id bounds them.
        user_id=sys.intern(user_id),
        item_id=sys.intern(item_id),
        type=raw_type,
        ts=ts,
        session_id=_identifier(fields, "session_id", limits, required=False),
        value=value,
        event_id=_identifier(fields, "event_id", limits, required=False),
        context=_context(fields.get("context"), limits),
        rec_id=_rec_id(fields.get("rec_id")),
    )
