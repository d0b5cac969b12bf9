"""Waiting for a process's HTTP endpoint to answer, shared by ``livereco run``, tests and benchmarks.

Examples
--------
>>> wait_until_answering("http://127.0.0.1:1/readyz", [], timeout_s=0.3)
Traceback (most recent call last):
...
TimeoutError: http://127.0.0.1:1/readyz did not answer within 0.3 s
"""

from __future__ import annotations

import subprocess
import time
import urllib.request
from collections.abc import Sequence

__all__ = ["wait_until_answering"]


def wait_until_answering(url: str, processes: Sequence[subprocess.Popen[bytes]], timeout_s: float = 30.0) -> None:
    """Return once ``url`` answers 200; raise if one of ``processes`` exits first or time runs out."""
    deadline = time.monotonic() + timeout_s
    while True:
        for process in processes:
            if process.poll() is not None:
                raise RuntimeError(f"{process.args!r} exited with {process.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer within {timeout_s} s")
        time.sleep(0.1)
