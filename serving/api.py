"""The HTTP API's types: every request's parameters, every body and every answer, as msgspec ``Struct``\\ s.

These are the one definition. :mod:`serving.router` decodes path and query
parameters into the request Structs (so a bad one is refused naming it), the
handlers answer with the response Structs (encoded as they are), errors are
:class:`Error`, and :mod:`serving.openapi` derives the OpenAPI schemas from
the same classes with ``msgspec.json.schema_components``. A field is added in
one place and appears in all three.

The event body is the one exception to "msgspec validates": the event contract
(:func:`online.contract.parse_event`) stays the single validator, shared with
the flow; :func:`event_struct` describes it for the schema (same limits), and
``tests/test_openapi.py`` checks the two agree on generated examples.

Examples
--------
>>> msgspec.json.encode(TrendingList(category=None, rec_id="a5700a97ad12", variant="default",
...                                  items=[TrendingItem("a", 1.0)]))
b'{"category":null,"rec_id":"a5700a97ad12","variant":"default","source":"trending","items":[{"item_id":"a","score":1.0,"source":"trending"}]}'
>>> msgspec.convert({"user_id": "u", "n": "0"}, RecommendationsRequest, strict=False)
Traceback (most recent call last):
...
msgspec.ValidationError: Expected `int` >= 1 - at `$.n`
"""

from __future__ import annotations

import functools
import sys
import unicodedata
from collections.abc import Sequence
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from online.contract import DEFAULT_LIMITS
from online.contract.events import unprintable_character

__all__ = [
    "ATTRIBUTE_PREFIX",
    "MAX_N",
    "Accepted",
    "Error",
    "ErrorDetail",
    "EventRefusal",
    "ItemRequest",
    "ItemSourced",
    "ListQuery",
    "Profile",
    "ProfileRequest",
    "RecentItem",
    "RecommendationList",
    "RecommendationsRequest",
    "SimilarList",
    "Status",
    "StreamState",
    "TrendingItem",
    "TrendingList",
    "TrendingRequest",
    "event_struct",
    "printable_pattern",
]

MAX_N = 500
"""The most items one list answer holds."""
_LIMITS = DEFAULT_LIMITS

PathId = Annotated[str, Meta(min_length=1, max_length=_LIMITS.max_id_length,
                             description="Percent-encode '/' and other reserved characters.")]
VARIANT_PATTERN = "^[a-z0-9][a-z0-9_-]{0,39}$"
FORCED_VARIANT_PATTERN = "^([a-z0-9][a-z0-9_-]{0,39})?$"
Count = Annotated[int, Meta(ge=1, le=MAX_N, description="How many items to return.")]
Exclude = Annotated[list[Annotated[str, Meta(max_length=_LIMITS.max_id_length)]], Meta(max_length=MAX_N, description=f"Item ids never to return: repeat the parameter"
                                    f" or separate ids by commas (at most {MAX_N} ids in all).")]
Text = Annotated[str, Meta(max_length=256)]
Source = Literal["personal", "similar", "trending", "explore", "affinity", "pinned", "promotion"]
Fallback = Literal["unknown", "short"]


# --- requests: path and query parameters (a field named in the route's path template is a path parameter) -----
Values = Annotated[list[Text], Meta(max_length=MAX_N, description="Several: repeat the parameter or separate values by"
                                                                  " commas (any of them matches).")]
Money = Annotated[float, Meta(ge=0.0, le=1e12)]
ATTRIBUTE_PREFIX = "attr."
"""Query parameters ``attr.<name>=<value>`` decode into the ``attr`` field (the field's ``x-query-prefix``)."""


class ListQuery(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What every list endpoint takes: how many, and the filters (:mod:`online.catalog.filters`).

    ``forbid_unknown_fields``: any other query parameter is a 400 naming it.
    """

    n: Count = 10
    exclude: Exclude = []
    category: Annotated[Values, Meta(description="Only items in one of these categories or below (a catalog path,"
                                                 " e.g. sports/fitness); the page's category also supplies the"
                                                 " trending that refills the list.")] = []
    brand: Annotated[Values, Meta(description="Only items of one of these brands.")] = []
    min_price: Annotated[Money, Meta(description="Only items priced at least this.")] | UnsetType = UNSET
    max_price: Annotated[Money, Meta(description="Only items priced at most this (below min_price: nothing"
                                                 " matches).")] | UnsetType = UNSET
    in_stock: Annotated[Literal["true", "any"], Meta(description="true: only items in stock and available now"
                                                                 " (the default); any: every catalog item.")] = "true"
    exclude_seen: Annotated[bool, Meta(description="Leave out the items the user interacted with (default:"
                                                   " LIVERECO_EXCLUDE_SEEN).")] | UnsetType = UNSET
    diversity_cap: Annotated[int, Meta(ge=0, le=100, description="At most this many items of one category in the"
                                                                 " first LIVERECO_DIVERSITY_WINDOW places (default:"
                                                                 " LIVERECO_DIVERSITY_CAP; 0: off).")] | UnsetType = UNSET
    attr: Annotated[dict[str, Text], Meta(
        max_length=32, description="attr.<name>=<value>: only items whose attribute <name> is <value> (attr.foldable"
                                   "=true, attr.size=42)",
        extra_json_schema={"x-query-prefix": ATTRIBUTE_PREFIX})] = {}
    variant: Annotated[str, Meta(max_length=40, pattern=FORCED_VARIANT_PATTERN, description="Force a variant of the"
                                 " experiment in force (QA); the answer is attributed to it. A name the experiment"
                                 " does not have (or empty) forces nothing: the answer's variant field says which"
                                 " variant made it.")] | UnsetType = UNSET


class RecommendationsRequest(ListQuery, frozen=True, kw_only=True):
    user_id: Annotated[str, Meta(min_length=1, max_length=_LIMITS.max_id_length,
                                 description="The user, or an anonymous session id; percent-encode '/'.")]
    device: Annotated[Text, Meta(description="The request's device, as events name it in context.device"
                                             " (context features, LIVERECO_CONTEXT_ITEMS).")] | UnsetType = UNSET
    hour: Annotated[int, Meta(ge=0, le=23, description="The client's local hour of day (default: the UTC hour"
                                                       " now; context features).")] | UnsetType = UNSET


class ProfileRequest(Struct, frozen=True, kw_only=True):
    user_id: PathId


_VIEWER = Meta(max_length=_LIMITS.max_id_length, description="The user the list is shown to: the answer's impression"
                " is recorded for them, so their clicks carrying its rec_id are attributed (without it, or empty,"
                " nothing is recorded).")


class ItemRequest(ListQuery, frozen=True, kw_only=True):
    item_id: PathId
    user_id: Annotated[str, _VIEWER] | UnsetType = UNSET


class TrendingRequest(ListQuery, frozen=True, kw_only=True):
    user_id: Annotated[str, _VIEWER] | UnsetType = UNSET


# --- responses ---------------------------------------------------------------------------------------------
class ItemSourced(Struct, frozen=True, gc=False):
    """One item of a ranked list, with where it came from (never in a reference cycle: not tracked by the collector,
    which the served-list cache holds many of)."""

    item_id: str
    score: float
    source: Source


RecId = Annotated[str, Meta(description="This answer's id: send it back as an event's rec_id to attribute the event"
                                       " to this list (position, source, variant).")]
VariantName = Annotated[str, Meta(description="The experiment variant that made this list (default: no experiment).")]


class RecommendationList(Struct, kw_only=True):
    user_id: str
    source: Literal["personal", "trending"]
    fallback: Fallback | None
    items: list[ItemSourced]
    rec_id: RecId
    variant: VariantName
    updated_ms_ago: Annotated[float, Meta(ge=0, description="Age of the personal part (ms).")] | UnsetType = UNSET
    segment: Annotated[str, Meta(description="A user without a list: the segment (attribute=value, see PUT"
                                             " /v1/users/{user_id}) whose trending answered.")] | UnsetType = UNSET


class SimilarList(Struct, kw_only=True):
    item_id: str
    source: Literal["similar", "trending"]
    fallback: Fallback | None
    items: list[ItemSourced]
    rec_id: RecId
    variant: VariantName


class TrendingItem(Struct, frozen=True):
    item_id: str
    score: Annotated[float, Meta(description="Popularity relative to the top item (1.0).")]
    source: Literal["trending", "pinned", "promotion"] = "trending"


class TrendingList(Struct, kw_only=True):
    category: str | None
    rec_id: RecId
    variant: VariantName
    source: Literal["trending"] = "trending"
    items: list[TrendingItem] = []


class RecentItem(Struct, frozen=True):
    item_id: str
    weight: float
    ts: float


class Profile(Struct, kw_only=True):
    user_id: str
    session_id: str | None
    recent: list[RecentItem]
    session_embedding: list[float]
    affinities: list[tuple[str, float]]


class Accepted(Struct, kw_only=True):
    accepted: Annotated[int, Meta(ge=1)]
    ids: Annotated[list[str], Meta(description="The stream entry id of each event, in order.")]


class Status(Struct):
    status: Literal["ok", "ready"]


class Erasure(Struct, frozen=True, kw_only=True):
    """What an erase removed at once; the flow drops the user's state as it reads the erase."""

    keys: int
    stream_entries: int
    dead_letters: int


class ErasedUser(Struct, kw_only=True):
    user_id: str
    erased: Erasure
    flow: Literal["erasing"] = "erasing"


class MergeRequest(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    from_user: Annotated[str, Meta(min_length=1, max_length=_LIMITS.max_id_length,
                                   description="The anonymous id whose history the user absorbs (then erased).")
                         ] = msgspec.field(name="from")


class MergeResult(Struct, kw_only=True):
    user_id: str
    merged_from: str
    items: Annotated[int, Meta(description="Recent items absorbed.")]
    exclusions: Annotated[int, Meta(description="Items the user will not be shown again (bought, disliked).")]
    flow_caught_up: Annotated[bool, Meta(description="Whether the flow had read the visitor's latest events.")]
    erased: Erasure


# --- errors: one shape --------------------------------------------------------------------------------------
class EventRefusal(Struct, frozen=True, kw_only=True):
    index: int
    field: str
    message: str


class StreamState(Struct, frozen=True, kw_only=True):
    stream: str
    entries: int
    oldest_unread_age_s: float | None
    heartbeat_age_s: float | None


# --- the web console's summary (GET /v1/console/summary; serving.console_routes) ------------------------------
class ConsoleLatency(Struct, frozen=True, kw_only=True):
    """Quantiles of a latency histogram over the summary's window (``None``: nothing observed in it)."""

    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    count: int
    """Observations in the window."""


class ConsoleServer(Struct, frozen=True, kw_only=True):
    """What the server process that answered knows from its own metrics, over the last ``window_s``."""

    window_s: float
    uptime_s: float
    requests_per_s: float
    """API requests answered per second (the console, /metrics and the probes left out)."""
    recommendations_per_s: float
    events_accepted_per_s: float
    events_rejected_per_s: float
    errors_5xx_per_s: float
    fallback_share: float | None
    """Share of recommendation answers that fell back to trending (unknown user, or a short list)."""
    recommendations_latency: ConsoleLatency
    list_age_p50_s: float | None
    redis_up: bool
    resident_memory_bytes: float | None
    cpu_share: float | None
    """Cores busy over the window (1.0: one core)."""


class ConsolePartition(Struct, frozen=True, kw_only=True):
    """One event stream partition, as the server reads it in Redis (the flow's published progress)."""

    partition: int
    entries: int
    oldest_unread_age_s: float | None
    heartbeat_age_s: float | None
    stalled: bool


class ConsoleQuality(Struct, frozen=True, kw_only=True):
    """Online (prequential) quality: each positive event scored against the list its user had just before it."""

    over: Literal["window", "since_start"]
    """``window``: the last ``window_s``; ``since_start``: since the flow processes started (too few scored events
    in the window)."""
    scored: int
    hr_at_5: float | None
    hr_at_10: float | None
    hr_at_20: float | None
    mrr_at_20: float | None


class ConsoleFlow(Struct, frozen=True, kw_only=True):
    """The flow: its progress as published in Redis, and its Prometheus metrics when the server can reach them."""

    metrics_reachable: bool
    metrics_note: str
    """Where the flow's metrics were read from, or why they could not be."""
    processes: int
    window_s: float | None
    events_per_s: float | None
    events_total: int | None
    dead_letters_per_s: float | None
    freshness: ConsoleLatency | None
    """Event accepted → its user's list written, over the window."""
    quality: ConsoleQuality | None
    resident_memory_bytes: float | None
    partitions: list[ConsolePartition]
    stalled: bool


class ConsoleSummary(Struct, frozen=True, kw_only=True):
    """What the console shows: computed by the server, so the browser never parses Prometheus text."""

    generated_at: float
    server: ConsoleServer
    flow: ConsoleFlow
    categories: list[str]
    """Categories with a trending list (up to 200, sorted)."""


__all__ += ["ConsoleFlow", "ConsoleLatency", "ConsolePartition", "ConsoleQuality", "ConsoleServer", "ConsoleSummary"]


class ErrorDetail(Struct, kw_only=True, omit_defaults=True):
    """What went wrong: ``code`` for programs, ``message`` for people, ``field`` naming the culprit."""

    code: str
    message: str
    field: str | None = None
    retry_after_s: int | None = None
    index: Annotated[int, Meta(description="invalid_event: the first bad event's position")] | None = None
    errors: Annotated[list[EventRefusal], Meta(description="invalid_event: every bad event")] | None = None
    rejected: Annotated[int, Meta(description="invalid_event: events refused (the whole batch)")] | None = None
    stream: Annotated[str, Meta(description="backlog_full: the full partition")] | None = None
    entries: int | None = None
    bound: Annotated[int, Meta(description="backlog_full: LIVERECO_STREAM_MAXLEN")] | None = None
    streams: Annotated[list[StreamState], Meta(description="flow_stalled: the stalled partitions")] | None = None


class Error(Struct):
    error: ErrorDetail


# --- the event body: a description of online.contract.parse_event -------------------------------------------
@functools.cache
def printable_pattern() -> str:
    """A JSON Schema ``pattern`` matching exactly the strings the contract accepts as ids' characters.

    Built from the contract's own rule (:func:`online.contract.unprintable_character`) over every code
    point, as a character class of ranges, so the schema and the validator cannot drift apart.
    """
    allowed = [code for code in range(sys.maxunicode + 1)
               if chr(code).isprintable() or (_is_format(code) and unprintable_character(chr(code)) is None)]
    ranges: list[tuple[int, int]] = []
    for code in allowed:
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1] = (ranges[-1][0], code)
        else:
            ranges.append((code, code))
    return "^[" + "".join(_char(lo) if lo == hi else f"{_char(lo)}-{_char(hi)}" for lo, hi in ranges) + "]*$"


def _is_format(code: int) -> bool:
    """Only format characters (Cf) can be printable to the contract without being to ``str.isprintable``."""
    return unicodedata.category(chr(code)) == "Cf"


def _char(code: int) -> str:
    return "\\" + chr(code) if chr(code) in "\\]^-[" else chr(code)


_UNSAFE_CLASS = "\\x00-\\x1f\\x7f-\\x9f\\u2028\\u2029"
"""The contract's characters no context string may hold (online.contract.events._UNSAFE; surrogates cannot be
in decoded JSON text)."""


def event_struct(types: Sequence[str]) -> type[Struct]:
    """The ``Event`` body Struct for these known event types (``Settings.weights``), limits as the contract's.

    Ids may be strings or integers (the contract takes both); optional fields may be ``null`` (the contract
    treats it as absent). What a JSON schema cannot say is added by :mod:`serving.openapi`: ``value`` is
    required for a rating. What no static schema can say: ``ts`` at most ``max_future_s`` past the server's
    clock, and a ``ts`` string must be a real date.
    """
    limits = _LIMITS
    text_id = Annotated[str, Meta(min_length=1, max_length=limits.max_id_length, pattern=printable_pattern())]
    # orjson reads integers of 64 bits, signed or not (a larger one is a 400); msgspec's bounds stop at int64
    int_id = Annotated[int, Meta(extra_json_schema={"minimum": -(2**63), "maximum": 2**64 - 1})]
    ident: Any = text_id | int_id
    context_key = Annotated[str, Meta(min_length=1, max_length=limits.max_context_key_length,
                                      pattern=f"^[^{_UNSAFE_CLASS}]*$")]
    context_text = Annotated[str, Meta(max_length=limits.max_context_value_length, pattern=f"^[^{_UNSAFE_CLASS}]*$")]
    context: Any = Annotated[dict[context_key, context_text | float], Meta(
        max_length=limits.max_context_keys, description="Small map, e.g. category, device.")]
    ts: Any = (Annotated[float, Meta(ge=limits.min_ts)]
               | Annotated[str, Meta(description="ISO 8601 with a zone, or epoch seconds as text")])
    kind: Any = Literal[tuple(sorted(types))]
    return msgspec.defstruct("Event", [
        ("user_id", Annotated[ident, Meta(description="The user, or an anonymous session id.")]),
        ("item_id", ident),
        ("type", kind),
        ("ts", Annotated[ts | None, Meta(description=f"Event time: epoch seconds (2000 or later) or ISO 8601 with a"
                                                     f" zone; at most {limits.max_future_s:.0f} s past the server's"
                                                     " clock; default: now.")], None),
        ("session_id", ident | None, None),
        ("value", Annotated[Annotated[float, Meta(ge=-limits.max_abs_value, le=limits.max_abs_value)] | None,
                            Meta(description="The rating (required for type=rating), or an amount.")], None),
        ("event_id", Annotated[ident | None, Meta(description="Idempotency key: a retry counts once.")], None),
        ("context", context | None, None),
        ("rec_id", Annotated[Any | None, Meta(description="The rec_id of the list this event answers (attribution);"
                                                         " any value is accepted: a malformed one is counted as an"
                                                         " unknown attribution, never refused.")], None),
    ], kw_only=True, forbid_unknown_fields=True)
