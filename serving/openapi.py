"""The OpenAPI 3.1 document served at ``GET /openapi.json``.

Written by hand next to the handlers it describes; a test checks that every
route the server answers is documented here and the reverse.
"""

from __future__ import annotations

from typing import Any

from online.contract import Settings

__all__ = ["openapi_document"]


def _n(default: int = 10) -> dict[str, Any]:
    return {"name": "n", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": default},
            "description": "How many items to return."}


_EXCLUDE = {"name": "exclude", "in": "query", "schema": {"type": "string"},
            "description": "Comma-separated item ids never to return (repeatable)."}
_ERROR = {"description": "Error naming the problem",
          "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "integer"}}}
_UNAVAILABLE = {"description": "Redis is unreachable, or the connection limit is reached; retry after Retry-After",
                "headers": _RETRY_AFTER,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_INGEST_UNAVAILABLE = {
    "description": "Nothing was written: a stream partition holds LIVERECO_STREAM_MAXLEN entries the flow has not"
                   " released (code backlog_full, naming stream, entries and bound), or Redis is unreachable; retry"
                   " the same batch after Retry-After (event_id makes a retry count once)",
    "headers": _RETRY_AFTER, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_TIMEOUT = {"description": "The request (headers and body) did not arrive within LIVERECO_HTTP_REQUEST_TIMEOUT_S;"
                           " the connection is closed",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_MEDIA = {"description": "The body is not declared as application/json (charset UTF-8)",
          "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_LIST = {"description": "A ranked list",
         "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ItemList"}}}}


def _path_id(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string", "maxLength": 256},
            "description": "Percent-encode '/' and other reserved characters."}


def openapi_document(settings: Settings) -> dict[str, Any]:
    types = sorted(settings.weights.weights)
    event_schema = {
        "type": "object",
        "required": ["user_id", "item_id", "type"],
        "additionalProperties": False,
        "properties": {
            "user_id": {"type": "string", "maxLength": 256, "description": "User, or an anonymous session id"},
            "item_id": {"type": "string", "maxLength": 256},
            "type": {"type": "string", "enum": types},
            "ts": {"oneOf": [{"type": "number"}, {"type": "string", "format": "date-time"}],
                   "description": "Epoch seconds or ISO 8601 with a zone; default: now"},
            "session_id": {"type": "string", "maxLength": 256},
            "value": {"type": "number", "description": "Rating value (required for type=rating) or amount"},
            "event_id": {"type": "string", "maxLength": 256, "description": "Idempotency key: retries count once"},
            "context": {"type": "object", "maxProperties": 16,
                        "additionalProperties": {"oneOf": [{"type": "string", "maxLength": 256}, {"type": "number"}]},
                        "description": "Small map, e.g. category, device"},
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "livereco", "version": "0.1.0",
                 "description": "Streaming online recommendations: events in, fresh lists out."},
        "paths": {
            "/v1/users/{user_id}/recommendations": {"get": {
                "summary": "A user's fresh personal list; trending for unknown users",
                "parameters": [_path_id("user_id"), _n(), _EXCLUDE,
                               {"name": "category", "in": "query", "schema": {"type": "string"},
                                "description": "The page's category: the trending part of the list comes from it"
                                               " (all items while it has none)"},
                               {"name": "device", "in": "query", "schema": {"type": "string", "maxLength": 256},
                                "description": "The request's device, as events name it in context.device"
                                               " (context features, LIVERECO_CONTEXT_ITEMS)"},
                               {"name": "hour", "in": "query",
                                "schema": {"type": "integer", "minimum": 0, "maximum": 23},
                                "description": "The client's local hour of day (default: the UTC hour now;"
                                               " context features)"}],
                "responses": {"200": _LIST, "400": _ERROR, "503": _UNAVAILABLE}}},
            "/v1/users/{user_id}/profile": {"get": {
                "summary": "A user's session and recent items",
                "parameters": [_path_id("user_id")],
                "responses": {"200": {"description": "The profile"}, "404": _ERROR, "503": _UNAVAILABLE}}},
            "/v1/items/{item_id}/similar": {"get": {
                "summary": "Items that go with an item (decayed co-visitation); trending when unknown",
                "parameters": [_path_id("item_id"), _n(), _EXCLUDE],
                "responses": {"200": _LIST, "400": _ERROR, "503": _UNAVAILABLE}}},
            "/v1/trending": {"get": {
                "summary": "Most popular items now (time-decayed), globally or in a category",
                "parameters": [_n(), {"name": "category", "in": "query", "schema": {"type": "string"}}],
                "responses": {"200": _LIST, "400": _ERROR, "503": _UNAVAILABLE}}},
            "/v1/events": {"post": {
                "summary": f"Ingest one event or an array of up to {settings.max_batch}; all or nothing",
                "requestBody": {"required": True, "content": {"application/json": {"schema": {"oneOf": [
                    {"$ref": "#/components/schemas/Event"},
                    {"type": "array", "items": {"$ref": "#/components/schemas/Event"},
                     "minItems": 1, "maxItems": settings.max_batch}]}}}},
                "responses": {
                    "202": {"description": "Appended", "content": {"application/json": {"schema": {
                        "type": "object", "properties": {"accepted": {"type": "integer"},
                                                         "ids": {"type": "array", "items": {"type": "string"}}}}}}},
                    "400": _ERROR, "408": _TIMEOUT, "413": _ERROR, "415": _MEDIA, "422": _ERROR,
                    "503": _INGEST_UNAVAILABLE}}},
            "/healthz": {"get": {"summary": "The process is up", "responses": {"200": {"description": "ok"}}}},
            "/readyz": {"get": {
                "summary": "Redis answers, and no event waits unprocessed while the flow is silent",
                "responses": {"200": {"description": "ready"}, "503": {
                    "description": "Redis is unreachable, or a stream holds events after the flow's read position"
                                   " and the flow's heartbeat is older than LIVERECO_FLOW_STALE_S (code flow_stalled,"
                                   " streams: stream, entries, oldest_unread_age_s, heartbeat_age_s)",
                    "headers": _RETRY_AFTER,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "text"}}}},
            "/openapi.json": {"get": {"summary": "This document", "responses": {"200": {"description": "JSON"}}}},
        },
        "components": {"schemas": {
            "Event": event_schema,
            "ItemList": {"type": "object", "properties": {
                "source": {"type": "string", "enum": ["personal", "similar", "trending"]},
                "fallback": {"type": ["string", "null"], "enum": ["unknown", "short", None]},
                "items": {"type": "array", "items": {"type": "object", "properties": {
                    "item_id": {"type": "string"}, "score": {"type": "number"},
                    "source": {"type": "string", "enum": ["personal", "similar", "trending", "explore"]}}}}}},
            "Error": {"type": "object", "properties": {"error": {"type": "object", "required": ["code", "message"],
                      "properties": {"code": {"type": "string"}, "message": {"type": "string"},
                                     "field": {"type": "string"}, "index": {"type": "integer"},
                                     "errors": {"type": "array"}, "retry_after_s": {"type": "integer"},
                                     "stream": {"type": "string"}, "entries": {"type": "integer"},
                                     "bound": {"type": "integer"}, "streams": {"type": "array"}}}}},
        }},
    }
