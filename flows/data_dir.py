"""The data directory of ``livereco run`` and ``livereco redis``: where state survives a restart.

Layout (``LIVERECO_DATA_DIR``, default ``.livereco`` in the working directory)::

    <data dir>/
      redis/          the embedded redis-server's append-only file (appendonly.aof) and its log
      redis.lock      held while a livereco runs the embedded Redis on redis/; names that process
      recovery/       the flow's Bytewax recovery store (flows/recovery.py)
      recovery.lock   held while a livereco run runs its flow on recovery/; names that process

Deleting the directory, with nothing running on it, starts from nothing.

Each part has its own lock, so ``livereco redis`` in one terminal and
``REDIS_URL=redis://127.0.0.1:6379/0 livereco run`` in another can share a
data directory (one holds ``redis``, the other ``recovery``), while a second
``livereco run`` on a directory in use is refused with a message naming the
first. A lock is an exclusive ``flock`` taken without waiting. The kernel
drops it when the last process holding it is gone, so a crash or SIGKILL
never leaves a stale lock behind; ``livereco run`` hands each lock's
descriptor to the redis-server or the flow it starts, so the part stays
locked until they, too, have exited.

Examples
--------
>>> import tempfile
>>> data = DataDir(Path(tempfile.mkdtemp()) / "data")
>>> data.redis.name, data.recovery.name
('redis', 'recovery')
>>> with data.lock("redis", "livereco doc"):
...     try:
...         DataDir(data.root).lock("redis", "livereco second").__enter__()
...     except DataDirInUse as exc:
...         print(str(exc).replace(str(data.root), "DIR"))  # doctest: +ELLIPSIS
...     with data.lock("recovery", "livereco doc") as fd:  # another part: not in use
...         fd >= 0
DIR/redis is in use by livereco doc (pid ...): stop it first, or give this one another data directory (--data-dir or LIVERECO_DATA_DIR)
True
>>> with data.lock("redis", "livereco again") as fd:  # free again once the first holder let go
...     fd >= 0
True
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

__all__ = ["PARTS", "DataDir", "DataDirInUse"]

PARTS = ("redis", "recovery")
"""The parts of a data directory, each a subdirectory with a lock file beside it."""


class DataDirInUse(RuntimeError):
    """Another livereco process holds the data directory (the message names it and says what to do)."""


class DataDir:
    """The paths inside one data directory, and its lock."""

    def __init__(self, root: Path | str):
        self.root = Path(root).expanduser().resolve()

    @property
    def redis(self) -> Path:
        """The embedded Redis's ``--dir``: its append-only file and ``redis.log``."""
        return self.root / "redis"

    @property
    def recovery(self) -> Path:
        """The flow's Bytewax recovery store."""
        return self.root / "recovery"

    @contextlib.contextmanager
    def lock(self, part: str, holder: str) -> Iterator[int]:
        """Hold the lock of ``part`` (``redis`` or ``recovery``) for the block; yields its descriptor.

        The descriptor is for child processes to inherit, so the part stays
        locked while they run. ``holder`` (e.g. ``"livereco run"``) is written
        into the lock file with this process's id, for the message a second
        process gets. Raises :class:`DataDirInUse` at once if another process
        holds the lock.
        """
        if part not in PARTS:
            raise ValueError(f"data directory part {part!r}: expected one of {', '.join(PARTS)}")
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / f"{part}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                who = os.pread(fd, 512, 0).decode(errors="replace").strip() or "another process"
                raise DataDirInUse(
                    f"{self.root / part} is in use by {who}: stop it first, or give this one another data directory"
                    " (--data-dir or LIVERECO_DATA_DIR)") from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{holder} (pid {os.getpid()})\n".encode(), 0)
            yield fd
        finally:
            os.close(fd)  # releases the lock unless a child process still holds the descriptor
