"""The parse step: a raw stream entry becomes a :class:`ParsedEvent`, or a
:class:`~flows.writes.DeadLetter` naming the field and the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flows.dead_letters import RAW_LIMIT, stage_failure
from flows.metrics import DEAD_LETTERS, EVENTS
from flows.redis_source import StreamEntry
from flows.stages.control import ParsedControl
from flows.writes import DeadLetter
from online.contract import Event, EventError, EventTypeWeights, accepted_ms, decode_stream_fields, parse_event
from online.contract.control import decode_control
from online.init_pickle import reduce_by_init
from online.item_facts import ItemFacts

__all__ = ["ParsedEvent", "parse_entries", "parse_entry"]


@dataclass(slots=True)  # never mutated, but not frozen: a frozen __init__ costs ~6x, per event
class ParsedEvent:
    event: Event
    entry_id: str
    accepted_ms: int
    facts: ItemFacts | None = None
    """What the catalog says about the event's item (set by the catalog stage; ``None``: unknown to it)."""

    def __init__(self, event: Event, entry_id: str, accepted_ms: int, facts: ItemFacts | None = None) -> None:
        # Written out, not generated: mypyc compiles only the methods in the source (see online.init_pickle).
        self.event = event
        self.entry_id = entry_id
        self.accepted_ms = accepted_ms
        self.facts = facts

    def __reduce__(self) -> tuple[Any, ...]:
        return reduce_by_init(self)


def parse_entry(entry: StreamEntry, weights: EventTypeWeights) -> ParsedEvent | DeadLetter:
    """Validate one stream entry with the contract; failures become dead letters.

    >>> entry = StreamEntry("events", "1700000000000-0", {b"e": b'{"user_id":"u1","item_id":"i1","type":"add_to_cart","ts":1.7e9}'})
    >>> parsed = parse_entry(entry, EventTypeWeights())
    >>> parsed.event.item_id, parsed.event.type, parsed.accepted_ms
    ('i1', 'add_to_cart', 1700000000000)
    >>> parse_entry(StreamEntry("events", "1700000000001-0", {b"e": b'{"user_id":"u1","type":"add_to_cart"}'}), EventTypeWeights()).field
    'item_id'
    """
    parsed = _parse(entry, weights)
    if isinstance(parsed, ParsedEvent):
        _count_events({parsed.event.type: 1})
    return parsed


def parse_entries(entries: list[StreamEntry], weights: EventTypeWeights
                  ) -> list[tuple[str, ParsedEvent | ParsedControl] | DeadLetter]:
    """:func:`parse_entry` for a batch, each event keyed by its user (the dataflow's first step).

    ``livereco_flow_events_total`` is incremented once per event type and batch, not per event.

    >>> fields = {b"e": b'{"user_id":"u1","item_id":"i1","type":"view","ts":1.7e9}'}
    >>> [type(p).__name__ for p in parse_entries([StreamEntry("events", "1-0", fields),
    ...                                           StreamEntry("events", "2-0", {b"e": b"{}"})], EventTypeWeights())]
    ['tuple', 'DeadLetter']
    """
    out: list[tuple[str, ParsedEvent | ParsedControl] | DeadLetter] = []
    counts: dict[str, int] = {}
    for entry in entries:
        if b"c" in entry.fields:  # a control message (erase, merge), keyed by its user like an event
            control = _parse_control(entry)
            out.append((control.control.user_id, control) if isinstance(control, ParsedControl) else control)
            continue
        parsed = _parse(entry, weights)
        if isinstance(parsed, ParsedEvent):
            event_type = parsed.event.type
            counts[event_type] = counts.get(event_type, 0) + 1
            out.append((parsed.event.user_id, parsed))
        else:
            out.append(parsed)
    _count_events(counts)
    return out


def _parse(entry: StreamEntry, weights: EventTypeWeights) -> ParsedEvent | DeadLetter:
    try:
        event = parse_event(decode_stream_fields(entry.fields), weights=weights)
        return ParsedEvent(event, entry.entry_id, accepted_ms(entry.entry_id))
    except EventError as exc:
        field = exc.field.partition(".")[0]  # context.<key> counts as context: a closed set of labels
        DEAD_LETTERS.labels("parse", field if field in _REASON_FIELDS else "other").inc()
        return DeadLetter(entry.stream, entry.entry_id, exc.field, str(exc), _raw(entry))
    except Exception as exc:  # anything else about one entry (a malformed id, ...) must not stop the flow
        return stage_failure("parse", exc, entry.stream, entry.entry_id, _raw(entry), reason="other")


def _parse_control(entry: StreamEntry) -> ParsedControl | DeadLetter:
    try:
        return ParsedControl(decode_control(entry.fields), entry.entry_id)
    except EventError as exc:
        DEAD_LETTERS.labels("parse", "other").inc()
        return DeadLetter(entry.stream, entry.entry_id, exc.field, str(exc), _raw(entry))


def _raw(entry: StreamEntry) -> bytes:
    """An entry's fields as stored, ``name=value`` per line (what a dead letter keeps of it)."""
    try:
        return b"\n".join(bytes(k) + b"=" + bytes(v) for k, v in entry.fields.items())[:RAW_LIMIT]
    except Exception:  # fields of unexpected types: their repr is all there is
        return repr(entry.fields).encode("utf-8", "replace")[:RAW_LIMIT]




def _count_events(counts: dict[str, int]) -> None:
    for event_type, count in counts.items():
        counter = _EVENT_COUNTERS.get(event_type)
        if counter is None:
            counter = _EVENT_COUNTERS[event_type] = EVENTS.labels(event_type)
        counter.inc(count)


_EVENT_COUNTERS: dict[str, Any] = {}  # label children, looked up once per type (labels() is slow per event)

_REASON_FIELDS = frozenset(
    ("event", "e", "user_id", "item_id", "type", "ts", "session_id", "value", "event_id", "context")
)
