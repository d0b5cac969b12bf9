"""A progress line for people watching a long run (``livereco eval``), silent for machines.

On a terminal it redraws one line, at most a few times a second; anywhere
else (a pipe, a CI log) it writes nothing, so ``--json`` output and logs stay
clean.

Examples
--------
>>> import io
>>> stream = io.StringIO()
>>> progress = Progress(1000, "livereco (streaming)", stream=stream, interactive=True, every_s=0.0)
>>> for _ in range(1000):
...     progress.advance()
>>> progress.close()
>>> "livereco (streaming): 1,000/1,000 events (100%)" in stream.getvalue()
True
>>> quiet = io.StringIO()
>>> Progress(10, "x", stream=quiet, interactive=False).advance(10)
>>> quiet.getvalue()
''
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TextIO, TypeVar

__all__ = ["Progress"]

T = TypeVar("T")


class Progress:
    """Counts work done out of ``total`` and redraws ``label: done/total events (pct), rate events/s``."""

    def __init__(self, total: int, label: str, *, stream: TextIO | None = None, interactive: bool | None = None,
                 every_s: float = 0.2):
        self.total = total
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.interactive = self.stream.isatty() if interactive is None else interactive
        self.every_s = every_s
        self.done = 0
        self.started = time.perf_counter()
        self._drawn_at = float("-inf")

    def advance(self, count: int = 1) -> None:
        self.done += count
        if self.interactive:
            now = time.perf_counter()
            if now - self._drawn_at >= self.every_s or self.done >= self.total:
                self._drawn_at = now
                self._draw(now)

    def track(self, items: Iterable[T]) -> Iterator[T]:
        """``items``, advancing once per item taken."""
        for item in items:
            yield item
            self.advance()

    def close(self) -> None:
        """Ends the line (a terminal's next output starts on a new one)."""
        if self.interactive:
            self._draw(time.perf_counter())
            self.stream.write("\n")
            self.stream.flush()

    def _draw(self, now: float) -> None:
        rate = self.done / max(now - self.started, 1e-9)
        percent = 100 * self.done // self.total if self.total else 100
        self.stream.write(f"\r{self.label}: {self.done:,}/{self.total:,} events ({percent}%), {rate:,.0f} events/s ")
        self.stream.flush()
