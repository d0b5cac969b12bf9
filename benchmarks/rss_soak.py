"""The flow RSS soak: the real dataflow over a long synthetic stream, this process's RSS sampled as it goes.

The dataflow (default stages, one worker) reads ``events`` entries of
:func:`~benchmarks.memory_workload.soak_entries` (users come round in a cycle,
items are Zipf-popular) from a lazy generator and writes into a sink that
discards them; :func:`soak_in_child` runs it in a fresh process, so its RSS is
the flow's alone.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from bytewax.testing import TestingSource, run_main

from benchmarks.child_process import run_in_child
from benchmarks.memory_probes import DiscardSink, rss_kib
from benchmarks.memory_workload import soak_entries, users_seen_after
from flows.dataflow import build_flow
from flows.progress import Progress
from flows.redis_source import StreamEntry
from online.contract import Settings

__all__ = ["RssSample", "SoakResult", "print_soak", "soak", "soak_in_child"]


@dataclass
class RssSample:
    events: int
    users_seen: int
    rss_mib: float
    seconds: float


@dataclass
class SoakResult:
    events: int
    users: int
    items: int
    baseline_mib: float
    """RSS with everything imported and the flow built, before the first event."""
    samples: list[RssSample]
    seconds: float
    writes: dict[str, int] = field(default_factory=dict)

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    @property
    def final_mib(self) -> float:
        return self.samples[-1].rss_mib if self.samples else self.baseline_mib

    def growth_last_half(self) -> tuple[float, float]:
        """RSS growth (MiB, %) from the sample nearest half-way to the last sample."""
        if len(self.samples) < 2:
            return 0.0, 0.0
        mid = min(self.samples, key=lambda s: abs(s.events - self.samples[-1].events / 2))
        grown = self.final_mib - mid.rss_mib
        return grown, 100.0 * grown / mid.rss_mib

    def per_user_bytes(self) -> float:
        """(final RSS − baseline) / users: the flow's memory per user once every user has been seen."""
        return (self.final_mib - self.baseline_mib) * 2**20 / self.users


def soak(settings: Settings, events: int, users: int, items: int, sample_every: int = 100_000, seed: int = 7,
         progress: bool = False) -> SoakResult:
    """Run the real dataflow over lazily generated events and sample this process's RSS every ``sample_every``."""
    samples: list[RssSample] = []
    started = time.perf_counter()
    # on a terminal, a redrawn count of events between the sample lines; elsewhere only the sample lines
    bar = Progress(events, "soak", enabled=progress)

    def sample(n: int) -> None:
        seen = users_seen_after(n, users)
        samples.append(RssSample(n, seen, rss_kib() / 1024, time.perf_counter() - started))
        if progress:
            s = samples[-1]
            bar.note(f"  soak: {n:>10,} events, {seen:>8,} users seen, RSS {s.rss_mib:8.1f} MiB, {s.seconds:7.1f} s")

    def on_event(n: int) -> None:
        bar.advance()
        if n and n % sample_every == 0:
            sample(n)

    def entries() -> Iterator[StreamEntry]:
        yield from soak_entries(events, users, items, seed=seed, on_event=on_event)
        sample(events)  # the generator is drained: every batch but the last has been processed

    sink = DiscardSink()
    flow = build_flow(settings, source=TestingSource(entries(), batch_size=settings.read_count), sink=sink,
                      flow_id="livereco-memory")
    baseline = rss_kib() / 1024
    started = time.perf_counter()
    run_main(flow)
    seconds = time.perf_counter() - started
    bar.close()
    return SoakResult(events, users, items, baseline, samples, seconds, dict(sink.counts))


def _soak_as_dict(settings: Settings, events: int, users: int, items: int, sample_every: int,
                  seed: int) -> dict[str, Any]:
    return asdict(soak(settings, events, users, items, sample_every, seed, progress=True))


def soak_in_child(settings: Settings, events: int, users: int, items: int, sample_every: int,
                  seed: int = 7) -> SoakResult:
    """:func:`soak` in a fresh (spawned) process, so nothing else this benchmark did is in its RSS."""
    raw = run_in_child(_soak_as_dict, settings, events, users, items, sample_every, seed, what="soak")
    raw["samples"] = [RssSample(**s) for s in raw["samples"]]
    return SoakResult(**raw)


def print_soak(result: SoakResult, sample_every: int) -> None:
    grown, pct = result.growth_last_half()
    print(f"\nFlow RSS soak: {result.events:,} events, {result.users:,} users, {result.items:,} items, "
          f"1 worker, discarding sink ({result.events_per_s:,.0f} events/s, {result.seconds:,.0f} s)")
    print(f"  {'events':>12}{'users seen':>12}{'events/user':>13}{'RSS MiB':>10}{'B/event since last':>20}"
          f"{'seconds':>9}")
    print(f"  {'(before)':>12}{0:>12,}{0:>13}{result.baseline_mib:>10.1f}{'':>20}{0:>9}")
    previous = RssSample(0, 0, result.baseline_mib, 0.0)
    for s in result.samples:
        per_event = (s.rss_mib - previous.rss_mib) * 2**20 / max(1, s.events - previous.events)
        print(f"  {s.events:>12,}{s.users_seen:>12,}{s.events / result.users:>13.1f}{s.rss_mib:>10.1f}"
              f"{per_event:>20,.0f}{s.seconds:>9.0f}")
        previous = s
    print(f"  growth over the last half: {grown:+.1f} MiB ({pct:+.1f} %); "
          f"flow state per user: {result.per_user_bytes():,.0f} B ((final − before) / users)")
    print(f"  writes: {', '.join(f'{k} {v:,}' for k, v in sorted(result.writes.items()))}")
    print(f"  sampled every {sample_every:,} events")
