"""The synthetic shop's producer and its CLI (``livereco produce``): paces the simulator to ``rate``
events/s and POSTs JSON arrays to ``{base_url}/v1/events`` over one keep-alive ``http.client``
connection, retrying (:class:`~online.contract.backoff.Backoff`) while the server is away.
"""

from __future__ import annotations

import argparse
import http.client
import math
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO
from urllib.parse import quote, urlsplit

import orjson

from flows.synthetic_shop.catalog import Catalog
from flows.synthetic_shop.shoppers import Listing, ShopSimulator
from online.contract import Settings
from online.contract.backoff import Backoff

__all__ = ["ProduceStats", "add_arguments", "default_url", "produce", "run"]


@dataclass
class ProduceStats:
    """What :func:`produce` did.

    ``errors`` maps each distinct rejection (its first ``HTTP status: body``;
    bodies differing only in numbers count as one) to the events it cost.
    """

    sent: int = 0  # events POSTed and answered (accepted or rejected)
    accepted: int = 0
    rejected: int = 0
    dropped: int = 0  # generated but never delivered (server gone, or stopped while retrying)
    batches: int = 0
    reconnects: int = 0  # connections opened after the first (errors, or a server that closes them)
    elapsed_s: float = 0.0
    interrupted: bool = False
    gave_up: str | None = None  # why the producer stopped waiting for the server
    lists_fetched: int = 0  # responding shop: lists GET and read by a shopper
    list_failures: int = 0  # responding shop: GETs that failed (that session browsed on its own)
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        """Events answered per second of the run."""
        return self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def ok(self) -> bool:
        return self.gave_up is None

    def summary(self) -> str:
        """One line for the end of a run.

        >>> ProduceStats(sent=1000, accepted=990, rejected=10, batches=20, elapsed_s=5.0).summary()
        'produced 1,000 events in 5.0 s (200.0/s): 990 accepted, 10 rejected, 0 dropped; 20 batches, 0 reconnects'
        """
        line = (
            f"produced {self.sent:,} events in {self.elapsed_s:.1f} s ({self.rate:.1f}/s): "
            f"{self.accepted:,} accepted, {self.rejected:,} rejected, {self.dropped:,} dropped; "
            f"{self.batches:,} batches, {self.reconnects:,} reconnects"
        )
        if self.lists_fetched or self.list_failures:
            line += f"; {self.lists_fetched:,} lists fetched, {self.list_failures:,} failed"
        if self.interrupted:
            line += " (interrupted)"
        if self.gave_up:
            line += f" (gave up: {self.gave_up})"
        return line


_WAITING = "waiting for the server at %(what)s ... (%(problem)s)"
_LOST = "lost the server at %(what)s (%(problem)s); retrying for up to %(wait_s)g s"
_ANSWERING = "the server at %(what)s is answering"


class _Say:
    """The producer's messages (``livereco produce: ...`` on its output) as the log of a :class:`Backoff`."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self.say = say

    def warning(self, msg: str, /, *args: Any) -> None:
        self.say(msg % args[0] if args else msg)

    def info(self, msg: str, /, *args: Any) -> None:
        self.say(msg % args[0] if args else msg)


class _Retry(Exception):
    """The server is unreachable or unavailable; try the batch again later."""


class _Poster:
    """POSTs bodies to ``{base_url}/v1/events`` over one keep-alive connection, reopened when needed."""

    def __init__(self, base_url: str, timeout: float = 10.0, path: str = "/v1/events") -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{base_url!r}: expected http://host:port")
        self.https = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.https else 80)
        self.base_path = parts.path.rstrip("/")
        self.path = self.base_path + path
        self.timeout = timeout
        self.conn: http.client.HTTPConnection | None = None
        self.used = False  # the open connection has answered before (a stale keep-alive may fail once)
        self.opened = 0

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def post(self, body: bytes) -> tuple[int, bytes]:
        return self.request("POST", self.path, body)

    def get(self, path: str) -> tuple[int, bytes]:
        """GET ``path`` (under the base URL's path) on the same kind of connection."""
        return self.request("GET", self.base_path + path, None)

    def request(self, method: str, path: str, body: bytes | None) -> tuple[int, bytes]:
        for attempt in (0, 1):
            if self.conn is None:
                cls = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
                self.conn = cls(self.host, self.port, timeout=self.timeout)
                self.used = False
                self.opened += 1
            reused = self.used
            try:
                self.conn.request(method, path, body=body,
                                  headers={"Content-Type": "application/json"} if body is not None else {})
                response = self.conn.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                if reused and attempt == 0:
                    continue  # the server closed an idle keep-alive connection: reopen once
                raise _Retry(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__) from exc
            self.used = True
            if response.will_close:
                self.close()
            return response.status, data
        raise AssertionError("unreachable")


class ListFetcher:
    """A responding shopper's list: ``GET {base_url}/v1/users/{user_id}/recommendations?n=N`` on its own keep-alive
    connection, read into ``(rec_id, item ids)``.

    A failed GET (unreachable, not 200, an answer without ``rec_id`` or items)
    costs that session its list, never its events: the shopper browses on
    their own, the failure is counted, and no list is fetched for the next
    second (a server that is away is not hammered).
    """

    def __init__(self, base_url: str, stats: ProduceStats, n: int = 10, timeout_s: float = 2.0) -> None:
        self.http = _Poster(base_url, timeout=timeout_s)
        self.stats = stats
        self.n = n
        self.paused_until = 0.0

    def __call__(self, user_id: str) -> Listing | None:
        now = time.monotonic()
        if now < self.paused_until:
            return None
        try:
            status, data = self.http.get(f"/v1/users/{quote(user_id, safe='')}/recommendations?n={self.n}")
            if status != 200:
                raise _Retry(_describe(status, data))
            body = orjson.loads(data)
            listing = str(body["rec_id"]), [str(item["item_id"]) for item in body["items"]]
        except (_Retry, orjson.JSONDecodeError, KeyError, TypeError):
            self.stats.list_failures += 1
            self.paused_until = now + 1.0
            return None
        self.stats.lists_fetched += 1
        return listing

    def close(self) -> None:
        self.http.close()


def catalog_items(catalog: Catalog) -> list[dict[str, Any]]:
    """The shop's items as catalog items (``PUT /v1/items``): category paths under ``sports/``, brand, price, and
    stock (one item in 40 out of stock, deterministically).

    >>> catalog_items(Catalog.generate(n_items=6, n_categories=2, seed=1))[0]["categories"][0].startswith("sports/")
    True
    """
    now = time.time()
    items = []
    for index in range(len(catalog)):
        item = catalog.item(index)
        items.append({"item_id": item.item_id, "title": f"{item.brand} {item.category} {index}",
                      "categories": [f"sports/{item.category}"], "brand": item.brand, "price": round(item.price, 2),
                      "in_stock": index % 40 != 39, "created_at": now})
    return items


def publish_catalog(url: str, catalog: Catalog, say: Callable[[str], None], wait_s: float = 60.0,
                    stop: Callable[[], bool] = lambda: False) -> bool:
    """POST the shop's catalog to ``{url}/v1/items`` (bulk), waiting up to ``wait_s`` for the server; ``True`` when done.

    Says something only when it could not."""
    poster = _Poster(url, path="/v1/items")
    body = orjson.dumps(catalog_items(catalog))
    deadline = time.monotonic() + wait_s
    try:
        while not stop():
            try:
                status, data = poster.post(body)
            except _Retry:
                status, data = 503, b""
            if status == 200:  # quiet when it worked, as the events are
                return True
            if status < 500 and status != 429:
                say(f"could not publish the catalog: {_describe(status, data)}")
                return False
            if time.monotonic() > deadline:
                say(f"could not publish the catalog: no answer from {url} within {wait_s:g} s")
                return False
            time.sleep(0.25)
        return False
    finally:
        poster.close()


_DIGITS = re.compile(r"\d+")


def _describe(status: int, data: bytes) -> str:
    text = data.decode("utf-8", "replace").strip() or http.client.responses.get(status, "")
    return f"HTTP {status}: {text[:500]}"


def produce(
    base_url: str,
    rate: float,
    *,
    seed: int = 7,
    n_users: int = 5000,
    n_items: int = 2000,
    duration_s: float | None = None,
    batch_size: int = 50,
    stop: threading.Event | None = None,
    max_events: int | None = None,
    wait_s: float = 60.0,
    linger_s: float = 0.5,
    run_id: str | None = None,
    log: TextIO | None = None,
    respond: bool = False,
    list_size: int = 10,
) -> ProduceStats:
    """Stream the synthetic shop to ``{base_url}/v1/events`` at ``rate`` events/s on average.

    Events are batched (at most ``batch_size`` per POST, sent when full or
    ``linger_s`` after the first one was due) and stamped with the wall
    clock. While the server is unreachable or answers 429/5xx the batch is
    retried, with a message on ``log`` (default stderr), for up to
    ``wait_s`` seconds (at most until the duration ends, but at least
    0.5 s); then the run gives up (``stats.gave_up``). A 4xx
    answer counts its events as rejected and prints the body once per
    distinct error. Ends after ``duration_s`` seconds, ``max_events``
    events, when ``stop`` is set, or on Ctrl-C; never raises for those.
    Falling more than a second behind (a slow server) drops the backlog
    instead of bursting to catch up.

    ``respond``: a shop that responds to its lists -- each session begins
    with the shopper fetching their list from the server (:class:`ListFetcher`,
    ``list_size`` items; one GET per session, about ``rate / 7`` a second) and
    maybe clicking an item of it by their hidden taste, sending its ``rec_id``
    back (:meth:`ShopSimulator.events`).
    """
    if rate <= 0:
        raise ValueError(f"rate={rate}: must be positive")
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size}: must be positive")
    out = sys.stderr if log is None else log
    poster = _Poster(base_url)
    url = base_url.rstrip("/")
    stats = ProduceStats()
    seen_errors: dict[str, str] = {}  # error kind -> its first message
    catalog = Catalog.generate(n_items=n_items, seed=seed)
    simulator = ShopSimulator(
        catalog, n_users=n_users, seed=seed, events_per_s=rate, run_id=run_id or uuid.uuid4().hex[:8]
    )
    fetcher = ListFetcher(base_url, stats, n=list_size) if respond else None
    stream = simulator.events(clock=time.time, fetch=fetcher)
    start = time.monotonic()
    end = math.inf if duration_s is None else start + duration_s

    def say(message: str) -> None:
        print(f"livereco produce: {message}", file=out, flush=True)

    def stopped() -> bool:
        return stop is not None and stop.is_set()

    def pause(seconds: float) -> None:
        if seconds <= 0:
            return
        if stop is not None:
            stop.wait(seconds)
        else:
            time.sleep(seconds)

    def record(batch: list[dict[str, Any]], status: int, data: bytes) -> None:
        n = len(batch)
        accepted = n if 200 <= status < 300 else 0
        try:
            body = orjson.loads(data) if data else None
        except orjson.JSONDecodeError:
            body = None
        if isinstance(body, dict):
            value = body.get("accepted")
            if isinstance(value, int) and not isinstance(value, bool):
                accepted = max(0, min(value, n))
        stats.sent += n
        stats.batches += 1
        stats.accepted += accepted
        if accepted < n:
            stats.rejected += n - accepted
            message = _describe(status, data)
            kind = _DIGITS.sub("#", message)  # events[3] and events[7] are the same error
            if kind not in seen_errors:
                seen_errors[kind] = message
                say(f"the server rejected {n - accepted} of {n} events: {message}"
                    " (errors like this one are counted, not printed again)")
            first = seen_errors[kind]
            stats.errors[first] = stats.errors.get(first, 0) + n - accepted

    def deliver(batch: list[dict[str, Any]]) -> bool:
        """POST one batch, retrying while the server is away; False when giving up or stopped."""
        backoff = Backoff(url, _Say(say), first_s=0.05, max_s=0.25, began=_WAITING if stats.batches == 0 else _LOST,
                          ended=_ANSWERING, fields={"wait_s": wait_s})
        deadline = math.inf
        while True:
            try:
                status, data = poster.post(orjson.dumps(batch))
                if status == 429 or status >= 500:
                    raise _Retry(_describe(status, data)[:200])
            except _Retry as exc:
                first = not backoff.failing
                delay = backoff.failed(exc)
                now = time.monotonic()
                if first:
                    deadline = min(backoff.since + wait_s, max(end, backoff.since + 0.5))
                elif now >= deadline:
                    stats.gave_up = f"no answer from {url} for {now - backoff.since:.1f} s ({exc})"
                    say(stats.gave_up)
                    return False
                pause(min(delay, max(deadline - now, 0.0)))
                if stopped():
                    return False
                stamp = round(time.time(), 3)
                for event in batch:  # they are being sent now
                    event["ts"] = stamp
                continue
            backoff.succeeded()
            record(batch, status, data)
            return True

    publish_catalog(url, catalog, say, wait_s=wait_s, stop=stopped)
    start = time.monotonic()  # the events' schedule starts once the catalog is published
    end = math.inf if duration_s is None else start + duration_s
    t0 = start
    n = 0
    pending: list[dict[str, Any]] = []
    first_due = 0.0
    try:
        try:
            while not stopped() and stats.gave_up is None:
                now = time.monotonic()
                done = now >= end or (max_events is not None and n >= max_events)
                due = t0 + n / rate
                if pending and (done or len(pending) >= batch_size or due - first_due >= linger_s):
                    if not deliver(pending):
                        stats.dropped += len(pending)
                    pending = []
                    continue
                if done:
                    break
                if due > now:
                    pause(min(due, end) - now)
                    continue
                if now - due > 1.0:  # behind: do not burst to catch up
                    t0 = now - n / rate
                    due = now
                if not pending:
                    first_due = due
                pending.append(next(stream))
                n += 1
            if pending and stats.gave_up is None:  # stopped: send what is due already
                if not deliver(pending):
                    stats.dropped += len(pending)
                pending = []
        finally:
            poster.close()
            if fetcher is not None:
                fetcher.close()
    except KeyboardInterrupt:
        stats.interrupted = True
    stats.dropped += len(pending)  # not delivered (interrupted while generating or sending them)
    stats.reconnects = max(poster.opened - 1, 0)
    stats.elapsed_s = time.monotonic() - start
    return stats


# --------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``livereco produce`` flags."""
    parser.add_argument("--url", default=None,
                        help="server base URL (default: http://LIVERECO_HOST:LIVERECO_PORT)")
    parser.add_argument("--rate", type=float, default=200.0, help="events per second, on average (default: 200)")
    parser.add_argument("--users", type=int, default=5000, help="simulated shoppers (default: 5000)")
    parser.add_argument("--items", type=int, default=2000, help="catalog items (default: 2000)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the catalog and the shoppers (default: 7)")
    parser.add_argument("--duration", type=float, default=None,
                        help="stop after this many seconds (default: run until Ctrl-C)")
    parser.add_argument("--batch-size", type=int, default=50, help="events per POST (default: 50)")
    parser.add_argument("--respond", action="store_true",
                        help="a shop that responds: each session begins by fetching the shopper's list, who may click "
                             "an item of it by their hidden taste, sending its rec_id back (one GET per session)")
    parser.add_argument("--wait", type=float, default=60.0,
                        help="seconds to wait for an unreachable server before giving up (default: 60)")


def default_url(settings: Settings) -> str:
    """The server URL from the settings; a wildcard bind address is reached on loopback.

    >>> default_url(Settings(host="0.0.0.0", port=8080))
    'http://127.0.0.1:8080'
    """
    host = settings.host
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.port}"


def run(args: argparse.Namespace, settings: Settings) -> int:
    """``livereco produce``: stream the synthetic shop until the duration ends or Ctrl-C; 1 if the server never answered."""
    url = args.url or default_url(settings)
    print(f"livereco produce: {args.rate:g} events/s to {url}/v1/events "
          f"({args.users} users, {args.items} items, seed {args.seed}"
          f"{', responding to their lists' if getattr(args, 'respond', False) else ''}); Ctrl-C stops", file=sys.stderr, flush=True)
    try:
        stats = produce(
            url,
            args.rate,
            seed=args.seed,
            n_users=args.users,
            n_items=args.items,
            duration_s=args.duration,
            batch_size=getattr(args, "batch_size", 50),
            wait_s=getattr(args, "wait", 60.0),
            respond=getattr(args, "respond", False),
        )
    except KeyboardInterrupt:  # between setup steps; produce itself catches it
        print("livereco produce: interrupted", file=sys.stderr)
        return 0
    print(f"livereco produce: {stats.summary()}", file=sys.stderr, flush=True)
    return 0 if stats.ok else 1
