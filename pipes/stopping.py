"""A pipe's stop request and its drain deadline, shared by every task of the runner.

A stop asks the reader to stop pulling; what was pulled keeps going until the
drain deadline. Waits that back off (retries, reconnects) sleep on the
injected clock and wake early when a stop arrives; while draining they keep
backing off (never spinning) but never past the deadline.
"""

from __future__ import annotations

import asyncio

from pipes.aio import first
from pipes.clock import Clock

__all__ = ["StopControl"]


class StopControl:
    def __init__(self, clock: Clock, drain_timeout_s: float) -> None:
        self.clock = clock
        self.drain_timeout_s = drain_timeout_s
        self.requested = asyncio.Event()
        self.deadline: float | None = None
        #: Stopped on purpose without a drain (``abandon``): unfinished work is expected.
        self.abandoned = False

    @property
    def is_set(self) -> bool:
        return self.requested.is_set()

    def request(self) -> bool:
        """Stop pulling; in-flight work drains until the deadline. False if already requested."""
        if self.requested.is_set():
            return False
        self.deadline = self.clock.monotonic() + self.drain_timeout_s
        self.requested.set()
        return True

    def abandon(self) -> None:
        """Stop now: the deadline is already past, in-flight work is left uncommitted."""
        self.deadline = self.clock.monotonic()
        self.abandoned = True
        self.requested.set()

    def past_deadline(self) -> bool:
        return self.deadline is not None and self.clock.monotonic() >= self.deadline

    def remaining(self) -> float:
        return max(0.0, (self.deadline or 0.0) - self.clock.monotonic())

    async def sleep_or_stop(self, seconds: float, draining: bool = False) -> bool:
        """Sleep on the clock; True when the pipe is stopping (past its drain deadline if ``draining``)."""
        if self.requested.is_set():
            if not draining or self.past_deadline():
                return True
            # Already draining: keep backing off (never spin), but not past the deadline.
            await self.clock.sleep(min(seconds, self.remaining()))
            return self.past_deadline()
        await first(self.clock.sleep(seconds), self.requested.wait())
        if self.requested.is_set():
            return not draining or self.past_deadline()
        return False
