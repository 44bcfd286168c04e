"""Many pipes in one process: start them, watch them, stop them cleanly.

Each pipe runs in its own task with its own connectors, so a pipe whose
system is down (or whose definition a system refuses) never stops the others.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from pipes.checkpoints import CheckpointStore
from pipes.clock import Clock, SystemClock
from pipes.config import PipeDefinition
from pipes.errors import FatalError
from pipes.observe import PipeLog
from pipes.runner import PipeRunner, PipeState

__all__ = ["Daemon", "PipeHandle"]


@dataclass
class PipeHandle:
    """A pipe the daemon knows: its definition, its runner while it runs, its task."""

    definition: PipeDefinition
    runner: PipeRunner | None = None
    task: asyncio.Task[None] | None = None
    error: str | None = None
    started_at: float = field(default_factory=time.monotonic)

    @property
    def name(self) -> str:
        return self.definition.name

    @property
    def state(self) -> str:
        if self.runner is not None:
            return self.runner.state
        return PipeState.FAILED if self.error else PipeState.STOPPED


class Daemon:
    """Runs pipe definitions; ``run()`` returns when all have stopped (or finished, ``once``)."""

    def __init__(
        self,
        definitions: Iterable[PipeDefinition],
        *,
        store: CheckpointStore,
        state_dir: str = "state",
        once: bool = False,
        drain_timeout_s: float = 30.0,
        clock: Clock | None = None,
    ) -> None:
        self.store = store
        self.state_dir = state_dir
        self.once = once
        self.drain_timeout_s = drain_timeout_s
        self.clock = clock or SystemClock()
        self.pipes: dict[str, PipeHandle] = {d.name: PipeHandle(d) for d in definitions}
        self._stopping = False

    def start_pipe(self, handle: PipeHandle) -> None:
        runner = PipeRunner(
            handle.definition,
            store=self.store,
            clock=self.clock,
            once=self.once,
            state_dir=self.state_dir,
            drain_timeout_s=self.drain_timeout_s,
            log=PipeLog(handle.name, handle.definition.config.log_level),
        )
        handle.runner = runner
        handle.error = None
        handle.started_at = time.monotonic()
        handle.task = asyncio.create_task(self._run_one(handle, runner), name=f"pipe:{handle.name}")

    async def _run_one(self, handle: PipeHandle, runner: PipeRunner) -> None:
        try:
            await runner.run()
        except FatalError as exc:
            handle.error = str(exc)
        except Exception as exc:  # a bug in one pipe must not take the others down
            handle.error = f"{type(exc).__name__}: {exc}"
            runner.state = PipeState.FAILED
            runner.last_error = handle.error
            runner.log.error("pipe_crashed", error=handle.error)

    async def run(self) -> None:
        for handle in self.pipes.values():
            if handle.definition.config.state == "RUNNING":
                self.start_pipe(handle)
        tasks = [h.task for h in self.pipes.values() if h.task is not None]
        if tasks:
            await asyncio.gather(*tasks)

    def request_stop(self) -> None:
        """Stop pulling everywhere; each pipe drains within the drain timeout."""
        self._stopping = True
        for handle in self.pipes.values():
            if handle.runner is not None:
                handle.runner.request_stop()

    @property
    def failed(self) -> list[PipeHandle]:
        return [h for h in self.pipes.values() if h.error is not None]
