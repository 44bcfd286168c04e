"""One pipe's system is down: that pipe shows FAILED with its error and recovers; the others carry on."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from helpers import wait_until

from connectors.memory import HUB, MemoryTarget
from pipes.admin import make_app
from pipes.admin_client import format_table
from pipes.checkpoints import MemoryCheckpointStore
from pipes.config import load_paths
from pipes.connector import ConnectorContext
from pipes.daemon import Daemon
from pipes.errors import FatalError, RetryableError
from pipes.events import Event, Outcome

#: Channel name -> the error its target's system answers with while it is "down".
OUTAGES: dict[str, str] = {}


class GatedTarget(MemoryTarget):
    """A memory target whose system is unreachable while its channel is in OUTAGES."""

    async def start(self, context: ConnectorContext) -> None:
        self._check()

    async def write(self, events: Sequence[Event]) -> Sequence[Outcome]:
        self._check()
        return await super().write(events)

    def _check(self) -> None:
        message = OUTAGES.get(self.options.channel)
        if message is not None:
            raise RetryableError(message)


class RefusingTarget(MemoryTarget):
    """A target whose system refuses the definition for good."""

    async def start(self, context: ConnectorContext) -> None:
        raise FatalError(f"channel {self.options.channel!r} does not exist and cannot be created")


FAST = (
    "batch: {size: 10, window: 5ms}\n"
    "checkpoint_interval: 20ms\n"
    "retry: {backoff_initial: 5ms, backoff_max: 20ms, max_attempts: 100000}\n"
)


@pytest.fixture
def tag() -> AsyncIterator[str]:
    return uuid.uuid4().hex[:8]  # type: ignore[return-value]


@pytest.fixture
async def setup(tmp_path: Path, tag: str) -> AsyncIterator[dict[str, Any]]:
    folder = tmp_path / "pipes"
    folder.mkdir()
    names = {k: f"{k}-{tag}" for k in ("good-in", "good-out", "down-in", "down-out", "bad-in", "bad-out")}
    (folder / "good.yaml").write_text(
        f"name: good\nsource: {{type: memory, channel: {names['good-in']}}}\n"
        f"target: {{type: memory, channel: {names['good-out']}}}\n{FAST}"
    )
    (folder / "down.yaml").write_text(
        f"name: down\nsource: {{type: memory, channel: {names['down-in']}}}\n"
        f"target: {{type: 'test_daemon_failures:GatedTarget', channel: {names['down-out']}}}\n{FAST}"
    )
    OUTAGES[names["down-out"]] = "connection refused: broker.internal:9092"
    definitions = [d for r in load_paths([folder]) for d in r.pipes]
    assert len(definitions) == 2
    daemon = Daemon(definitions, store=MemoryCheckpointStore(), paths=[str(folder)], drain_timeout_s=5)
    task = asyncio.create_task(daemon.run())
    client = TestClient(TestServer(make_app(daemon)))
    await client.start_server()
    yield {"daemon": daemon, "names": names, "client": client, "folder": folder}
    await client.close()
    daemon.request_stop()
    await asyncio.wait_for(task, 10)
    OUTAGES.pop(names["down-out"], None)
    for name in names.values():
        HUB.drop(name)


async def test_unreachable_target_fails_one_pipe_only_and_it_recovers(setup: dict[str, Any]) -> None:
    daemon: Daemon = setup["daemon"]
    names: dict[str, str] = setup["names"]
    client: TestClient[Any, Any] = setup["client"]
    down = daemon.pipes["down"]
    await wait_until(lambda: down.state == "FAILED", what="down FAILED")

    # The other pipe delivers everything meanwhile.
    HUB.channel(names["good-in"]).put(*range(500))
    HUB.channel(names["down-in"]).put(*range(40))
    await wait_until(lambda: len(HUB.channel(names["good-out"]).written) >= 500, what="good delivered")
    assert HUB.channel(names["good-out"]).written == list(range(500))
    assert daemon.pipes["good"].state == "RUNNING"

    detail = await (await client.get("/pipes/down")).json()
    assert detail["state"] == "FAILED" and detail["desired_state"] == "RUNNING"
    assert "connection refused: broker.internal:9092" in detail["last_error"]
    ready = await client.get("/readyz")
    assert ready.status == 503
    assert (await ready.json())["not_ready"] == {"down": "FAILED"}

    # The system comes back: the pipe connects by itself and delivers what waited.
    OUTAGES.pop(names["down-out"])
    await wait_until(lambda: len(HUB.channel(names["down-out"]).written) >= 40, what="down recovered")
    assert HUB.channel(names["down-out"]).written == list(range(40))
    assert down.state == "RUNNING" and down.last_error is None
    assert (await client.get("/readyz")).status == 200
    assert (await (await client.get("/pipes/down")).json())["last_error"] is None


async def test_target_outage_while_running_fails_and_recovers(setup: dict[str, Any]) -> None:
    daemon: Daemon = setup["daemon"]
    names: dict[str, str] = setup["names"]
    OUTAGES.pop(names["down-out"])
    await wait_until(lambda: not daemon.not_ready(), what="both running")
    down_out = HUB.channel(names["down-out"])
    OUTAGES[names["down-out"]] = "HTTP 503 from target"
    HUB.channel(names["down-in"]).put(*range(30))
    down = daemon.pipes["down"]
    await wait_until(lambda: down.state == "FAILED", what="down FAILED on write")
    assert down.last_error is not None and "HTTP 503 from target" in down.last_error
    HUB.channel(names["good-in"]).put(*range(200))
    await wait_until(lambda: len(HUB.channel(names["good-out"]).written) >= 200, what="good delivered")
    OUTAGES.pop(names["down-out"])
    await wait_until(lambda: len(down_out.written) >= 30, what="down delivered")
    assert down_out.written == list(range(30))
    assert HUB.channel(names["good-out"]).written == list(range(200))
    await wait_until(lambda: down.state == "RUNNING", what="down RUNNING again")
    counters = down.counters()
    assert counters["delivered"] == 30 and counters["failed_by_stage"]["target"] >= 1


async def test_refused_definition_fails_its_pipe_alone(setup: dict[str, Any]) -> None:
    daemon: Daemon = setup["daemon"]
    names: dict[str, str] = setup["names"]
    folder: Path = setup["folder"]
    (folder / "bad.yaml").write_text(
        f"name: bad\nsource: {{type: memory, channel: {names['bad-in']}}}\n"
        f"target: {{type: 'test_daemon_failures:RefusingTarget', channel: {names['bad-out']}}}\n{FAST}"
    )
    report = await daemon.reload()
    assert report.added == ["bad"]
    bad = daemon.pipes["bad"]
    await wait_until(lambda: not bad.alive, what="bad ended")
    assert bad.state == "FAILED" and bad.error is not None and "cannot be created" in bad.error
    assert [h.name for h in daemon.failed] == ["bad"]
    HUB.channel(names["good-in"]).put(*range(50))
    await wait_until(lambda: len(HUB.channel(names["good-out"]).written) >= 50, what="good delivered")
    assert HUB.channel(names["good-out"]).written == list(range(50))


async def test_a_target_that_stops_answering_is_degraded_in_pipes_readyz_metrics_and_status(
    tmp_path: Path, tag: str
) -> None:
    # Writes hang, as with a frozen broker: nothing fails, so only the stall watchdog can tell.
    folder = tmp_path / "pipes"
    folder.mkdir()
    src, out = HUB.channel(f"stall-in-{tag}"), HUB.channel(f"stall-out-{tag}")
    (folder / "stall.yaml").write_text(
        f"name: stall\nsource: {{type: memory, channel: {src.name}}}\n"
        f"target: {{type: memory, channel: {out.name}}}\nstall_timeout: 200ms\n{FAST}"
    )
    out.hold = asyncio.Event()
    daemon = Daemon(load_paths([folder])[0].pipes, store=MemoryCheckpointStore(), drain_timeout_s=5)
    task = asyncio.create_task(daemon.run())
    client = TestClient(TestServer(make_app(daemon)))
    await client.start_server()
    try:
        src.put(1, 2, 3)
        await wait_until(lambda: daemon.pipes["stall"].state == "DEGRADED", what="DEGRADED")
        detail = await (await client.get("/pipes/stall")).json()
        assert detail["state"] == "DEGRADED" and detail["reason"].startswith("target: no answer for")
        ready = await client.get("/readyz")
        assert ready.status == 503 and (await ready.json())["not_ready"] == {"stall": "DEGRADED"}
        metrics = await (await client.get("/metrics")).text()
        assert 'pipes_pipe_state{pipe="stall",state="DEGRADED"} 1.0' in metrics
        assert format_table([detail])[1].split()[:2] == ["stall", "DEGRADED"]  # pipes status
        assert "target: no answer for" in format_table([detail])[1]
        # The system answers again: it clears by itself.
        out.hold.set()
        await wait_until(lambda: out.written == [1, 2, 3], what="delivered")
        await wait_until(lambda: daemon.pipes["stall"].state == "RUNNING", what="RUNNING again")
        assert (await client.get("/readyz")).status == 200
        assert (await (await client.get("/pipes/stall")).json())["reason"] is None
    finally:
        out.hold.set()
        await client.close()
        daemon.request_stop()
        await asyncio.wait_for(task, 10)
        HUB.drop(src.name)
        HUB.drop(out.name)
