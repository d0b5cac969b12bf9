"""The route table: every endpoint of the HTTP API, once.

Each :class:`Route` names its method, path template, the :class:`~serving.app.LiverecoApp`
method that answers it, the Struct its parameters decode into, its body, the
Struct it answers with, and every status it can answer. From this table come
the routing and the 405s with ``Allow`` (:mod:`serving.router`), the ``route``
label set of the metrics (:mod:`serving.metrics`) and the OpenAPI paths
(:mod:`serving.openapi`); nothing else lists routes.

Adding an endpoint: its Structs in :mod:`serving.api`, a row here, and the
handler method on the app (the app refuses to start when a row has none).

>>> [f"{r.method} {r.path}" for r in ROUTES][:2]
['GET /v1/users/{user_id}/recommendations', 'GET /v1/users/{user_id}/profile']
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

from msgspec import Meta
from prometheus_client import CONTENT_TYPE_LATEST

from online.catalog.item import Item
from online.catalog.rules import Rules
from online.contract import Settings
from serving.api import (
    Accepted,
    ConsoleSummary,
    ErasedUser,
    ItemRequest,
    MergeRequest,
    MergeResult,
    Profile,
    ProfileRequest,
    RecommendationList,
    RecommendationsRequest,
    SimilarList,
    Status,
    TrendingList,
    TrendingRequest,
    event_struct,
)
from serving.experiment_api import ExperimentBody, ExperimentDoc, ExperimentPath, ItemStats, ItemStatsRequest
from serving.shop_api import (
    MAX_BULK_BYTES,
    MAX_BULK_ITEMS,
    MAX_RANK_ITEMS,
    ItemDeleted,
    ItemPath,
    ItemsWritten,
    RankBody,
    RankedList,
    UserAttributes,
    UserAttributesBody,
    UserPath,
    item_body,
    item_patch,
)

__all__ = ["PROTOCOL_ERRORS", "ROUTES", "Route", "events_body"]

BAD_PARAMETER = "A path or query parameter is invalid (field names it)"
REDIS_DOWN = "Redis is unreachable; retry after Retry-After"
INTERNAL = "The server failed to answer (a bug); the connection is closed"

PROTOCOL_ERRORS: Mapping[int, str] = {
    400: "Malformed HTTP; the connection is closed",
    408: "The request (headers and body) did not arrive within LIVERECO_HTTP_REQUEST_TIMEOUT_S; the connection is"
         " closed",
    431: "The request line and headers exceed 16 KiB or 100 lines; the connection is closed",
    503: "The server process has LIVERECO_HTTP_MAX_CONNECTIONS open connections; retry after Retry-After",
}
"""What :mod:`serving.protocol` may answer on any route, before the application sees the request."""

AUTH_ERRORS: Mapping[int, str] = {
    401: "No API key, or not a valid one (when LIVERECO_API_KEYS is set): send Authorization: Bearer <key>"
         " or X-API-Key",
    403: "The API key's scope does not allow this operation (read, write, admin)",
    429: "Too many requests from this key (or client address): more than LIVERECO_RATE_LIMIT a second after a"
         " burst of LIVERECO_RATE_BURST; retry after Retry-After",
}
"""What a scoped route may answer before its handler runs."""

RETRY_AFTER_STATUSES = frozenset({429, 503})
"""Statuses that always carry ``Retry-After``."""


def events_body(settings: Settings) -> Any:
    """``POST /v1/events``'s body: one event or an array of up to ``LIVERECO_MAX_BATCH``, types as configured."""
    event = event_struct(sorted(settings.weights.weights))
    return event | Annotated[list[event], Meta(min_length=1, max_length=settings.max_batch)]  # type: ignore[valid-type]


@dataclass(frozen=True, slots=True)
class Route:
    """One endpoint. ``errors`` maps every error status the application may answer to when it does."""

    method: str
    path: str
    handler: str
    """The name of the :class:`~serving.app.LiverecoApp` coroutine answering it."""
    summary: str
    response: Any
    """The Struct of a success (``str`` for a body that is not JSON, with ``media_type``)."""
    status: int = 200
    params: type | None = None
    """The Struct path and query parameters decode into (a field named in ``path`` is a path parameter)."""
    body: Callable[[Settings], Any] | None = None
    """The request body's type, given the settings (limits and event types come from them)."""
    errors: Mapping[int, str] = field(default_factory=dict)
    media_type: str = "application/json"
    description: str = ""
    body_media_types: tuple[str, ...] = ("application/json",)
    """The media types the body may come as (the first is the JSON of ``body``; ``application/x-ndjson``: one
    JSON value of ``body``'s item type a line)."""
    scope: str | None = None
    """The API-key scope it needs (``read``, ``write``, ``admin``: :mod:`online.contract.api_keys`); ``None``: open.
    A scoped route may also answer 401, 403 and 429 (:data:`AUTH_ERRORS`)."""

    @property
    def all_errors(self) -> Mapping[int, str]:
        """``errors`` and, on a scoped route, the key and rate-limit answers."""
        return {**AUTH_ERRORS, **self.errors} if self.scope is not None else self.errors

    @property
    def statuses(self) -> tuple[int, ...]:
        """Every status the application answers here (the protocol's own are :data:`PROTOCOL_ERRORS`)."""
        errors = self.all_errors
        return (self.status, *sorted(errors), *(() if 500 in errors else (500,)))


_LIST_ERRORS = {400: BAD_PARAMETER + "; or a query parameter the endpoint does not know", 503: REDIS_DOWN}
_BODY_ERRORS = {
    400: "A path parameter is invalid, or the body is not JSON (field names it)",
    408: PROTOCOL_ERRORS[408],
    413: "The body exceeds LIVERECO_MAX_BODY_BYTES",
    415: "The body is not declared as one of the operation's media types (charset UTF-8)",
    503: REDIS_DOWN,
}
_ITEM_422 = ("The item breaks a catalog rule no schema states (a category path with an empty level or more than 8,"
             " available_until not after available_from, a time before 1970 or a time without a zone, an id or"
             " text with a control character); field names it; nothing was written")
_NO_ITEM = "No catalog item has this item_id"
_LIST_DESCRIPTION = ("Filters: category, brand, min_price/max_price, in_stock, exclude, exclude_seen and attr.<name>=<value>"
                     " (any attribute, e.g. attr.color=red: the x-query-prefix parameter below, which OpenAPI cannot"
                     " list by name); a filtered-out place is refilled from deeper candidates, then the category's"
                     " trending, then trending. Then the rules (GET /v1/rules) and the diversity cap.")


def _bulk_body(settings: Settings) -> Any:
    """Any array: each element is taken as an Item (the Item schema) or reported by its index, so an array with bad
    elements is a valid request, answered 200 with those elements in ``errors``."""
    return Annotated[list[Any], Meta(max_length=MAX_BULK_ITEMS, description="Items, each as the Item schema; an element"
                                     " that is not a valid item is reported by its index, the others are written")]

ROUTES: tuple[Route, ...] = (
    Route("GET", "/v1/users/{user_id}/recommendations", "recommendations",
          "A user's fresh personal list; trending for unknown users", RecommendationList,
          params=RecommendationsRequest, errors=_LIST_ERRORS, scope="read", description=_LIST_DESCRIPTION),
    Route("GET", "/v1/users/{user_id}/profile", "profile", "A user's session, recent items, session embedding"
          " and affinities", Profile, params=ProfileRequest,
          errors={400: BAD_PARAMETER, 404: "No profile for this user (none yet, or expired)", 503: REDIS_DOWN},
          scope="read"),
    Route("GET", "/v1/items/{item_id}/similar", "similar",
          "Items that go with an item (decayed co-visitation); trending when unknown", SimilarList,
          params=ItemRequest, errors=_LIST_ERRORS, scope="read", description=_LIST_DESCRIPTION),
    Route("GET", "/v1/trending", "trending", "Most popular items now (time-decayed), globally or in a category",
          TrendingList, params=TrendingRequest, errors=_LIST_ERRORS, scope="read", description=_LIST_DESCRIPTION),
    Route("POST", "/v1/users/{user_id}/rank", "rank", f"Order up to {MAX_RANK_ITEMS} items by the user's current"
          " scores; unknown items keep their order at the end", RankedList, params=UserPath,
          body=lambda settings: RankBody,
          errors={**_BODY_ERRORS, 422: "The body is not {\"items\": [...]} with 1-500 ids (field names it)"},
          scope="read"),
    Route("PUT", "/v1/users/{user_id}", "put_user", "Store a user's attributes (country, segment, ...) for cold"
          " start; replaces the stored ones; kept LIVERECO_USER_TTL_S", UserAttributes, params=UserPath,
          body=lambda settings: UserAttributesBody,
          errors={**_BODY_ERRORS, 422: "An attribute name or value is not allowed (field names it)"}, scope="write"),
    Route("PUT", "/v1/items/{item_id}", "put_item", "Create or replace a catalog item", Item, params=ItemPath,
          body=lambda settings: item_body(), errors={**_BODY_ERRORS, 422: _ITEM_422}, scope="admin"),
    Route("PATCH", "/v1/items/{item_id}", "patch_item", "Change some of an item's properties (a merge patch, RFC 7396:"
          " null removes a property, attributes merge key by key)", Item, params=ItemPath,
          body=lambda settings: item_patch(), body_media_types=("application/json", "application/merge-patch+json"),
          errors={**_BODY_ERRORS, 404: _NO_ITEM, 422: _ITEM_422}, scope="admin"),
    Route("GET", "/v1/items/{item_id}", "get_item", "A catalog item as stored", Item, params=ItemPath,
          errors={400: BAD_PARAMETER, 404: _NO_ITEM, 503: REDIS_DOWN}, scope="admin"),
    Route("DELETE", "/v1/items/{item_id}", "delete_item", "Remove an item from the catalog (it is never served"
          " again)", ItemDeleted, params=ItemPath, errors={400: BAD_PARAMETER, 404: _NO_ITEM, 503: REDIS_DOWN},
          scope="admin"),
    Route("POST", "/v1/items", "bulk_items", f"Create or replace up to {MAX_BULK_ITEMS} items: a JSON array, or NDJSON"
          " (one item a line); each good item is written atomically, each bad one reported by index or line",
          ItemsWritten, body=_bulk_body, body_media_types=("application/json", "application/x-ndjson"),
          errors={**_BODY_ERRORS, 413: f"The body exceeds {MAX_BULK_BYTES} bytes or holds more than {MAX_BULK_ITEMS}"
                                       " items"}, scope="admin"),
    Route("GET", "/v1/items/{item_id}/stats", "get_item_stats", "An item's impressions, clicks, CTR, carts,"
          " conversions and revenue attributed to served lists (counted by the flow)", ItemStats,
          params=ItemStatsRequest, errors={400: BAD_PARAMETER, 503: REDIS_DOWN}, scope="read"),
    Route("PUT", "/v1/experiments/{name}", "put_experiment", "Create or change an experiment: its variants and"
          " their shares (in force on every server within a second)", ExperimentDoc, params=ExperimentPath,
          body=lambda settings: ExperimentBody,
          errors={**_BODY_ERRORS, 422: "The experiment is invalid: shares not adding up to 1, repeated variant names"
                                       " (field names it)"}, scope="admin"),
    Route("GET", "/v1/experiments/{name}", "get_experiment", "An experiment as stored", ExperimentDoc,
          params=ExperimentPath, errors={400: BAD_PARAMETER, 404: "No experiment has this name", 503: REDIS_DOWN},
          scope="admin"),
    Route("GET", "/v1/rules", "get_rules", "The merchandising rules in force, with their version", Rules,
          errors={503: REDIS_DOWN}, scope="admin"),
    Route("PUT", "/v1/rules", "put_rules", "Replace the merchandising rules (in force on every server within a"
          " second)", Rules, body=lambda settings: Rules,
          errors={**_BODY_ERRORS, 422: "A rule is invalid (field names it, e.g. rules[2].factor)"}, scope="admin"),
    Route("POST", "/v1/events", "ingest", "Ingest one event or an array of them; all or nothing", Accepted,
          status=202, body=events_body, errors={
              400: "The body is not JSON, not UTF-8, empty, or neither an object nor a non-empty array",
              408: PROTOCOL_ERRORS[408],
              413: "The body exceeds LIVERECO_MAX_BODY_BYTES or the batch LIVERECO_MAX_BATCH",
              415: "The body is not declared as application/json (charset UTF-8)",
              422: "An event breaks the contract: nothing was written; errors lists every bad event by index and"
                   " field (a ts more than a day past the server's clock is one)",
              503: "Nothing was written: a stream partition holds LIVERECO_STREAM_MAXLEN entries the flow has not"
                   " released (code backlog_full, naming stream, entries and bound), or Redis is unreachable;"
                   " retry the same batch after Retry-After (event_id makes a retry count once)"}, scope="write"),
    Route("DELETE", "/v1/users/{user_id}", "erase_user", "Erase a user everywhere: keys, stream entries and dead"
          " letters at once, the flow's state as it reads the erase (idempotent)", ErasedUser, status=202,
          params=ProfileRequest, errors={400: BAD_PARAMETER, 503: REDIS_DOWN}, scope="admin"),
    Route("POST", "/v1/users/{user_id}/merge", "merge_user", "Fold an anonymous visitor's history into this user"
          " (in the flow), then erase the visitor", MergeResult, status=202, params=ProfileRequest,
          body=lambda settings: MergeRequest, scope="write", errors={
              400: "The body is not JSON", 415: "The body is not declared as application/json (charset UTF-8)",
              409: "from: the user itself", 422: "from: missing, not a string or too long", 503: REDIS_DOWN}),
    # The web console (serving.console_routes): the page is open; the data it shows needs a read key.
    Route("GET", "/console", "console_page", "The web console: throughput, freshness, latency, quality, trending,"
          " a user's list and an item (it asks for a read key when the server has keys)", str,
          media_type="text/html; charset=utf-8"),
    Route("GET", "/console/console.js", "console_script", "The web console's script", str,
          media_type="text/javascript; charset=utf-8"),
    Route("GET", "/console/console.css", "console_style", "The web console's style sheet", str,
          media_type="text/css; charset=utf-8"),
    Route("GET", "/v1/console/summary", "console_summary", "Throughput, latency, freshness and online quality of"
          " this server process and of the flow, computed by the server from its own metrics, the flow's progress in"
          " Redis and, when it can reach them, the flow's metrics", ConsoleSummary, errors={503: REDIS_DOWN},
          scope="read"),
    Route("GET", "/healthz", "healthz", "The process is up", Status),
    Route("GET", "/readyz", "readyz", "Redis answers, and no event waits unprocessed while the flow is silent", Status,
          errors={503: "Redis is unreachable, or a stream holds events after the flow's read position and the flow's"
                       " heartbeat is older than LIVERECO_FLOW_STALE_S (code flow_stalled, streams)"}),
    Route("GET", "/metrics", "prometheus", "Prometheus metrics", str,
          media_type=CONTENT_TYPE_LATEST),
    Route("GET", "/openapi.json", "openapi", "This document", dict),
)
