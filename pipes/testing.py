"""A test kit for users' own connectors and pipes.

Memory connectors, a manual clock, and ``run_pipe`` to run one pipe from a
dict in-process. Connector authors test with these exactly as the built-in
connectors are tested.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from connectors.memory import HUB, MemoryChannel, MemoryHub
from pipes.checkpoints import CheckpointStore, FileCheckpointStore, MemoryCheckpointStore
from pipes.clock import Clock, ManualClock
from pipes.config import load_definition
from pipes.runner import PipeRunner, PipeStats

__all__ = [
    "HUB",
    "ManualClock",
    "MemoryChannel",
    "MemoryCheckpointStore",
    "MemoryHub",
    "MemoryLeases",
    "channel",
    "make_runner",
    "run_pipe",
]


def channel(name: str) -> MemoryChannel:
    """The in-process channel ``name`` that ``type: memory`` connectors use."""
    return HUB.channel(name)


def make_runner(
    definition: Mapping[str, Any],
    *,
    once: bool = True,
    state_dir: str | Path | None = None,
    store: CheckpointStore | None = None,
    clock: Clock | None = None,
    **kwargs: Any,
) -> PipeRunner:
    """A runner for ``definition`` (a pipe as a dict, as in YAML); ``ConfigError`` if invalid."""
    loaded = load_definition(definition)
    if store is None:
        directory = Path(state_dir) if state_dir is not None else Path(tempfile.mkdtemp(prefix="pipes-"))
        store = FileCheckpointStore(directory / "checkpoints")
    return PipeRunner(
        loaded, store=store, clock=clock, once=once, state_dir=str(state_dir or "state"), **kwargs
    )


async def run_pipe(
    definition: Mapping[str, Any],
    *,
    once: bool = True,
    state_dir: str | Path | None = None,
    store: CheckpointStore | None = None,
    clock: Clock | None = None,
    **kwargs: Any,
) -> PipeStats:
    """Run one pipe to completion (``once``) and return its counters."""
    runner = make_runner(definition, once=once, state_dir=state_dir, store=store, clock=clock, **kwargs)
    await runner.run()
    return runner.stats


class MemoryLeases:
    """``pipes.coordination.Leases`` in memory, on a clock: several daemons of one test share one table.

    ``owner`` names the daemon; ``table`` is the shared state (pass the first
    one's to the others): ``{name: (owner, expires_at)}`` on ``clock``.
    """

    def __init__(
        self, owner: str, table: dict[str, tuple[str, float]] | None = None, clock: Clock | None = None
    ) -> None:
        from pipes.clock import SystemClock

        self.owner = owner
        self.table: dict[str, tuple[str, float]] = {} if table is None else table
        self.clock: Clock = clock or SystemClock()

    def _live(self, name: str) -> str | None:
        found = self.table.get(name)
        if found is None or found[1] <= self.clock.monotonic():
            return None
        return found[0]

    async def acquire(self, name: str, ttl_s: float) -> bool:
        if self._live(name) is not None:
            return False
        self.table[name] = (self.owner, self.clock.monotonic() + ttl_s)
        return True

    async def renew(self, name: str, ttl_s: float) -> bool:
        if self._live(name) != self.owner:
            return False
        self.table[name] = (self.owner, self.clock.monotonic() + ttl_s)
        return True

    async def release(self, name: str) -> None:
        if self._live(name) == self.owner:
            del self.table[name]

    async def holder(self, name: str) -> str | None:
        return self._live(name)

    async def close(self) -> None:
        return None
