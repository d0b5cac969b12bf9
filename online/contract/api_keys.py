"""API keys with scopes: who may read lists, write events, or administer the catalog, rules and users.

Three scopes. ``read``: recommendations, similar items, trending, profiles,
re-ranking. ``write``: events, user attributes, identity merges. ``admin``:
the catalog, rules, experiments, erasing users — and everything else (an
admin key is accepted everywhere). A ``write`` key does not read and a
``read`` key does not write: a shop's event producer and its page renderer
hold different keys.

Keys come from ``LIVERECO_API_KEYS`` (``scope:key`` entries, comma or
whitespace separated) and/or the file ``LIVERECO_API_KEYS_FILE`` (the same
entries, one per line, ``#`` comments). A scope may hold several keys, so a
key is rotated by adding the new one, moving clients over, then removing the
old one. A request sends its key as ``Authorization: Bearer <key>`` or
``X-API-Key: <key>``. Keys are compared in constant time against every
configured key (no early exit that would tell which one nearly matched), and
never appear in a log line or an error: a key is named by :func:`key_id`,
the first 12 hex digits of its SHA-256.

>>> keys = ApiKeys.parse("read:r3ad-key-0123456789, write:wr1te-key-0123456789 admin:adm1n-key-0123456789")
>>> keys.check("Bearer r3ad-key-0123456789", None, "read").status
200
>>> keys.check("Bearer r3ad-key-0123456789", None, "write").status
403
>>> keys.check(None, "adm1n-key-0123456789", "write").status
200
>>> keys.check(None, None, "read").status, keys.check("Bearer nope-nope-nope-nope", None, "read").status
(401, 401)
>>> ApiKeys.parse("reader:abcdefghijklmnop")
Traceback (most recent call last):
...
ValueError: LIVERECO_API_KEYS entry 1: unknown scope 'reader' (known: admin, read, write)
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["MIN_KEY_LENGTH", "SCOPES", "ApiKeys", "Decision", "access_problem", "access_summary", "is_loopback",
           "key_id"]

SCOPES = ("read", "write", "admin")
MIN_KEY_LENGTH = 16
"""Shorter keys are refused: a key is a secret, not a password a person types."""


def key_id(key: str) -> str:
    """A key's public name, for logs and metrics: the first 12 hex digits of its SHA-256.

    >>> key_id("r3ad-key-0123456789")
    '752842886e20'
    """
    return hashlib.sha256(key.encode()).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of checking a request's key: 200, 401 (no or unknown key) or 403 (wrong scope)."""

    status: int
    message: str = ""
    key: str | None = None
    """The matching key's :func:`key_id` (``None`` when none matched)."""
    scope: str | None = None


@dataclass(frozen=True, slots=True)
class ApiKeys:
    """The configured keys, each with its scope; empty means the server is open (loopback only)."""

    entries: tuple[tuple[bytes, str], ...] = ()

    def __repr__(self) -> str:  # never the keys themselves
        return f"ApiKeys({', '.join(f'{scope}:{key_id(k.decode())}' for k, scope in self.entries)})"

    @property
    def enabled(self) -> bool:
        return bool(self.entries)

    @classmethod
    def parse(cls, spec: str = "", file_text: str = "", source: str = "LIVERECO_API_KEYS") -> ApiKeys:
        """Keys from ``scope:key`` entries; errors name the entry by position, never by its key."""
        entries: list[tuple[bytes, str]] = []
        for where, text in ((source, spec), ("LIVERECO_API_KEYS_FILE", file_text)):
            lines = [line.split("#", 1)[0] for line in text.splitlines()]
            tokens = [t for line in lines for t in line.replace(",", " ").split()]
            for n, token in enumerate(tokens, 1):
                scope, sep, key = token.partition(":")
                if not sep or not key:
                    raise ValueError(f"{where} entry {n}: expected scope:key")
                if scope not in SCOPES:
                    raise ValueError(f"{where} entry {n}: unknown scope {scope[:20]!r} (known: {', '.join(sorted(SCOPES))})")
                if len(key) < MIN_KEY_LENGTH:
                    raise ValueError(f"{where} entry {n} ({scope}): the key has {len(key)} characters; at least "
                                     f"{MIN_KEY_LENGTH} are needed (make one: python -c 'import secrets; print(secrets.token_urlsafe(32))')")
                if not key.isascii() or not key.isprintable():
                    raise ValueError(f"{where} entry {n} ({scope}): the key must be printable ASCII")
                entries.append((key.encode(), scope))
        return cls(tuple(entries))

    @classmethod
    def from_settings(cls, spec: str, file: str) -> ApiKeys:
        """Keys from the two settings; a missing or unreadable file is an error naming it."""
        text = ""
        if file:
            try:
                text = Path(file).read_text()
            except OSError as exc:
                raise ValueError(f"LIVERECO_API_KEYS_FILE={file!r}: cannot read it ({exc.strerror})") from None
        return cls.parse(spec, text)

    def check(self, authorization: str | None, x_api_key: str | None, scope: str) -> Decision:
        """Whether the request's key (``Authorization: Bearer``, else ``X-API-Key``) may act in ``scope``."""
        if not self.entries:
            return Decision(200)
        sent = _bearer(authorization) if authorization else (x_api_key or "")
        if not sent:
            return Decision(401, "an API key is required: send Authorization: Bearer <key> or X-API-Key")
        sent_bytes = sent.encode("utf-8", "replace")
        matched: str | None = None
        for key, key_scope in self.entries:  # every key compared, in constant time: no early exit
            if hmac.compare_digest(sent_bytes, key) and matched is None:
                matched = key_scope
        if matched is None:
            return Decision(401, "the API key is not valid")
        name = key_id(sent)
        if matched != "admin" and matched != scope:
            return Decision(403, f"this key has the {matched} scope; this operation needs {scope}", name, matched)
        return Decision(200, "", name, matched)


def _bearer(authorization: str) -> str:
    kind, _, value = authorization.strip().partition(" ")
    return value.strip() if kind.lower() == "bearer" else ""


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` serves this machine only.

    >>> is_loopback("127.0.0.1"), is_loopback("::1"), is_loopback("localhost"), is_loopback("0.0.0.0")
    (True, True, True, False)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def access_problem(settings: Any) -> str | None:
    """Why the server must not start with these settings (bad keys, or open on a public address), else ``None``."""
    try:
        keys = ApiKeys.from_settings(settings.api_keys, settings.api_keys_file)
    except ValueError as exc:
        return str(exc)
    if not keys.enabled and not is_loopback(settings.host) and not settings.insecure_open:
        return (f"no API keys (LIVERECO_API_KEYS, LIVERECO_API_KEYS_FILE) and LIVERECO_HOST={settings.host!r} is not"
                " loopback: anyone who can reach it could write events and read every profile. Set keys, bind"
                " 127.0.0.1, or accept this with LIVERECO_INSECURE_OPEN=1")
    return None


def access_summary(settings: Any) -> str:
    """One start-up line saying who may use the server (never a key)."""
    keys = ApiKeys.from_settings(settings.api_keys, settings.api_keys_file)
    if keys.enabled:
        counts = {scope: sum(1 for _, s in keys.entries if s == scope) for scope in SCOPES}
        return "API keys required: " + ", ".join(f"{n} {scope}" for scope, n in counts.items() if n)
    where = "loopback only" if is_loopback(settings.host) else "ALL ADDRESSES (LIVERECO_INSECURE_OPEN=1)"
    return f"no API keys: the server is open, on {where}"
