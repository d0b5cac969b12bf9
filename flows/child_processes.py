"""Child processes that cannot outlive livereco: parent-death signal, group stop, scrubbed output.

Every process ``livereco run`` or ``livereco redis`` starts (redis-server,
the flow, the server, the producer) runs in a session of its own, so a
Ctrl-C in the terminal reaches only livereco, which then stops them in order
(producer, server, flow, Redis) and waits for each. That covers SIGINT,
SIGTERM and SIGHUP. For the parent dying without a chance to clean up
(SIGKILL, the OOM killer, a crash), each child is started with
:func:`die_with_parent` as its ``preexec_fn``: on Linux it asks the kernel,
with ``prctl(PR_SET_PDEATHSIG, SIGTERM)``, to send the child SIGTERM when
its parent exits, so redis-server flushes its append-only file and stops,
and the flow and the server stop, within milliseconds of livereco's death.
(The kernel sends the signal when the *thread* that started the child ends:
start children from a thread that lives as long as they should.) Elsewhere
``die_with_parent`` does nothing and a SIGKILLed livereco can leave its
children running.

:func:`relay` copies a child's output line by line with secrets replaced,
for ``livereco run`` when ``REDIS_URL`` holds a password.

Examples
--------
>>> import subprocess, sys
>>> child = subprocess.Popen([sys.executable, "-c", "import os; print(os.getppid())"],
...                          stdout=subprocess.PIPE, preexec_fn=die_with_parent())
>>> int(child.communicate()[0]) == os.getpid()
True
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import IO

__all__ = ["die_with_parent", "ignoring_signals", "relay", "stop_in_order"]

_PR_SET_PDEATHSIG = 1


def _prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None
    return libc.prctl


_PRCTL = _prctl()  # looked up once here: a preexec_fn should do as little as possible between fork and exec


def die_with_parent(signum: int = signal.SIGTERM) -> Callable[[], None]:
    """A ``preexec_fn`` that has the kernel send the child ``signum`` when this process ends (Linux; else a no-op).

    If this process is already gone by the time the child asks, the child
    exits at once instead of running as an orphan.
    """
    parent = os.getpid()

    def preexec() -> None:
        if _PRCTL is None:
            return
        _PRCTL(_PR_SET_PDEATHSIG, signum, 0, 0, 0)
        if os.getppid() != parent:  # the parent died between fork and prctl
            os._exit(1)

    return preexec


@contextlib.contextmanager
def ignoring_signals(*signums: int) -> Iterator[None]:
    """Ignore ``signums`` during the block (a second Ctrl-C must not cut a shutdown short)."""
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in signums}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def stop_in_order(children: Sequence[subprocess.Popen[bytes]], timeout_s: float = 10.0) -> None:
    """SIGTERM each child's process group in turn and wait for it; SIGKILL a group that outstays ``timeout_s``."""
    for child in children:
        if child.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGTERM)
        try:
            child.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
            child.wait()
        # Whatever else the child started in its group (uvicorn's workers) goes with it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)


def relay(source: IO[bytes], sink: IO[str], clean: Callable[[str], str]) -> threading.Thread:
    """Copy ``source`` to ``sink`` line by line through ``clean``, in a daemon thread, until ``source`` closes."""

    def copy() -> None:
        with source:
            for line in iter(source.readline, b""):
                try:
                    sink.write(clean(line.decode(errors="replace")))
                    sink.flush()
                except (OSError, ValueError):  # our own output is gone: keep draining so the child never blocks
                    pass

    thread = threading.Thread(target=copy, name=f"relay-{getattr(source, 'name', '')}", daemon=True)
    thread.start()
    return thread
