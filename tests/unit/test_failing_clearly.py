"""A pipe that cannot start, a corrupt checkpoint, a frozen system: each said plainly, never a silent hang."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from helpers import wait_until
from runner_kit import pipe, run_to_end, runner_for
from structlog.testing import capture_logs

from pipes.checkpoints import CheckpointCorrupt, FileCheckpointStore
from pipes.clock import ManualClock
from pipes.errors import PipeFailed, RetryableError
from pipes.events import Event
from pipes.status import PipeState
from pipes.testing import channel


async def test_once_gives_up_after_the_start_timeout_naming_the_system(channels: dict[str, str]) -> None:
    clock = ManualClock()
    runner = runner_for(pipe(channels), clock, start_timeout_s=30.0)

    async def unreachable(context: object) -> None:
        raise RetryableError("redis XADD to stream 'out': ConnectionError: connection refused to 127.0.0.1:1")

    runner.target.start = unreachable  # type: ignore[method-assign]
    with pytest.raises(PipeFailed, match=r"could not start within 30s: .*connection refused to 127.0.0.1:1"):
        await run_to_end(runner, clock)
    assert clock.monotonic() >= 30.0  # it kept trying, with backoff, for the whole timeout
    assert runner.state == "FAILED"


async def test_once_gives_up_at_the_start_timeout_even_when_a_start_hangs(channels: dict[str, str]) -> None:
    # A frozen system accepts the connection and never answers: the attempt itself must end.
    clock = ManualClock()
    runner = runner_for(pipe(channels), clock, start_timeout_s=30.0)
    stopped: list[bool] = []

    async def frozen(context: object) -> None:
        await asyncio.Event().wait()

    async def stop() -> None:
        stopped.append(True)

    runner.target.start = frozen  # type: ignore[method-assign]
    runner.target.stop = stop  # type: ignore[method-assign]
    with pytest.raises(
        PipeFailed, match=r"could not start within 30s: TimeoutError: memory target did not answer"
    ):
        await run_to_end(runner, clock, timeout=5.0)
    assert 30.0 <= clock.monotonic() <= 31.0  # at the timeout, not a client's own timeout later
    assert stopped == [True]  # the half-started target was closed


async def test_once_does_not_back_off_past_the_start_timeout(channels: dict[str, str]) -> None:
    clock = ManualClock()
    runner = runner_for(pipe(channels), clock, start_timeout_s=3.0)
    attempts: list[float] = []

    async def unreachable(context: object) -> None:
        attempts.append(clock.monotonic())
        raise RetryableError("connection refused")

    runner.target.start = unreachable  # type: ignore[method-assign]
    with pytest.raises(PipeFailed, match="could not start within 3s"):
        await run_to_end(runner, clock, step=0.1)
    assert attempts[-1] <= 3.1  # the last attempt at the deadline, not one backoff after it


async def test_without_once_an_unreachable_system_is_retried_past_the_start_timeout(
    channels: dict[str, str],
) -> None:
    clock = ManualClock()
    runner = runner_for(pipe(channels), clock, once=False, start_timeout_s=30.0)
    attempts = {"n": 0}

    async def unreachable(context: object) -> None:
        attempts["n"] += 1
        raise RetryableError("connection refused")

    runner.target.start = unreachable  # type: ignore[method-assign]
    task = asyncio.create_task(runner.run())
    while clock.monotonic() < 120:
        await clock.advance(1)
        await asyncio.sleep(0)
    assert not task.done() and attempts["n"] > 5
    runner.request_stop()
    await task


async def test_a_corrupt_checkpoint_is_fatal_and_says_how_to_recover(
    channels: dict[str, str], tmp_path: Path
) -> None:
    store = FileCheckpointStore(tmp_path)
    store.path("t").write_bytes(b'{"pipe": "t", "positions": {"p0": ')  # truncated
    channel(channels["in"]).put(1, 2, 3)
    clock = ManualClock()
    runner = runner_for(pipe(channels), clock, store=store, once=False)  # in every mode, not only --once
    with pytest.raises(CheckpointCorrupt) as info:
        await runner.run()
    message = str(info.value)
    assert str(store.path("t")) in message
    assert "move it aside" in message and "--reset-checkpoint t" in message
    assert channel(channels["out"]).written == []  # nothing guessed, nothing delivered
    assert await store.reset("t") and not store.path("t").exists()


async def test_a_resumed_pipe_says_where_it_resumes(channels: dict[str, str], tmp_path: Path) -> None:
    channel(channels["in"]).put(*range(5))
    clock = ManualClock()
    store_kw = {"store": FileCheckpointStore(tmp_path)}
    await run_to_end(runner_for(pipe(channels), clock, **store_kw), clock)
    with capture_logs() as logs:
        await run_to_end(runner_for(pipe(channels), clock, **store_kw), clock)
    resumed = [e for e in logs if e["event"] == "resuming_from_checkpoint"]
    assert resumed and resumed[0]["positions"] == {"p0": 4} and resumed[0]["log_level"] == "info"


async def test_a_target_that_stops_answering_makes_the_pipe_degraded_until_it_answers(
    channels: dict[str, str],
) -> None:
    out = channel(channels["out"])
    out.hold = asyncio.Event()  # the target's writes hang, as with a frozen broker
    channel(channels["in"]).put(1, 2, 3)
    clock = ManualClock()
    states: list[str] = []
    logs_cm = capture_logs()
    logs = logs_cm.__enter__()
    runner = runner_for(
        pipe(channels, stall_timeout="10s"), clock, once=False, observer=StateRecorder(states)
    )
    task = asyncio.create_task(runner.run())
    await wait_until(lambda: out.writes == 1, what="a write under way")
    await clock.advance(5)
    assert runner.state == "RUNNING"  # not yet: below the stall timeout
    for _ in range(8):
        await clock.advance(1)
    assert runner.state == "DEGRADED"
    status = runner.status()
    assert status.state is PipeState.DEGRADED
    assert status.reason is not None and status.reason.startswith("target: no answer for")
    out.hold.set()
    await wait_until(lambda: len(out.written) == 3, what="delivered once it answers")
    await clock.advance(1)
    await wait_until(lambda: runner.state == "RUNNING", what="RUNNING again by itself")
    assert runner.status().reason is None
    assert "DEGRADED" in states
    runner.request_stop()
    await task
    logs_cm.__exit__(None, None, None)
    said = [(e["event"], e.get("reason")) for e in logs if e["event"] in ("pipe_degraded", "pipe_recovered")]
    assert said[0][0] == "pipe_degraded" and said[0][1].startswith("target: no answer for")
    assert said[-1] == ("pipe_recovered", None)


class StateRecorder:
    def __init__(self, states: list[str]) -> None:
        self.states = states

    def events(self, kind: str, count: int, stage: str | None = None) -> None:
        pass

    def duration(self, stage: str, seconds: float) -> None:
        pass

    def state(self, state: str) -> None:
        self.states.append(state)


async def test_a_stage_duration_is_reported_for_the_source(channels: dict[str, str]) -> None:
    seen: list[tuple[str, float]] = []

    class Recorder:
        def events(self, kind: str, count: int, stage: str | None = None) -> None:
            pass

        def duration(self, stage: str, seconds: float) -> None:
            seen.append((stage, seconds))

        def state(self, state: str) -> None:
            pass

    channel(channels["in"]).put(1, 2, 3)
    clock = ManualClock()
    runner = runner_for(pipe(channels), clock, observer=Recorder())
    real_read = runner.source.read

    async def slow_read(n: int, timeout_s: float) -> list[Event]:
        events = await real_read(n, timeout_s)
        if events:
            await clock.advance(0.25)  # the source took a quarter second to answer
        return events

    runner.source.read = slow_read  # type: ignore[method-assign]
    await run_to_end(runner, clock)
    assert ("source", 0.25) in seen
