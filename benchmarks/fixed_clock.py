"""Run a benchmark module with the synthetic shop's clock fixed, so two runs (or two trees) give the same events.

:func:`benchmarks.ingest.shop_events` stamps its events from ``time.time()``, so two captures of
:mod:`benchmarks.sink_replay` or :mod:`benchmarks.ranker_replay` differ in every timestamp and their digests
never match. Here the events are stamped as if generated at :data:`NOW` (an hour before it and on; the parse
step refuses events more than a day ahead of the wall clock, so it lies in the past), everything else runs
as usual. Run by path with ``PYTHONPATH`` set to the tree to measure (it imports only
``benchmarks.ingest.shop_events``, which every tree since the sink replay has)::

    PYTHONHASHSEED=0 PYTHONPATH=TREE python benchmarks/fixed_clock.py benchmarks.sink_replay capture /tmp/s.pkl
    PYTHONHASHSEED=0 PYTHONPATH=TREE python -m benchmarks.sink_replay replay /tmp/s.pkl --digest
    PYTHONHASHSEED=0 PYTHONPATH=TREE python benchmarks/fixed_clock.py benchmarks.ranker_replay capture /tmp/r.pkl
    PYTHONHASHSEED=0 PYTHONPATH=TREE python -m benchmarks.ranker_replay replay /tmp/r.pkl

Equal digests from two trees: the same bytes sent to Redis, the same rankings.
"""

from __future__ import annotations

import runpy
import sys
import time
from typing import Any

NOW = 1_796_000_000.0
"""The fixed wall clock the events are generated at (2026-11-29 UTC)."""


def _fixed_shop_events(real: Any) -> Any:
    def shop_events(n: int, seed: int = 7) -> Any:
        clock = time.time
        time.time = lambda: NOW
        try:
            return real(n, seed)
        finally:
            time.time = clock
    return shop_events


def main(argv: list[str]) -> None:
    import benchmarks.ingest as ingest

    ingest.shop_events = _fixed_shop_events(ingest.shop_events)  # type: ignore[method-assign]
    module, *rest = argv
    sys.argv = [module, *rest]
    runpy.run_module(module, run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])
