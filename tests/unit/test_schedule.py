"""The ``schedule`` source on a manual clock: rate and cron instants, across restarts, per ``catch_up`` mode."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from helpers import wait_until
from runner_kit import run_to_end, runner_for

from connectors.schedule import ScheduleOptions, ScheduleSource
from pipes.checkpoints import MemoryCheckpointStore
from pipes.clock import ManualClock
from pipes.testing import channel

# ManualClock's wall time starts at 2023-11-14T22:13:20Z (1_700_000_000).
START = 1_700_000_000.0


def schedule_pipe(ch: dict[str, str], **source: Any) -> dict[str, Any]:
    return {
        "name": "tick",
        "source": {"type": "schedule", **source},
        "target": {"type": "memory", "channel": ch["out"]},
        "batch": {"size": 100, "window": "0ms"},
        "checkpoint_interval": "1h",  # commits follow settled batches anyway; fewer wake-ups
    }


async def run_for(
    definition: dict[str, Any], store: MemoryCheckpointStore, start: float, seconds: float, step: float = 10.0
) -> list[str]:
    """Run the pipe from wall time ``start`` for ``seconds`` of manual time; the times it fired."""
    out = channel(definition["target"]["channel"])
    before = len(out.written)
    clock = ManualClock(start=start)
    # Reads may wait up to the next instant: each wait then ends exactly at an instant,
    # wherever the manual clock's steps fall.
    runner = runner_for(definition, clock, store=store, once=False, read_timeout_s=86400.0)
    task = asyncio.create_task(runner.run())
    await wait_until(lambda: runner.state == "RUNNING")
    source = runner.source
    assert isinstance(source, ScheduleSource)

    def settled() -> bool:
        # Nothing due is left unread, and everything read was delivered.
        return source.lag() == {"schedule": 0} and runner.stats.delivered == source.fired

    moved = 0.0
    while moved < seconds:
        await clock.advance(step)
        moved += step
        await wait_until(settled, what="due events to be fired and settled")
    runner.request_stop()
    await asyncio.wait_for(task, 10)
    fired = out.written[before:]
    assert all(f["name"] == "tick" for f in fired)
    return [f["scheduled_time"] for f in fired]


async def test_rate_fires_on_multiples_of_the_rate(channels: dict[str, str]) -> None:
    store = MemoryCheckpointStore()
    # 1_700_000_000 is 200 s past a multiple of 300: the first instant is 100 s away.
    fired = await run_for(schedule_pipe(channels, rate="5m"), store, START, 990)  # until 22:29:50
    assert fired == ["2023-11-14T22:15:00.000Z", "2023-11-14T22:20:00.000Z", "2023-11-14T22:25:00.000Z"]
    assert store.saved["tick"] == {"schedule": "2023-11-14T22:25:00.000Z"}


@pytest.mark.parametrize(
    ("mode", "after_restart"),
    [
        # Down from 22:29:50 to 22:52:00 (instants 22:30 ... 22:50 missed), then 2 more minutes running.
        ("all", ["22:30", "22:35", "22:40", "22:45", "22:50"]),
        ("latest", ["22:50"]),
        ("none", []),
    ],
)
async def test_a_restart_catches_up_as_told(
    channels: dict[str, str], mode: str, after_restart: list[str]
) -> None:
    store = MemoryCheckpointStore()
    pipe = schedule_pipe(channels, rate="5m", catch_up=mode)
    first = await run_for(pipe, store, START, 990)  # until 22:29:50
    assert first[-1] == "2023-11-14T22:25:00.000Z"
    again = await run_for(pipe, store, START + 2320, 130)  # 22:52:00 to 22:54:10
    assert [t[11:16] for t in again] == after_restart
    later = await run_for(pipe, store, START + 2600, 100)  # 22:56:40 to 22:58:20: 22:55 was missed
    assert [t[11:16] for t in later] == ([] if mode == "none" else ["22:55"]), "nothing fires twice"


async def test_a_restart_without_missed_instants_fires_neither_twice_nor_late(
    channels: dict[str, str],
) -> None:
    store = MemoryCheckpointStore()
    pipe = schedule_pipe(channels, rate="1m")
    first = await run_for(pipe, store, START, 100)  # 22:13:20 .. 22:15:00: fires 22:14, 22:15
    second = await run_for(pipe, store, START + 110, 60)  # 22:15:10 .. 22:16:10: fires 22:16
    assert [t[11:19] for t in first] == ["22:14:00", "22:15:00"]
    assert [t[11:19] for t in second] == ["22:16:00"]


async def test_cron_in_a_time_zone(channels: dict[str, str]) -> None:
    store = MemoryCheckpointStore()
    # 09:00 and 09:30 in Berlin, on weekdays; 2023-11-14 is a Tuesday, Berlin is UTC+1 in November.
    pipe = schedule_pipe(channels, cron="0,30 9 * * mon-fri", timezone="Europe/Berlin")
    fired = await run_for(pipe, store, START, 12 * 3600, step=3600)  # until Wed 10:13 UTC
    assert fired == ["2023-11-15T08:00:00.000Z", "2023-11-15T08:30:00.000Z"]
    again = await run_for(
        pipe, store, START + 3 * 86400, 60
    )  # Friday evening: Thu and Fri missed, latest fires
    assert again == ["2023-11-17T08:30:00.000Z"]


@pytest.mark.parametrize(
    ("mode", "after_restart"),
    [
        # Down from 23:13:20 to 02:50:00 UTC (23:40 ... 02:40 missed), then an hour running.
        ("all", ["23:40", "00:40", "01:40", "02:40", "03:40"]),
        ("latest", ["02:40", "03:40"]),
        ("none", ["03:40"]),
    ],
)
async def test_cron_across_a_restart_catches_up_as_told(
    channels: dict[str, str], mode: str, after_restart: list[str]
) -> None:
    store = MemoryCheckpointStore()
    # Ten past each hour in Kolkata (UTC+05:30) is twenty to each hour in UTC.
    pipe = schedule_pipe(channels, cron="10 * * * *", timezone="Asia/Kolkata", catch_up=mode)
    first = await run_for(pipe, store, START, 3600, step=100)  # 22:13:20 .. 23:13:20 UTC
    assert first == ["2023-11-14T22:40:00.000Z"]
    again = await run_for(pipe, store, START + 16600, 3600, step=100)  # 02:50:00 .. 03:50:00 UTC
    assert [t[11:16] for t in again] == after_restart
    assert len(set(first + again)) == len(first + again), "nothing fires twice"


async def test_once_fires_what_is_due_at_start_and_ends(channels: dict[str, str]) -> None:
    store = MemoryCheckpointStore()
    store.saved["tick"] = {"schedule": "2023-11-14T22:00:00.000Z"}
    clock = ManualClock(start=START)
    runner = runner_for(schedule_pipe(channels, rate="5m", catch_up="all"), clock, store=store)
    await run_to_end(runner, clock)
    assert [f["scheduled_time"][11:16] for f in channel(channels["out"]).written] == ["22:05", "22:10"]


def test_options_refuse_mistakes() -> None:
    def error(**options: Any) -> str:
        with pytest.raises(ValueError) as caught:
            ScheduleOptions.model_validate(options)
        return " ".join(str(caught.value).split())

    assert "give exactly one of rate or cron" in error()
    assert "give exactly one of rate or cron" in error(rate="1m", cron="* * * * *")
    assert "cron takes five fields" in error(cron="0 * * * * *")
    assert "invalid cron expression '61 * * * *'" in error(cron="61 * * * *")
    assert "unknown time zone 'Mars/Olympus'" in error(cron="@daily", timezone="Mars/Olympus")
    assert "timezone applies to cron only" in error(rate="1h", timezone="UTC")
    for name, field in ScheduleOptions.model_fields.items():
        assert field.description, name
