"""Commits of the settled prefix, as numbered steps, one at a time.

1. take the positions the tracker moved since the last commit;
2. for a source that keeps no positions itself, save every partition's position
   in the checkpoint store (atomically, skipped when nothing changed);
3. commit the moved positions to the source (Kafka offsets, Redis XACK...).

Targets report an event delivered only once it is durable, so there is no
flush step before them (quix-streams flushes its sinks here; our ``write``
already waited). A failed step puts the positions back, so the next commit
sends them again; a commit never moves a position backwards.
"""

from __future__ import annotations

import asyncio

from pipes.aio import first
from pipes.checkpoints import CheckpointStore, SettledTracker
from pipes.clock import Clock
from pipes.connector import Source
from pipes.events import Position
from pipes.observe import PipeLog
from pipes.status import PipeHealth

__all__ = ["Committer"]


class Committer:
    def __init__(
        self,
        *,
        pipe: str,
        tracker: SettledTracker,
        source: Source,
        store: CheckpointStore,
        log: PipeLog,
        health: PipeHealth,
        busy: dict[str, float],
        clock: Clock,
    ) -> None:
        self.pipe = pipe
        self.tracker = tracker
        self.source = source
        self.store = store
        self.log = log
        self.health = health
        self.busy = busy
        self.clock = clock
        #: What the store holds for this pipe (as loaded or last saved).
        self.saved: dict[str, Position] = {}
        #: Set when a batch settled: the loop commits soon after.
        self.dirty = asyncio.Event()
        self._lock = asyncio.Lock()

    async def loop(self, interval_s: float) -> None:
        """Commit after batches settle (coalesced) and at least every ``interval_s``; until cancelled."""
        while True:
            await first(self.dirty.wait(), self.clock.sleep(interval_s))
            self.dirty.clear()
            # Shielded: cancelling the loop at shutdown must not cut a commit in half
            # (what it took would be neither committed nor left for the final one).
            await asyncio.shield(self.commit())

    async def commit(self, final: bool = False) -> None:
        async with self._lock:  # one at a time: the loop, a revoke, the final one
            moved = self.tracker.take_dirty()  # step 1
            if not moved:
                return
            self.busy["checkpoint"] = self.clock.monotonic()
            try:
                if not self.source.tracks_position:  # step 2
                    positions = self.tracker.positions()
                    if positions != self.saved:
                        await self.store.save(self.pipe, positions)
                        self.saved = positions
                await self.source.commit(moved)  # step 3
                self.health.recovered("checkpoint")
                if self.log.tracing:
                    self.log.trace("checkpoint_committed", positions=moved)
            except Exception as exc:
                self.tracker.restore_dirty(moved)
                error = f"{type(exc).__name__}: {exc}"
                self.health.failed("checkpoint", f"checkpoint: {error}")
                self.log.error("checkpoint_failed", error=error, final=final)
            finally:
                self.busy.pop("checkpoint", None)
