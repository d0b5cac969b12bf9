"""The progress display of every long command (``livereco eval``, ``livereco replay``, the memory benchmarks).

On a terminal it redraws one line, at most a few times a second. Anywhere
else (a pipe, a CI log) it writes nothing, or, with ``log_every_s``, a plain
line that often, so ``--json`` output stays clean and logs stay readable.
:meth:`Progress.note` prints a line of its own above the display (a rejected
line, a measurement) without garbling it.

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

Without a total, the fraction done can come from elsewhere (bytes of a file read):

>>> import re
>>> log = io.StringIO()
>>> replay = Progress(None, "replay", unit="events written", stream=log, interactive=False, log_every_s=0.0)
>>> replay.update(1500, fraction=0.25)
>>> replay.note("a.csv:7: rejected: no user_id")
>>> replay.update(3000, fraction=0.5)
>>> replay.close()
>>> print(re.sub(r"[0-9,]+ events/s", "N events/s", log.getvalue()), end="")
replay: 1,500 events written (25%), N events/s
a.csv:7: rejected: no user_id
replay: 3,000 events written (50%), N events/s
replay: 3,000 events written (50%), N events/s
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TextIO, TypeVar

__all__ = ["Progress"]

T = TypeVar("T")

_CLEAR_LINE = "\r\x1b[K"


class Progress:
    """Counts work done (out of ``total``, if known) and shows ``label: done/total unit (pct), rate events/s``.

    ``interactive`` (default: whether ``stream`` is a terminal) redraws one line
    every ``every_s``; otherwise a line is written every ``log_every_s`` (``None``:
    never). ``enabled=False`` shows nothing at all, notes aside.
    """

    def __init__(self, total: int | None, label: str, *, unit: str = "events", stream: TextIO | None = None,
                 interactive: bool | None = None, every_s: float = 0.2, log_every_s: float | None = None,
                 enabled: bool = True):
        self.total = total
        self.label = label
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.interactive = enabled and (self.stream.isatty() if interactive is None else interactive)
        self.every_s = every_s if self.interactive else log_every_s
        self.done = 0
        self.fraction: float | None = None
        self.started = time.monotonic()
        self._shown_at = self.started  # the first line comes after one interval
        self._on_screen = False

    @property
    def visible(self) -> bool:
        """Whether anything is ever drawn (a terminal, or a log line every ``log_every_s``)."""
        return self.enabled and self.every_s is not None

    def advance(self, count: int = 1) -> None:
        """``count`` more done."""
        self.done += count
        if self.every_s is not None and self.enabled:  # the common case off a terminal: nothing more per event
            self.update(self.done)

    def update(self, done: int, fraction: float | None = None) -> None:
        """``done`` so far; ``fraction`` (0..1) of the whole when it is not ``done / total``."""
        self.done = done
        if fraction is not None:
            self.fraction = fraction
        if self.every_s is None or not self.enabled:
            return
        now = time.monotonic()
        finished = self.total is not None and done >= self.total
        if now - self._shown_at >= self.every_s or (finished and self.interactive):
            self._show(now)

    def track(self, items: Iterable[T]) -> Iterator[T]:
        """``items``, advancing once per item taken."""
        for item in items:
            yield item
            self.advance()

    def note(self, line: str) -> None:
        """Write ``line`` on a line of its own (on a terminal: over the display, redrawn at the next update)."""
        if self._on_screen:
            self.stream.write(_CLEAR_LINE)
            self._on_screen = False
        self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        """Shows the final count (when anything is shown) and ends a terminal's line."""
        if not self.visible:
            return
        self._show(time.monotonic())
        if self.interactive:
            self.stream.write("\n")
            self.stream.flush()
            self._on_screen = False

    def rate_text(self, now: float | None = None) -> str:
        """``12,345 events/s`` since the start."""
        elapsed = max((time.monotonic() if now is None else now) - self.started, 1e-9)
        return f"{self.done / elapsed:,.0f} events/s"

    def text(self, now: float | None = None) -> str:
        """The display: ``label: done[/total] unit[ (pct)], rate events/s``."""
        done = f"{self.done:,}/{self.total:,}" if self.total is not None else f"{self.done:,}"
        if self.fraction is not None:
            percent = f" ({min(self.fraction, 1.0):.0%})"
        elif self.total is not None:
            percent = f" ({100 * self.done // self.total if self.total else 100}%)"
        else:
            percent = ""
        return f"{self.label}: {done} {self.unit}{percent}, {self.rate_text(now)}"

    def _show(self, now: float) -> None:
        self._shown_at = now
        if self.interactive:
            self.stream.write(_CLEAR_LINE + self.text(now))
            self._on_screen = True
        else:
            self.stream.write(self.text(now) + "\n")
        self.stream.flush()
