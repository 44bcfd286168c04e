"""``--coordination``: a pipe that cannot be shared runs on exactly one daemon of a fleet, and moves when it dies."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import structlog
from helpers import wait_until

from connectors.memory import HUB
from pipes.checkpoints import MemoryCheckpointStore
from pipes.config import load_definition
from pipes.daemon import Daemon
from pipes.lease_keeper import LeaseKeeper
from pipes.testing import MemoryLeases

TTL_S = 0.6


@pytest.fixture
def tag() -> str:
    return uuid.uuid4().hex[:8]


def definitions(tag: str) -> list[Any]:
    single = {  # a memory source is not shared through a group: one daemon at a time
        "name": "single",
        "source": {"type": "memory", "channel": f"in-{tag}"},
        "target": {"type": "memory", "channel": f"out-{tag}"},
        "batch": {"size": 10, "window": "5ms"},
        "checkpoint_interval": "20ms",
    }
    return [load_definition(single)]


@pytest.fixture
async def fleet(
    tag: str,
) -> AsyncIterator[tuple[list[Daemon], list[asyncio.Task[None]], MemoryCheckpointStore]]:
    table: dict[str, tuple[str, float]] = {}
    store = MemoryCheckpointStore()  # shared, as --state redis:// is for a fleet
    daemons = [
        Daemon(
            definitions(tag),
            store=store,
            drain_timeout_s=5,
            leases=LeaseKeeper(MemoryLeases(owner, table), TTL_S, structlog.get_logger()),
        )
        for owner in ("a", "b")
    ]
    tasks = [asyncio.create_task(d.run()) for d in daemons]
    yield daemons, tasks, store
    for daemon, task in zip(daemons, tasks, strict=True):
        if not task.done():
            daemon.request_stop()
            await asyncio.wait_for(task, 10)
    HUB.drop(f"in-{tag}")
    HUB.drop(f"out-{tag}")


def running(daemons: list[Daemon]) -> list[str]:
    return [d.leases.leases.owner for d in daemons if d.pipes["single"].alive]  # type: ignore[union-attr]


async def test_a_pipe_that_cannot_be_shared_runs_on_one_daemon_and_the_other_stands_by(
    fleet: tuple[list[Daemon], list[asyncio.Task[None]], MemoryCheckpointStore], tag: str
) -> None:
    daemons, _, _ = fleet
    await wait_until(lambda: len(running(daemons)) == 1, what="one daemon running the pipe")
    idle = next(d for d in daemons if not d.pipes["single"].alive)
    await wait_until(lambda: idle.pipes["single"].state == "STANDBY", what="the other standing by")
    assert "lease is held (" in (idle.pipes["single"].reason or "")
    assert idle.not_ready() == {}  # standing by is ready: it is what it should do
    HUB.channel(f"in-{tag}").put(*range(50))
    await wait_until(lambda: len(HUB.channel(f"out-{tag}").written) == 50, what="delivered once")
    # Several lease periods later, still exactly one.
    loop = asyncio.get_running_loop()
    until = loop.time() + 3 * TTL_S
    while loop.time() < until:
        assert len(running(daemons)) == 1
        await asyncio.sleep(0.02)
    assert HUB.channel(f"out-{tag}").written == list(range(50))


async def test_when_the_daemon_running_it_stops_the_other_takes_over_from_the_checkpoint(
    fleet: tuple[list[Daemon], list[asyncio.Task[None]], MemoryCheckpointStore], tag: str
) -> None:
    daemons, tasks, store = fleet
    await wait_until(lambda: len(running(daemons)) == 1, what="one daemon running the pipe")
    first = next(i for i, d in enumerate(daemons) if d.pipes["single"].alive)
    HUB.channel(f"in-{tag}").put(*range(30))
    await wait_until(lambda: store.saved.get("single") == {"p0": 29}, what="first 30 checkpointed")
    daemons[first].request_stop()
    await asyncio.wait_for(tasks[first], 10)
    other = daemons[1 - first]
    await wait_until(lambda: other.pipes["single"].alive, timeout=5 * TTL_S, what="the other taking over")
    HUB.channel(f"in-{tag}").put(*range(30, 40))
    await wait_until(lambda: len(HUB.channel(f"out-{tag}").written) >= 40, what="the rest delivered")
    assert HUB.channel(f"out-{tag}").written == list(range(40))  # resumed from the shared checkpoint


async def test_a_lease_that_cannot_be_renewed_stops_the_pipe_at_once(
    fleet: tuple[list[Daemon], list[asyncio.Task[None]], MemoryCheckpointStore],
) -> None:
    daemons, _, _ = fleet
    await wait_until(lambda: len(running(daemons)) == 1, what="one daemon running the pipe")
    holder = next(d for d in daemons if d.pipes["single"].alive)
    leases: Any = holder.leases.leases  # type: ignore[union-attr]
    # The shared system says someone else holds it now (this daemon's lease expired unnoticed).
    leases.table["single"] = ("intruder", leases.clock.monotonic() + 60)
    await wait_until(lambda: not holder.pipes["single"].alive, timeout=5 * TTL_S, what="the pipe stopped")
    assert holder.pipes["single"].state == "STANDBY"
    assert len(running(daemons)) == 0  # nobody but the intruder: no second copy anywhere


def test_workers_auto_is_the_cores_this_process_may_use() -> None:
    import os

    from pipes.workers.command import parse_workers, usable_cores

    assert parse_workers("auto") == usable_cores() >= 1
    assert usable_cores() <= (os.process_cpu_count() or 1)
    assert parse_workers("3") == 3
    for bad in ("0", "-1", "two", ""):
        try:
            parse_workers(bad)
        except ValueError as exc:
            assert "worker processes" in str(exc)
        else:
            raise AssertionError(f"{bad!r} accepted")
