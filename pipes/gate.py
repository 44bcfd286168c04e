"""The in-flight gate: the one place backpressure lives.

The reader takes events from the source only while fewer than ``bound`` are in
flight (taken and not yet settled); the runner releases them as their batches
settle. A reader that finds the gate shut waits on it: never a sleep. While it
waits, ``shut`` is true, which tells the lanes that nothing more is coming
until they settle something, so they cut what they hold instead of waiting
for a batch window to fill.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["InFlightGate"]


class InFlightGate:
    def __init__(self, bound: int) -> None:
        self.bound = bound
        self.in_flight = 0
        #: The reader waits for space right now.
        self.shut = False
        self._space = asyncio.Event()
        self._space.set()

    @property
    def free(self) -> int:
        return self.bound - self.in_flight

    def take(self, count: int) -> None:
        self.in_flight += count
        if self.in_flight >= self.bound:
            self._space.clear()

    def release(self, count: int) -> None:
        self.in_flight -= count
        if self.in_flight < self.bound:
            self._space.set()

    async def wait(self, on_shut: Callable[[], None] | None = None) -> None:
        """Until there is space; ``shut`` meanwhile (``on_shut`` is called once it is)."""
        if self.in_flight < self.bound:
            return
        self.shut = True
        if on_shut is not None:
            on_shut()
        try:
            await self._space.wait()
        finally:
            self.shut = False
