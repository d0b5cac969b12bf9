"""Routing over the route table: path templates matched by segment, parameters decoded into their Struct.

A path matches a template segment by segment (literal segments equal, ``{name}``
segments capture the percent-decoded segment). A path some route has but not
for this method is a 405 with ``Allow``; a path no route has is a 404. Path and
query parameters are decoded together into the route's params Struct with
``msgspec.convert``, so a bad parameter is a 400 naming it, by the same rules
the OpenAPI document states.

Query strings: a list parameter may be repeated and each value may hold
comma-separated ids (``exclude=a,b&exclude=c``); another parameter takes its
last value; an empty value of an optional text parameter means "not given".

>>> from serving.routes import ROUTES
>>> router = Router(ROUTES)
>>> route, params = router.match("GET", ["v1", "users", "a/b", "recommendations"], b"n=5&exclude=x,y&exclude=z")
>>> route.path, params.user_id, params.n, params.exclude
('/v1/users/{user_id}/recommendations', 'a/b', 5, ['x', 'y', 'z'])
>>> router.match("DELETE", ["v1", "trending"], b"")
Traceback (most recent call last):
...
serving.http.HTTPError: method: DELETE not allowed here; use GET
>>> router.match("GET", ["v1", "trending"], b"n=0")
Traceback (most recent call last):
...
serving.http.HTTPError: n: expected `int` >= 1, got '0'
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import msgspec
from msgspec import inspect

from serving.http import HTTPError
from serving.routes import Route

__all__ = ["Router", "Template"]

_AT = re.compile(r" - at `\$\.?([^`]*)`$")


@dataclass(frozen=True, slots=True)
class _Params:
    """How to decode one params Struct from a path match and a query string."""

    cls: type
    path_fields: frozenset[str]
    list_fields: frozenset[str]
    text_fields: frozenset[str]
    query_fields: tuple[str, ...]
    prefixes: tuple[tuple[str, str], ...] = ()
    """``(prefix, field)``: query parameters ``<prefix><name>`` go into the dict field as ``{name: value}``."""
    strict: bool = False
    """Whether a query parameter the Struct does not have is a 400 (``forbid_unknown_fields``)."""
    query_names: frozenset[str] = frozenset()
    """``query_fields`` as a set."""

    @classmethod
    def of(cls, struct: type, template: str) -> _Params:
        info = inspect.type_info(struct)
        assert isinstance(info, inspect.StructType), struct
        in_path = {f.name for f in info.fields if "{" + f.name + "}" in template}
        prefixes = tuple((prefix, f.name) for f in info.fields if (prefix := _prefix(f.type)))
        kinds = {f.name: _kind(f.type) for f in info.fields}
        return cls(struct, frozenset(in_path), frozenset(n for n, k in kinds.items() if k == "list"),
                   frozenset(n for n, k in kinds.items() if k == "text"),
                   tuple(n for n in kinds if n not in in_path and all(n != f for _, f in prefixes)),
                   prefixes, info.forbid_unknown_fields,
                   frozenset(n for n in kinds if n not in in_path and all(n != f for _, f in prefixes)))

    def _prefixed(self, query: dict[str, list[str]], data: dict[str, Any]) -> None:
        """The prefixed parameters of ``query`` into ``data``'s dict fields; any other unknown one is a 400."""
        for name, values in query.items():
            if name in self.query_fields:
                continue
            for prefix, target in self.prefixes:
                if name.startswith(prefix) and len(name) > len(prefix):
                    if values[-1]:
                        data.setdefault(target, {})[name[len(prefix):]] = values[-1]
                    break
            else:
                raise _unknown_parameter(name, self)

    def decode(self, captured: dict[str, str], query_string: bytes) -> Any:
        data: dict[str, Any] = dict(captured)
        if query_string and (self.query_fields or self.strict):
            try:
                query = _parse_query(query_string.decode("utf-8"))
            except UnicodeDecodeError:
                raise HTTPError(400, "bad_parameter", "query: not valid UTF-8", field="query") from None
            if self.strict and not query.keys() <= self.query_names:
                self._prefixed(query, data)
            names = self.query_names
            for name, values in query.items():  # the query's few names, not the Struct's many fields
                if name not in names or not values:
                    continue
                if name in self.list_fields:
                    data[name] = [part for value in values for part in value.split(",") if part]
                elif values[-1] or name not in self.text_fields:
                    data[name] = values[-1]
        try:
            return msgspec.convert(data, self.cls, strict=False)
        except msgspec.ValidationError as exc:
            raise _parameter_error(str(exc), data) from None


def _unknown_parameter(name: str, params: _Params) -> HTTPError:
    known = sorted({*params.query_fields, *(f"{prefix}<name>" for prefix, _ in params.prefixes)})
    return HTTPError(400, "bad_parameter", f"{name[:64]}: is not a known parameter (known: {', '.join(known)})",
                     field=name[:64])


def _prefix(t: inspect.Type) -> str | None:
    """The ``x-query-prefix`` a field's type declares (``attr.``), if any."""
    if isinstance(t, inspect.Metadata):
        extra = t.extra_json_schema or {}
        return extra.get("x-query-prefix") or _prefix(t.type)
    return None


def _parse_query(text: str) -> dict[str, list[str]]:
    """``parse_qs(text, keep_blank_values=True)``, by hand when nothing needs decoding (the hot path's ``n=10``).

    >>> _parse_query("n=10&exclude=a&exclude=b&flag") == parse_qs("n=10&exclude=a&exclude=b&flag", keep_blank_values=True)
    True
    """
    if "%" in text or "+" in text:
        return parse_qs(text, keep_blank_values=True)
    query: dict[str, list[str]] = {}
    for part in text.split("&"):
        if part:
            name, _, value = part.partition("=")
            query.setdefault(name, []).append(value)
    return query


def _kind(t: inspect.Type) -> str:
    """``list``, ``text`` (a string, possibly optional) or ``other``: how a query value becomes the field."""
    if isinstance(t, inspect.Metadata):
        return _kind(t.type)
    if isinstance(t, inspect.UnionType):
        kinds = {_kind(member) for member in t.types if not isinstance(member, inspect.NoneType)}
        return kinds.pop() if len(kinds) == 1 else "other"
    if isinstance(t, inspect.ListType):
        return "list"
    return "text" if isinstance(t, inspect.StrType) else "other"


def _parameter_error(text: str, data: dict[str, Any]) -> HTTPError:
    found = _AT.search(text)
    path = found.group(1) if found else ""
    name = re.split(r"[.\[]", path, maxsplit=1)[0] or "query"
    problem = text[: found.start()] if found else text
    problem = problem[:1].lower() + problem[1:]
    raw = data.get(name)
    if " got " in problem:
        pass
    elif isinstance(raw, str):
        problem += f", got {raw[:40]!r}"
    elif isinstance(raw, list):
        problem += f", got {len(raw)}"
    return HTTPError(400, "bad_parameter", f"{name}: {problem}", field=name)


@dataclass(frozen=True, slots=True)
class Template:
    """One path template and the routes (one per method) it has."""

    path: str
    segments: tuple[str | None, ...]  # a literal, or None for a parameter
    literals: tuple[tuple[int, str], ...]  # (position, text) of each literal segment
    names: tuple[tuple[int, str], ...]  # (position, name) of each parameter
    methods: dict[str, tuple[Route, _Params | None]]
    allow: tuple[str, ...]


class Router:
    """Matches (method, path segments, query string) to a :class:`~serving.routes.Route` and its decoded params."""

    def __init__(self, routes: Sequence[Route]):
        by_path: dict[str, dict[str, tuple[Route, _Params | None]]] = {}
        for route in routes:
            methods = by_path.setdefault(route.path, {})
            if route.method in methods:
                raise ValueError(f"{route.method} {route.path} is in the route table twice")
            methods[route.method] = (route, None if route.params is None else _Params.of(route.params, route.path))
        self._by_length: dict[int, list[Template]] = {}
        for path, methods in by_path.items():
            parts = path.strip("/").split("/")
            template = Template(path, tuple(None if p.startswith("{") else p for p in parts),
                                tuple((k, p) for k, p in enumerate(parts) if not p.startswith("{")),
                                tuple((k, p[1:-1]) for k, p in enumerate(parts) if p.startswith("{")),
                                methods, tuple(methods))
            self._by_length.setdefault(len(parts), []).append(template)

    def template(self, segments: Sequence[str]) -> Template | None:
        """The template ``segments`` match, if any."""
        for template in self._by_length.get(len(segments), ()):
            for position, literal in template.literals:
                if segments[position] != literal:
                    break
            else:
                return template
        return None

    def match(self, method: str, segments: Sequence[str], query_string: bytes) -> tuple[Route, Any]:
        """The route and its decoded params; :class:`~serving.http.HTTPError` 404, 405 (with ``allow``) or 400."""
        return self.resolve(self.template(segments), method, segments, query_string)

    @staticmethod
    def resolve(template: Template | None, method: str, segments: Sequence[str],
                query_string: bytes) -> tuple[Route, Any]:
        """:meth:`match` once the template is known (the caller labels its metrics with it)."""
        if template is None:
            raise HTTPError(404, "not_found", f"path: no route for {'/' + '/'.join(segments)[:100]!r}", field="path")
        found = template.methods.get(method)
        if found is None:
            raise HTTPError(405, "method_not_allowed", f"method: {method[:20]} not allowed here; use"
                            f" {', '.join(template.allow)}", field="method", allow=template.allow)
        route, params = found
        if params is None:
            return route, None
        return route, params.decode({name: segments[position] for position, name in template.names}, query_string)
