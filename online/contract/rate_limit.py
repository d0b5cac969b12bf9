"""Rate limits per API key (and per client address on open read endpoints), in bounded memory.

The generic cell rate algorithm (GCRA, the leaky bucket as a meter): each
client has one number, the theoretical arrival time of its next request. A
request is allowed if it comes no earlier than that time minus the burst
allowance; the answer to a refused one says when to retry (``Retry-After``).
One float per client, no timers, O(1) per request.

State is per server process, bounded: at most ``max_clients`` clients are
tracked (the least recently seen is forgotten first, which can only let it
through sooner). With several server processes behind a load balancer each
allows the configured rate, so a client may get up to ``processes × rate``:
divide the setting by the process count for a shop-wide bound. (Keeping the
meter in Redis would cost a round trip per request for a bound that is rarely
needed exactly.)

>>> limiter = RateLimiter(rate=2.0, burst=3)
>>> [limiter.allow("k", now=100.0) for _ in range(4)]
[0.0, 0.0, 0.0, 0.5]
>>> limiter.allow("k", now=100.5), limiter.allow("other", now=100.5)
(0.0, 0.0)
"""

from __future__ import annotations

from collections import OrderedDict

__all__ = ["RateLimiter"]


class RateLimiter:
    """``rate`` requests a second per client, bursts of up to ``burst``; ``rate <= 0`` turns it off."""

    def __init__(self, rate: float, burst: int, max_clients: int = 100_000):
        if burst < 1:
            raise ValueError(f"rate limit burst {burst}: must be at least 1")
        self.rate = rate
        self.burst = burst
        self.max_clients = max_clients
        self._interval = 1.0 / rate if rate > 0 else 0.0
        self._tolerance = self._interval * (burst - 1)
        self._next: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._next)

    def allow(self, client: str, now: float) -> float:
        """0.0 if ``client`` may make a request at ``now`` (and counts it), else the seconds to wait."""
        if self._interval <= 0.0:
            return 0.0
        tat = self._next.get(client, now)
        if tat < now:
            tat = now
        wait = tat - self._tolerance - now
        if wait > 0.0:
            return wait
        self._next[client] = tat + self._interval
        self._next.move_to_end(client)
        if len(self._next) > self.max_clients:
            self._next.popitem(last=False)
        return 0.0
