"""What the runner tests share: a memory pipe, a runner on a manual clock, and a --once run driven to its end."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from pipes.checkpoints import MemoryCheckpointStore
from pipes.clock import ManualClock
from pipes.runner import PipeRunner
from pipes.testing import make_runner


def pipe(ch: dict[str, str], **extra: Any) -> dict[str, Any]:
    """A memory-to-memory pipe named ``t``; ``extra`` keys replace the defaults."""
    definition: dict[str, Any] = {
        "name": "t",
        "source": {"type": "memory", "channel": ch["in"]},
        "target": {"type": "memory", "channel": ch["out"]},
        "batch": {"size": 10, "window": "0ms"},
        "retry": {"max_attempts": 3, "backoff_initial": "100ms", "backoff_max": "1s"},
    }
    definition.update(extra)
    return definition


def runner_for(definition: dict[str, Any], clock: ManualClock | None = None, **kw: Any) -> PipeRunner:
    """A runner with a memory checkpoint store (unless ``store=``) and seeded jitter."""
    return make_runner(
        definition,
        store=kw.pop("store", MemoryCheckpointStore()),
        clock=clock or ManualClock(),
        rng=random.Random(7),
        **kw,
    )


async def run_to_end(
    runner: PipeRunner, clock: ManualClock, step: float = 0.5, timeout: float = 10.0
) -> None:
    """Run a --once runner, moving the manual clock along while it waits."""
    task = asyncio.create_task(runner.run())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not task.done():
        if loop.time() > deadline:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            raise AssertionError("runner did not finish")
        await clock.advance(step)
        await asyncio.sleep(0.001)
    await task
