"""A token bucket on the injected clock: the ``rate_limit`` of HTTP clients.

One bucket per connector instance, so every lane of a pipe draws from the
same one. A request that finds the bucket empty waits for its token (the
runner sees a slow write: backpressure, never a failure). Waiters are served
in arrival order (``asyncio.Lock`` is fair), so no lane starves.

Over any interval of length T at most ``burst + rate x T`` requests start.
"""

from __future__ import annotations

import asyncio

from pipes.clock import Clock

__all__ = ["TokenBucket"]


class TokenBucket:
    def __init__(self, rate: float, burst: int, clock: Clock) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.clock = clock
        self._tokens = float(burst)
        self._updated = clock.monotonic()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = self.clock.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    async def take(self) -> None:
        """Wait until a token is free and take it."""
        async with self._lock:
            self._refill()
            while self._tokens < 1.0:
                await self.clock.sleep((1.0 - self._tokens) / self.rate)
                self._refill()
            self._tokens -= 1.0
