"""The OpenAPI 3.1 document served at ``GET /openapi.json``, generated from the route table and the API's Structs.

Nothing here is written by hand but the titles: paths, operations and statuses
come from :data:`serving.routes.ROUTES`, parameters from each route's params
Struct (a field named in the path template is a path parameter, the others are
query parameters), bodies and answers from their Structs through
``msgspec.json.schema_components``, and every error answer is the one
:class:`serving.api.Error` shape. Settings fill in what they decide: the known
event types and the batch limit.

>>> from online.contract import Settings
>>> doc = openapi_document(Settings.from_env({}))
>>> sorted(doc["paths"]["/v1/trending"]["get"]["responses"])
['200', '400', '401', '403', '408', '429', '431', '500', '503']
>>> [p["name"] for p in doc["paths"]["/v1/items/{item_id}/similar"]["get"]["parameters"]][:4]
['n', 'exclude', 'category', 'brand']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from online.contract import Settings
from serving.api import Error
from serving.routes import PROTOCOL_ERRORS, RETRY_AFTER_STATUSES, ROUTES, Route

__all__ = ["openapi_document"]

_REF = "#/components/schemas/{name}"
_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying", "required": True,
                                "schema": {"type": "integer", "minimum": 0}}}
_ERROR_CONTENT = {"application/json": {"schema": {"$ref": _REF.format(name="Error")}}}
_RATING_NEEDS_VALUE = {"if": {"properties": {"type": {"const": "rating"}}, "required": ["type"]},
                       "then": {"required": ["value"], "properties": {"value": {"type": "number"}}}}
"""What the Event Struct cannot say by itself: the contract requires ``value`` for a rating."""


_SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer",
               "description": "An API key of the operation's scope (read, write, admin; admin opens everything),"
                              " when the server has keys (LIVERECO_API_KEYS)"},
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "The same key, in a header"},
}


def _body_schema(media_type: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {media_type.split(";", 1)[0]: {"schema": schema}}


def _parameters(route: Route, schema: dict[str, Any]) -> list[dict[str, Any]]:
    """One OpenAPI parameter per field of the route's params Struct (its object ``schema``)."""
    out = []
    for name, prop in schema["properties"].items():
        if "x-query-prefix" in prop:  # attr.<name>: described by the operation's x-query-prefix-parameters
            continue
        prop = dict(prop)
        description = prop.pop("description", None)
        members = prop.get("anyOf")
        if members is not None:  # X | None: in a query, "none" is leaving the parameter out
            kept = [m for m in members if m.get("type") != "null"]
            prop = {**{k: v for k, v in prop.items() if k != "anyOf"}, **kept[0]} if len(kept) == 1 else prop
            description = description or prop.pop("description", None)
        if prop.get("default", 0) is None:
            del prop["default"]
        in_path = "{" + name + "}" in route.path
        parameter: dict[str, Any] = {"name": name, "in": "path" if in_path else "query",
                                     "required": in_path or name in schema.get("required", ()), "schema": prop}
        if prop.get("type") == "array":
            parameter.update(style="form", explode=True)
        if description:
            parameter["description"] = description
        out.append(parameter)
    return out


def _responses(route: Route, schema: dict[str, Any]) -> dict[str, Any]:
    responses: dict[str, Any] = {str(route.status): {"description": route.summary,
                                                     "content": _body_schema(route.media_type, schema)}}
    errors = dict(route.all_errors)
    errors.setdefault(500, "The server failed to answer (a bug); the connection is closed")
    for status, text in PROTOCOL_ERRORS.items():
        errors[status] = f"{errors[status]}; or: {text}" if status in errors else text
    for status in sorted(errors):
        answer: dict[str, Any] = {"description": errors[status], "content": _ERROR_CONTENT}
        if status in RETRY_AFTER_STATUSES:
            answer["headers"] = _RETRY_AFTER
        responses[str(status)] = answer
    return responses


def _non_struct_schema(kind: Any) -> dict[str, Any] | None:
    return {str: {"type": "string"}, dict: {"type": "object"}}.get(kind)


def openapi_document(settings: Settings, routes: Sequence[Route] = ROUTES) -> dict[str, Any]:
    """The whole document for these settings (event types, batch limit) and routes."""
    bodies = {route.handler: route.body(settings) for route in routes if route.body is not None}
    typed = [t for route in routes for t in (route.response, route.params) if t is not None
             and _non_struct_schema(t) is None]
    schemas, components = msgspec.json.schema_components([Error, *typed, *bodies.values()], ref_template=_REF)
    by_type = dict(zip([Error, *typed], schemas, strict=False))
    body_schemas = dict(zip(bodies, schemas[1 + len(typed):], strict=True))
    if "Event" in components:
        components["Event"].update(_RATING_NEEDS_VALUE)
    paths: dict[str, dict[str, Any]] = {}
    params_only: set[str] = set()  # parameters are described in place, not as schemas
    for route in routes:
        answer = _non_struct_schema(route.response) or by_type[route.response]
        operation: dict[str, Any] = {"operationId": route.handler, "summary": route.summary,
                                     "responses": _responses(route, answer)}
        if route.description:
            operation["description"] = route.description
        if route.scope is not None:  # keys are optional for the server (open on loopback without them)
            operation["security"] = [{"bearer": [route.scope]}, {"apiKey": [route.scope]}, {}]
        if route.params is not None:
            ref = by_type[route.params]["$ref"].rsplit("/", 1)[-1]
            operation["parameters"] = _parameters(route, components[ref])
            prefixed = [{"prefix": prop["x-query-prefix"], "field": name, "description": prop.get("description", ""),
                         "schema": prop.get("additionalProperties", {})}
                        for name, prop in components[ref]["properties"].items() if "x-query-prefix" in prop]
            if prefixed:  # OpenAPI has no parameters named by a pattern: a vendor extension, and the description
                operation["x-query-prefix-parameters"] = prefixed
            params_only.add(ref)
        if route.handler in bodies:
            content = {}
            for media_type in route.body_media_types:
                if media_type == "application/x-ndjson":
                    content[media_type] = {"schema": {"type": "string", "description": "One JSON object a line,"
                                                      " each as an element of the application/json array"}}
                else:
                    content[media_type] = {"schema": body_schemas[route.handler]}
            operation["requestBody"] = {"required": True, "content": content}
        paths.setdefault(route.path, {})[route.method.lower()] = operation
    for ref in params_only:
        del components[ref]
    return {
        "openapi": "3.1.0",
        "info": {"title": "livereco", "version": "0.1.0",
                 "description": "Streaming online recommendations: events in, fresh lists out. Every error is"
                                " {\"error\": {\"code\", \"message\", \"field\", ...}} naming the field."},
        "paths": paths,
        "components": {"schemas": components, "securitySchemes": _SECURITY_SCHEMES},
    }
