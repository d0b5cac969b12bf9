"""pymalloc's own accounting of the heap: live bytes, free blocks in used pools, empty pools.

>>> pymalloc_stats().total >= 0
True
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from dataclasses import dataclass

__all__ = ["PymallocStats", "pymalloc_stats"]


@dataclass
class PymallocStats:
    allocated_blocks: int
    """Bytes in live small objects."""
    free_blocks: int
    """Bytes in free blocks of pools that hold live objects (reusable, not returned to the OS)."""
    empty_pools: int
    """Bytes in empty pools of arenas still held."""
    arenas: int
    arenas_highwater: int
    total: int
    """Bytes of arenas pymalloc holds (ARENA_SIZE each, 1 MiB on 3.11)."""


def pymalloc_stats() -> PymallocStats:
    """Parse ``sys._debugmallocstats()`` (it writes to the C stderr, so fd 2 is redirected around it).

    All zero while tracemalloc runs: its hooks hide pymalloc from the report.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as out:
        os.dup2(out.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        out.seek(0)
        text = out.read().decode(errors="replace")
    values: dict[str, int] = {}
    section = text[text.find("# arenas allocated total"):]
    for line in section.splitlines():
        if "=" not in line:
            continue
        name, _, value = line.rpartition("=")
        with contextlib.suppress(ValueError):
            values[name.strip().lstrip("# ")] = int(value.strip().replace(",", ""))
        if name.strip() == "Total":
            break  # the arena summary ends here (free lists follow)
    empty = next((v for k, v in values.items() if "unused pools" in k), 0)
    return PymallocStats(
        allocated_blocks=values.get("bytes in allocated blocks", 0),
        free_blocks=values.get("bytes in available blocks", 0),
        empty_pools=empty,
        arenas=values.get("arenas allocated current", 0),
        arenas_highwater=values.get("arenas highwater mark", 0),
        total=values.get("Total", 0),
    )
