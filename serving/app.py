"""The livereco HTTP server as one ASGI application.

Examples
--------
Served by ``livereco serve`` on livereco's own HTTP protocol, which calls
:meth:`LiverecoApp.respond` directly (:mod:`serving.http_protocol`), or on
uvicorn as an ASGI app (``LIVERECO_HTTP_SERVER=uvicorn``); in a test, call it
with any ASGI client. The routes are :data:`serving.routes.ROUTES`, each answered by the
method its ``handler`` names, with the Structs of :mod:`serving.api`; every
error is one JSON shape naming its problem.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgspec
import orjson
from prometheus_client import generate_latest

from online.contract import Settings
from online.contract.api_keys import ApiKeys, is_loopback
from online.contract.backoff import Backoff
from online.contract.rate_limit import RateLimiter
from online.contract.redis_url import redact, redact_text
from serving.api import Accepted, ErasedUser, Erasure, MergeRequest, MergeResult, Profile, RecentItem, Status
from serving.backlog import StreamBacklog, StreamStatus, flow_status
from serving.catalog_routes import CatalogHandlers
from serving.catalog_state import ServingCatalog
from serving.console_routes import ConsoleHandlers
from serving.experiment_routes import ExperimentHandlers
from serving.experiment_state import ServingExperiments
from serving.http import HTTPError, Receive, Scope, Send, json_response, read_body, require_json, split_path
from serving.impressions import ImpressionRecorder
from serving.ingest import append_events, parse_batch
from serving.list_routes import ListHandlers
from serving.lists import read_profile
from serving.metrics import NOT_FOUND_ROUTE, ServedCacheCollector, ServingMetrics, field_label, method_label
from serving.openapi import openapi_document
from serving.ranker_weights import RankerWeights
from serving.redis_connect import REDIS_EXCEPTIONS, AsyncRedisClient, connect_async, ping
from serving.redis_reads import FastReads, fast_reads_for
from serving.router import Router
from serving.routes import ROUTES
from serving.served_cache import ServedCache
from serving.shop_routes import ShopHandlers
from serving.user_admin import erase_user, merge_users

__all__ = ["LiverecoApp", "app_from_env", "wait_for_redis"]

log = logging.getLogger("livereco.serving")



@dataclass(frozen=True, slots=True)
class Request:
    """What a handler gets: the ASGI scope and receive (for a body), and its decoded params Struct."""

    scope: Scope
    receive: Receive
    params: Any


Handler = Callable[[Request], Awaitable[Any]]
"""A route's handler: answers its response Struct (``bytes`` for a body that is not JSON) or raises HTTPError."""


_WAITING = "waiting up to %(timeout_s).0f s for Redis at %(what)s (%(problem)s)"
_ANSWERS = "Redis at %(what)s answers after %(outage_s).1f s (%(failures)d failed attempts)"


async def wait_for_redis(client: AsyncRedisClient, url: str, timeout_s: float) -> None:
    """Ping until Redis answers; after ``timeout_s`` raise naming the URL (its password redacted).

    Logged when the wait begins and when it ends (:class:`~online.contract.backoff.Backoff`), not at every retry.
    """
    shown = redact(url)
    deadline = time.monotonic() + timeout_s
    backoff = Backoff(shown, log, first_s=0.05, max_s=1.0, began=_WAITING, ended=_ANSWERS,
                      fields={"timeout_s": timeout_s})
    while True:
        try:
            await ping(client)
        except REDIS_EXCEPTIONS as exc:
            reason = redact_text(str(exc), url)
            delay = backoff.failed(reason)
            if time.monotonic() + delay > deadline:
                raise RuntimeError(f"Redis at {shown} did not answer within {timeout_s:.0f} s: {reason}") from None
            await asyncio.sleep(delay)
        else:
            backoff.succeeded()
            return


async def check_layout(client: AsyncRedisClient, settings: Settings) -> None:
    """Refuse to run against streams partitioned differently (users would land in unread partitions)."""
    meta = settings.keys.meta()
    await client.hsetnx(meta, "partitions", settings.partitions)
    stored = await client.hget(meta, "partitions")
    if stored is not None and int(stored) != settings.partitions:
        raise RuntimeError(
            f"LIVERECO_PARTITIONS={settings.partitions} but namespace {settings.namespace!r} was created with "
            f"{int(stored)} partitions; use {int(stored)} or another LIVERECO_NAMESPACE"
        )


class LiverecoApp(ListHandlers, CatalogHandlers, ShopHandlers, ConsoleHandlers, ExperimentHandlers):
    """Routes requests by the route table to its handlers, times them, and turns errors into JSON answers.

    The handlers of the list routes, the catalog and rules routes, and the rank and user routes are in
    :mod:`serving.list_routes`, :mod:`serving.catalog_routes` and :mod:`serving.shop_routes`.
    """

    def __init__(self, settings: Settings, client: AsyncRedisClient | None = None,
                 metrics: ServingMetrics | None = None, redis_wait_s: float = 30.0):
        self.settings = settings
        self.keys = settings.keys
        self.metrics = metrics or ServingMetrics(partitions=settings.partitions)
        self.backlog = StreamBacklog(settings)
        self.redis_wait_s = redis_wait_s
        self.ranker_weights = RankerWeights(settings.ranker_shards, context=settings.context_items > 0)
        self.catalog = ServingCatalog(settings.keys)
        """The in-process catalog copy and rules, refreshed every ~250 ms by a task started with the server."""
        self._catalog_task: asyncio.Task[None] | None = None
        self._client = client
        # The hot path's reads: one multiplexed connection (serving.redis_reads) where the URL allows,
        # else the client. An injected client serves everything.
        self._fast: FastReads | None = None if client is not None else fast_reads_for(
            settings.redis_url, connect_timeout_s=1.0, timeout_s=2.0)
        self.experiments = ServingExperiments(settings.keys)
        """The experiments in force, refreshed every 250 ms by a task started with the server."""
        self._experiments_task: asyncio.Task[None] | None = None
        self._weights_task: asyncio.Task[None] | None = None
        """Re-reads the ranker weights every second (:meth:`serving.ranker_weights.RankerWeights.run`)."""
        self.impressions = ImpressionRecorder(settings.keys, self._fast, lambda: self.client, self.metrics.registry,
                                                enabled=settings.impressions == 1)
        self._openapi = orjson.dumps(openapi_document(settings))
        self.router = Router(ROUTES)
        missing = [route.handler for route in ROUTES if not callable(getattr(self, route.handler, None))]
        if missing:
            raise TypeError(f"routes without a handler method on {type(self).__name__}: {', '.join(missing)}")
        self._handlers: dict[str, Handler] = {route.handler: getattr(self, route.handler) for route in ROUTES}
        self._encode = msgspec.json.Encoder().encode
        self.api_keys = ApiKeys.from_settings(settings.api_keys, settings.api_keys_file)
        self.limiter = RateLimiter(settings.rate_limit, settings.rate_burst)
        self._open_publicly = not self.api_keys.enabled and not is_loopback(settings.host)
        self._metric_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self.served_cache = ServedCache(settings.served_cache_lists)
        self.metrics.registry.register(ServedCacheCollector(self.served_cache))
        """Answers of the list routes, reused while their inputs are unchanged (:mod:`serving.served_cache`)."""

    @property
    def client(self) -> AsyncRedisClient:
        if self._client is None:
            self._client = connect_async(self.settings.redis_url, socket_connect_timeout=1.0, socket_timeout=2.0)
        return self._client

    @property
    def reads(self) -> AsyncRedisClient | FastReads:
        """What list, trending and profile reads go through."""
        return self._fast if self._fast is not None else self.client

    # --- ASGI ----------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        status, body, content_type, headers = await self.respond(scope, receive)
        await json_response(send, status, body, content_type, headers)

    async def respond(self, scope: Scope, receive: Receive) -> tuple[int, bytes, bytes, list[tuple[bytes, bytes]] | None]:
        """One request's answer: status, body, content type and extra headers (timed and counted).

        The ASGI entry point sends it as two messages; livereco's own protocol
        (:mod:`serving.http_protocol`) calls this directly and writes it at once.
        """
        started = time.perf_counter()
        method = scope["method"]
        label = NOT_FOUND_ROUTE
        content_type = b"application/json"
        headers: list[tuple[bytes, bytes]] | None = None
        try:
            segments = split_path(scope.get("raw_path") or scope["path"].encode())
            template = self.router.template(segments)
            if template is not None:
                label = template.path
            route, params = self.router.resolve(template, method, segments, scope.get("query_string", b""))
            if route.scope is not None:
                self._admit(scope, route.scope)
            answer = await self._handlers[route.handler](Request(scope, receive, params))
            status = route.status
            if isinstance(answer, bytes):
                body, content_type = answer, route.media_type.encode()
            else:
                body = self._encode(answer)
        except HTTPError as exc:
            status, body, headers = exc.status, exc.body(), exc.headers()
        except REDIS_EXCEPTIONS as exc:
            self.metrics.redis_errors.inc()
            self.metrics.up.set(0)
            error = HTTPError(503, "redis_unavailable", f"Redis is unreachable ({type(exc).__name__}); retry shortly",
                              retry_after_s=1)
            status, body, headers = 503, error.body(), error.headers()
        except UnicodeDecodeError:
            status, body = 400, HTTPError(400, "bad_request", "path: not valid UTF-8 after percent-decoding",
                                          field="path").body()
        except Exception:  # a bug: still one JSON error shape, and the connection is not trusted further
            log.exception("unexpected error answering %s %s", method, label)
            error = HTTPError(500, "internal_error", "the server failed to answer; this is a bug", close=True)
            status, body, headers = 500, error.body(), error.headers()
        self._count(label, method, status, time.perf_counter() - started)
        return status, body, content_type, headers

    def after_dispatch(self) -> None:
        """Called by livereco's HTTP protocol once it has scheduled a request's answering: the hot path's Redis reads
        of the requests scheduled so far leave in one write in the loop turn they run, not the turn after
        (:meth:`serving.redis_reads.FastReads.flush_after_ready`)."""
        if self._fast is not None:
            self._fast.flush_after_ready()

    def _count(self, label: str, method: str, status: int, seconds: float) -> None:
        """Observe one request in the duration histogram and the request counter (their children cached)."""
        key = (label, method, status)
        children = self._metric_children.get(key)
        if children is None:
            method_name = method_label(label, method)
            children = (self.metrics.duration.labels(label, method_name),
                        self.metrics.requests.labels(label, method_name, str(status)))
            if len(self._metric_children) < 4096:  # label sets are bounded (method_label); the cache too
                self._metric_children[key] = children
        children[0].observe(seconds)
        children[1].inc()

    def _admit(self, scope: Scope, needed: str) -> None:
        """Check the request's API key against ``needed`` and its client's rate; raise the 401/403/429 answer."""
        authorization = x_api_key = None
        if self.api_keys.enabled:
            for name, value in scope["headers"]:
                if name == b"authorization":
                    authorization = value.decode("latin-1")
                elif name == b"x-api-key":
                    x_api_key = value.decode("latin-1")
            decision = self.api_keys.check(authorization, x_api_key, needed)
            if decision.status != 200:
                self.metrics.auth_failures.labels(str(decision.status)).inc()
                code = "unauthorized" if decision.status == 401 else "forbidden"
                raise HTTPError(decision.status, code, decision.message)
            client = f"key:{decision.key}"
        elif self._open_publicly:
            client = f"address:{(scope.get('client') or ('?',))[0]}"
        else:  # open on loopback: every client is this machine, one address; nothing to tell apart
            return
        wait = self.limiter.allow(client, time.monotonic())
        if wait > 0.0:
            self.metrics.rate_limited.inc()
            raise HTTPError(429, "rate_limited", f"more than {self.settings.rate_limit:g} requests a second from this"
                            f" {'key' if self.api_keys.enabled else 'client address'}; retry after Retry-After",
                            retry_after_s=max(1, math.ceil(wait)))

    async def startup(self) -> None:
        """Wait for Redis, check the layout, load the catalog, experiments and ranker weights and start refreshing them."""
        await wait_for_redis(self.client, self.settings.redis_url, self.redis_wait_s)
        await check_layout(self.client, self.settings)
        await self.catalog.refresh(self.client)  # never serve a first request unfiltered
        self._catalog_task = asyncio.ensure_future(self.catalog.run(self.client))
        await self.experiments.refresh(self.client)
        self._experiments_task = asyncio.ensure_future(self.experiments.run(self.client))
        await self.ranker_weights.refresh(self.client, self.keys)
        self._weights_task = asyncio.ensure_future(self.ranker_weights.run(self.client, self.keys))
        self.metrics.up.set(1)

    async def shutdown(self) -> None:
        """Stop the refresh tasks and close the Redis connections."""
        for task in (self._catalog_task, self._experiments_task, self._weights_task):
            if task is not None:
                task.cancel()
        if self._client is not None:
            await self._client.aclose()
        if self._fast is not None:
            await self._fast.aclose()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:  # uvicorn prints the message: never the password
                    await send({"type": "lifespan.startup.failed",
                                "message": redact_text(str(exc), self.settings.redis_url)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # --- handlers: one per route of serving.routes.ROUTES, named by its handler field ---------------------
    async def profile(self, request: Request) -> Profile:
        user_id = request.params.user_id
        profile = await read_profile(self.reads, self.keys, user_id)
        if profile is None:
            raise HTTPError(404, "unknown_user", f"user_id: no profile for {user_id[:64]!r}", field="user_id")
        return Profile(user_id=user_id, session_id=profile.session_id,
                       recent=[RecentItem(item, weight, ts) for item, weight, ts in profile.recent],
                       session_embedding=list(profile.session_embedding), affinities=list(profile.affinities))

    async def ingest(self, request: Request) -> Accepted:
        try:
            require_json(request.scope)
            body = await read_body(request.scope, request.receive, self.settings.max_body_bytes,
                                   self.settings.http_request_timeout_s)
            events = parse_batch(body, self.settings)
        except HTTPError as exc:
            if exc.status == 422:
                for error in exc.extra.get("errors", ()):
                    self.metrics.events_rejected.labels(field_label(error.field)).inc()
            else:
                self.metrics.events_rejected.labels(field_label(exc.field)).inc()
            raise
        try:
            ids = await append_events(self.client, self.settings, events, self.backlog)
        except HTTPError as exc:
            if exc.code == "backlog_full":
                self.metrics.backlog_refusals.labels(str(self.keys.streams().index(exc.extra["stream"]))).inc()
            raise
        self.metrics.up.set(1)
        self.metrics.events_accepted.inc(len(ids))
        return Accepted(accepted=len(ids), ids=ids)

    async def erase_user(self, request: Request) -> ErasedUser:
        user_id = request.params.user_id
        erased = await erase_user(self.client, self.keys, user_id, (self.keys.user_attributes(user_id),))
        return ErasedUser(user_id=user_id, erased=Erasure(**erased))

    async def merge_user(self, request: Request) -> MergeResult:
        require_json(request.scope)
        body = await read_body(request.scope, request.receive, self.settings.max_body_bytes,
                               self.settings.http_request_timeout_s)
        try:
            merge = msgspec.json.decode(body, type=MergeRequest)
        except msgspec.ValidationError as exc:
            raise HTTPError(422, "invalid_merge", str(exc).replace("$.", ""), field="from") from None
        except msgspec.DecodeError as exc:
            raise HTTPError(400, "bad_json", f"body: not valid JSON ({exc})", field="body") from None
        user_id = request.params.user_id
        if merge.from_user == user_id:
            raise HTTPError(409, "merge_conflict", "from: a user cannot be merged into itself", field="from")
        done = await merge_users(self.client, self.keys, user_id, merge.from_user,
                                 (self.keys.user_attributes(merge.from_user),))
        return MergeResult(user_id=user_id, merged_from=merge.from_user, items=done["items"],
                           exclusions=done["exclusions"], flow_caught_up=done["flow_caught_up"],
                           erased=Erasure(**done["erased"]))

    async def healthz(self, request: Request) -> Status:
        return _OK

    async def _flow_status(self) -> list[StreamStatus]:
        statuses = await flow_status(self.client, self.settings)
        for partition, status in enumerate(statuses):
            label = str(partition)
            self.metrics.stream_entries.labels(label).set(status.entries)
            self.metrics.unread_age.labels(label).set(status.oldest_unread_age_s or 0.0)
            age = status.heartbeat_age_s
            self.metrics.heartbeat_age.labels(label).set(float("inf") if age is None else age)
            self.metrics.flow_stalled.labels(label).set(1 if status.stalled else 0)
        return statuses

    async def readyz(self, request: Request) -> Status:
        await ping(self.client)
        self.metrics.up.set(1)
        stalled = [status for status in await self._flow_status() if status.stalled]
        if stalled:
            first = stalled[0]
            heartbeat = "no progress from the flow at all" if first.heartbeat_age_s is None else \
                f"the flow's last heartbeat is {first.heartbeat_age_s:.1f} s old"
            raise HTTPError(
                503, "flow_stalled",
                f"{first.stream}: events accepted but not processed: the oldest unread one is"
                f" {first.oldest_unread_age_s:.1f} s old and {heartbeat} (LIVERECO_FLOW_STALE_S"
                f" = {self.settings.flow_stale_s:g})", retry_after_s=5, streams=[st.as_struct() for st in stalled])
        return _READY

    async def prometheus(self, request: Request) -> bytes:
        try:
            await self._flow_status()  # the flow's health, as of this scrape
        except REDIS_EXCEPTIONS:
            self.metrics.redis_errors.inc()
            self.metrics.up.set(0)  # the rest of the metrics are still worth scraping
        return generate_latest(self.metrics.registry)

    async def openapi(self, request: Request) -> bytes:
        return self._openapi


_OK, _READY = Status("ok"), Status("ready")


def app_from_env() -> LiverecoApp:
    """The application configured from environment variables (uvicorn factory)."""
    return LiverecoApp(Settings.from_env())
