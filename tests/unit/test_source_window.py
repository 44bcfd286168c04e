"""A source whose senders wait for each outcome (a webhook) gets batches cut at once unless the pipe says otherwise."""

from __future__ import annotations

import asyncio
from typing import ClassVar

from helpers import wait_until
from runner_kit import runner_for

from connectors.memory import MemorySource
from pipes.clock import ManualClock
from pipes.testing import channel


class EagerSource(MemorySource):
    batch_window_s: ClassVar[float | None] = 0.0


def definition(channels: dict[str, str], **extra: object) -> dict[str, object]:
    return {
        "name": "eager",
        "source": {"type": f"{__name__}:EagerSource", "channel": channels["in"]},
        "target": {"type": "memory", "channel": channels["out"]},
        **extra,
    }


async def test_without_a_window_in_the_pipe_the_sources_preference_holds(channels: dict[str, str]) -> None:
    clock = ManualClock()  # never advanced: a 500 ms default window would never end
    runner = runner_for(definition(channels), clock, once=False)
    task = asyncio.create_task(runner.run())
    channel(channels["in"]).put(1, 2, 3)
    await wait_until(lambda: channel(channels["out"]).written == [1, 2, 3], what="cut at once")
    runner.request_stop()
    await task


async def test_a_window_written_in_the_pipe_wins(channels: dict[str, str]) -> None:
    clock = ManualClock()
    runner = runner_for(definition(channels, batch={"size": 100, "window": "5s"}), clock, once=False)
    task = asyncio.create_task(runner.run())
    channel(channels["in"]).put(1, 2, 3)
    await wait_until(lambda: runner.stats.received == 3, what="read")
    await wait_until(lambda: clock.sleepers > 0, what="waiting on the window")
    assert channel(channels["out"]).written == []
    await clock.advance(5)
    await wait_until(lambda: channel(channels["out"]).written == [1, 2, 3], what="after the window")
    runner.request_stop()
    await task
