"""One partition's lane: its queue, cut into batches, worked in order by one task.

A lane takes a batch through the stages while the previous batch is still
being written (``BatchProcessor.prepare`` overlaps ``finish``), but starts a
write only after the previous write finished, retries included: output order
within a partition is the input order for any target, and the checkpoint only
moves over batches that settled, in order (``SettledTracker``).

Batches are cut by ``batch.size`` or ``batch.window``, whichever comes first;
the window counts from when the oldest queued event was taken from the
source. A lane never waits for a window while the reader is held by the
in-flight bound: nothing more can come until something settles.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable

from pipes.aio import first
from pipes.checkpoints import Batch
from pipes.clock import Clock
from pipes.events import Event
from pipes.gate import InFlightGate
from pipes.processing import BatchProcessor
from pipes.stopping import StopControl

__all__ = ["Lane"]


class Lane:
    """The queue of one partition and the task that works it."""

    def __init__(
        self,
        partition: str,
        *,
        size: int,
        window_s: float,
        clock: Clock,
        gate: InFlightGate,
        processor: BatchProcessor,
        reader_done: asyncio.Event,
        stop: StopControl,
        resume: Callable[[str], None],
    ) -> None:
        self.partition = partition
        self.size = size
        self.window_s = window_s
        self.clock = clock
        self.gate = gate
        self.processor = processor
        self.reader_done = reader_done
        self.stop = stop
        self._resume = resume
        # A list with a moving head: cutting a batch is one slice, not a pop per event.
        self._queue: list[Event] = []
        self._head = 0
        # [monotonic, wall, count] per accepted run of events, oldest first.
        self._arrivals: deque[list[float]] = deque()
        self.grew = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        #: The source was asked to stop fetching this partition (a retry holds it up).
        self.paused = False

    def __len__(self) -> int:
        return len(self._queue) - self._head

    def add(self, events: Iterable[Event], monotonic: float, wall: float) -> int:
        """Queue a run of this partition's events taken from the source now; how many."""
        queue = self._queue
        before = len(queue)
        queue.extend(events)
        count = len(queue) - before
        arrivals = self._arrivals
        if arrivals and arrivals[-1][0] == monotonic:
            arrivals[-1][2] += count
        else:
            arrivals.append([monotonic, wall, count])
        self.grew.set()
        return count

    def drop_queued(self) -> int:
        """Forget what was queued and not cut (a revoke, a shutdown); how many events."""
        count = len(self)
        self._queue = []
        self._head = 0
        self._arrivals.clear()
        return count

    async def run(self) -> None:
        finishing: asyncio.Future[bool] | None = None
        processor = self.processor
        try:
            while True:
                batch = await self._cut()
                if batch is None:
                    break
                processor.tracker.open(batch)
                prepared = await processor.prepare(batch)
                if finishing is not None:
                    previous, finishing = finishing, None
                    if not await previous:
                        # Abandoned unsettled: later events of this partition must not be
                        # delivered ahead of it; the next run starts from the checkpoint.
                        return
                    self._maybe_resume()
                finishing = asyncio.ensure_future(processor.finish(prepared))
            if finishing is not None:
                previous, finishing = finishing, None
                await previous
        finally:
            if finishing is not None and not finishing.done():
                finishing.cancel()
                await asyncio.gather(finishing, return_exceptions=True)

    def _maybe_resume(self) -> None:
        if self.paused and len(self) <= self.size:
            self.paused = False
            self._resume(self.partition)

    async def _cut(self) -> Batch | None:
        """The next batch, by size or window; None when the reader is done and nothing is left."""
        clock = self.clock
        while not len(self):
            self.grew.clear()
            if self.reader_done.is_set():
                return None
            await first(self.grew.wait(), self.reader_done.wait())
        size = self.size
        if len(self) < size and self.window_s > 0 and not self.stop.is_set:
            deadline = self._arrivals[0][0] + self.window_s
            while len(self) < size and not self.reader_done.is_set() and not self.gate.shut:
                remaining = deadline - clock.monotonic()
                if remaining <= 0:
                    break
                self.grew.clear()
                await first(self.grew.wait(), clock.sleep(remaining), self.reader_done.wait())
        return self._take(min(size, len(self)))

    def _take(self, count: int) -> Batch:
        head = self._head
        events = self._queue[head : head + count]
        head += count
        if head >= len(self._queue):
            self._queue = []
            head = 0
        elif head > 4096 and head * 2 > len(self._queue):
            del self._queue[:head]
            head = 0
        self._head = head
        arrivals = self._arrivals
        oldest = arrivals[0]
        received_at, ingested_at = oldest[0], oldest[1]
        left = count
        while left and arrivals:
            chunk = arrivals[0]
            if chunk[2] > left:
                chunk[2] -= left
                break
            left -= int(chunk[2])
            arrivals.popleft()
        return Batch(self.partition, events, received_at, ingested_at)
