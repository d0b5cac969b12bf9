"""Run the server: livereco's own HTTP protocol on uvloop, one or more worker processes.

``LIVERECO_HTTP_SERVER=livereco`` (the default) serves with
:mod:`serving.http_protocol`: the listening socket is bound once, and each
worker process (forked) runs an event loop accepting on it. ``uvicorn`` runs
the previous server instead: uvicorn with its httptools protocol and
livereco's limits (:mod:`serving.protocol`), kept as a fallback and for
benchmarks side by side.

:class:`Server` runs the same protocol in a thread (for tests), with
``started`` and ``should_exit`` as uvicorn's ``Server`` has.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import time
from typing import Any

from online.contract import Settings
from online.contract.redis_url import redact_text
from serving.app import LiverecoApp
from serving.http_protocol import HttpProtocol, HttpServerState

__all__ = ["GC_THRESHOLD", "Server", "serve", "tune_gc"]

log = logging.getLogger("livereco.serving")

_BACKLOG = 2048
GC_THRESHOLD = 10_000
"""Allocations between two collections of the youngest generation (Python's default: 700)."""
_DRAIN_S = 5.0
"""Seconds a stopping server waits for the answers in progress."""


def serve(settings: Settings, workers: int = 1, log_level: str = "warning") -> int:
    """Serve until interrupted (SIGINT or SIGTERM); the exit code (3: the app could not start)."""
    if settings.http_server == "uvicorn":
        _serve_uvicorn(settings, workers, log_level)
        return 0
    sock = socket.create_server((settings.host, settings.port), backlog=_BACKLOG)
    sock.setblocking(False)
    if workers <= 1:
        return _run_worker(settings, sock)
    children: list[int] = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:  # a worker: serve, then leave without running the parent's clean-up
            code = 1
            try:
                code = _run_worker(settings, sock)
            finally:
                os._exit(code)
        children.append(pid)
    sock.close()
    return _supervise(children)


def _supervise(children: list[int]) -> int:
    """Wait for the workers; a signal to the parent goes to each of them."""

    def forward(signum: int, _frame: Any) -> None:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    code = 0
    for pid in children:
        _, status = os.waitpid(pid, 0)
        code = code or os.waitstatus_to_exitcode(status)
    return max(code, 0)


def _run_worker(settings: Settings, sock: socket.socket) -> int:
    """One worker process's event loop: start the app, serve on ``sock`` until a signal, stop. The exit code."""
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:  # pragma: no cover - uvloop is a dependency
        runner = asyncio.Runner()
    with runner:
        return runner.run(_worker(settings, sock))


async def _worker(settings: Settings, sock: socket.socket) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    app = LiverecoApp(settings)
    server = Server(app, settings, sock=sock)
    if not await server.start(stop):
        return 0 if stop.is_set() else 3  # stopped while waiting for Redis: asked to, not a failure
    tune_gc()
    await stop.wait()
    await server.stop()
    return 0


def tune_gc() -> None:
    """Fewer, shorter collections once the server runs (measured: p99 at saturation 60-77 ms -> 6-7 ms).

    Everything made during start-up (modules, the route table, the metrics) is moved out of the
    collector's reach (``gc.freeze``), and the youngest generation collects every
    :data:`GC_THRESHOLD` allocations instead of 700: a request allocates a few dozen containers, and
    full collections over the served-list cache were the latency's tail.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, 10, 10)


class Server:
    """The protocol's server over one app: start, serve, stop; or :meth:`run` in a thread until ``should_exit``."""

    def __init__(self, app: LiverecoApp, settings: Settings, host: str = "127.0.0.1", port: int = 0,
                 sock: socket.socket | None = None):
        self.app = app
        self.settings = settings
        self.address = (host, port)
        self.sock = sock
        self.state = HttpServerState(app.respond, settings, app.after_dispatch)
        self.started = False
        self.should_exit = False
        self._server: asyncio.AbstractServer | None = None

    async def start(self, stop: asyncio.Event | None = None) -> bool:
        """Start the app (waiting for Redis; a ``stop`` set meanwhile ends the wait) and listen. Whether it started."""
        startup = asyncio.ensure_future(self.app.startup())
        waits: set[asyncio.Future[Any]] = {startup}
        stopped = asyncio.ensure_future(stop.wait()) if stop is not None else None
        if stopped is not None:
            waits.add(stopped)
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        if stopped is not None:
            stopped.cancel()
        if not startup.done():
            startup.cancel()
            await asyncio.gather(startup, return_exceptions=True)
            await self.app.shutdown()
            return False
        if startup.exception() is not None:
            log.error("the server could not start: %s", redact_text(str(startup.exception()), self.settings.redis_url))
            await self.app.shutdown()
            return False
        loop = asyncio.get_running_loop()
        state = self.state

        def protocol() -> HttpProtocol:
            return HttpProtocol(state, loop)

        if self.sock is not None:
            self._server = await loop.create_server(protocol, sock=self.sock, backlog=_BACKLOG)
        else:
            host, port = self.address
            self._server = await loop.create_server(protocol, host, port, backlog=_BACKLOG, reuse_address=True)
        self.started = True
        return True

    async def stop(self) -> None:
        """Stop accepting, let the answers in progress finish (up to a few seconds), close, stop the app."""
        if self._server is not None:
            self._server.close()
        for connection in list(self.state.connections):
            connection.shutdown()
        deadline = time.monotonic() + _DRAIN_S
        while self.state.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for connection in list(self.state.connections):
            connection.close()
        await self.app.shutdown()

    def run(self) -> None:
        """Serve in this thread (its own event loop) until ``should_exit`` is set."""
        asyncio.run(self._run_until_exit())

    async def _run_until_exit(self) -> None:
        if not await self.start():
            return
        while not self.should_exit:
            await asyncio.sleep(0.05)
        await self.stop()


def _serve_uvicorn(settings: Settings, workers: int, log_level: str) -> None:
    import uvicorn

    uvicorn.run(
        "serving.app:app_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=workers,
        loop="uvloop",
        http="serving.protocol:LiverecoHttpProtocol",
        lifespan="on",
        access_log=False,
        log_level=log_level,
        timeout_keep_alive=settings.http_keepalive_s,  # type: ignore[arg-type]  # uvicorn takes any number
        limit_concurrency=None,  # LIVERECO_HTTP_MAX_CONNECTIONS is applied by the protocol, with a JSON 503
    )
