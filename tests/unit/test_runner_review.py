"""Regression tests from a review of the core runtime: each pins one bug that was fixed."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from helpers import wait_until
from runner_kit import pipe, run_to_end, runner_for

from pipes.checkpoints import MemoryCheckpointStore
from pipes.clock import ManualClock
from pipes.config import load_text
from pipes.connector import SourceContext
from pipes.errors import FatalError, RetryableError
from pipes.events import Event, Outcome, Position
from pipes.testing import channel


async def test_a_dead_letter_target_with_the_wrong_number_of_outcomes_is_a_failed_write(
    channels: dict[str, str],
) -> None:
    # It used to raise out of zip(strict=True) and kill the partition's lane: the
    # partition stopped for good and the error only surfaced at shutdown.
    channel(channels["in"]).put("poison", "a", "b")
    channel(channels["out"]).fail = lambda e: FatalError("rejected") if e.payload == "poison" else None
    definition = pipe(
        channels,
        batch={"size": 1, "window": "0ms"},
        dead_letter={"type": "memory", "channel": channels["dlq"]},
    )
    clock = ManualClock()
    runner = runner_for(definition, clock)
    assert runner.dead_letter is not None
    real_write = runner.dead_letter.write
    calls = {"n": 0}

    async def short_write(events: Sequence[Event]) -> Sequence[Outcome]:
        calls["n"] += 1
        if calls["n"] == 1:
            return []  # a broken dead-letter target: no outcome at all
        return await real_write(events)

    runner.dead_letter.write = short_write  # type: ignore[method-assign]
    await run_to_end(runner, clock)
    assert [r["record"]["body"] for r in channel(channels["dlq"]).written] == ["poison"]
    assert channel(channels["out"]).written == ["a", "b"]
    assert runner.tracker.positions() == {"p0": 2}


class GatedStore(MemoryCheckpointStore):
    """The first save waits for ``gate`` (a slow disk or a slow Redis)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.calls = 0

    async def save(self, pipe: str, positions: Mapping[str, Position]) -> None:
        self.calls += 1
        if self.calls == 1:
            await self.gate.wait()
        await super().save(pipe, positions)


async def test_stopping_while_a_commit_is_under_way_still_commits_at_shutdown(
    channels: dict[str, str],
) -> None:
    # Cancelling the committer in the middle of a save lost the positions it had
    # taken: they were neither saved nor dirty, so the final commit saved nothing.
    channel(channels["in"]).put(1, 2, 3)
    store = GatedStore()
    clock = ManualClock()
    runner = runner_for(pipe(channels), clock, store=store, once=False)
    task = asyncio.create_task(runner.run())
    await wait_until(lambda: store.calls == 1, what="a commit under way")
    runner.request_stop()
    await wait_until(lambda: task.done() or not runner._lanes, what="the runner shutting down")
    store.gate.set()
    await task
    assert store.saved.get("t") == {"p0": 2}


async def test_an_enricher_result_that_is_not_a_list_fails_only_its_event(
    channels: dict[str, str],
) -> None:
    # A non-list result raised in the middle of the batch after earlier events had
    # fanned out; the retry fanned them out again and their parent counted children
    # that never existed: it never settled, so its checkpoint never moved again.
    channel(channels["in"]).put({"id": 0}, {"id": 1})
    calls: dict[int, int] = {}

    def enrich(record: dict[str, Any]) -> Any:
        n = record["body"]["id"]
        calls[n] = calls.get(n, 0) + 1
        if n == 0:
            return [{"id": 0, "part": 1}, {"id": 0, "part": 2}]
        return None if calls[n] == 1 else [{"id": 1}]

    channel(channels["enrich"]).enrich = enrich
    definition = pipe(channels, enrichment={"type": "memory", "channel": channels["enrich"]})
    clock = ManualClock()
    # Not --once: there, an event that fails for good without a dead letter fails the pipe.
    runner = runner_for(definition, clock, once=False)
    task = asyncio.create_task(runner.run())
    out = channel(channels["out"]).written
    while len(out) < 3:
        await clock.advance(1.0)
        await asyncio.sleep(0.001)
    await wait_until(lambda: runner.status().in_flight == 0, what="everything settled")
    runner.request_stop()
    await task
    assert out == [{"id": 0, "part": 1}, {"id": 0, "part": 2}, {"id": 1}]
    assert runner.tracker.positions() == {"p0": 1}


async def test_a_batch_that_cannot_fill_because_of_the_in_flight_bound_is_not_held_for_the_window(
    channels: dict[str, str],
) -> None:
    # With the bound reached the reader cannot add anything, yet every lane waited
    # the whole batch window: many partitions (or a bound under batch.size) meant
    # one stall of `window` per round.
    src = channel(channels["in"])
    out = channel(channels["out"])
    definition = pipe(channels, batch={"size": 10, "window": "60s"}, max_in_flight=8)
    clock = ManualClock()
    runner = runner_for(definition, clock, once=False)
    task = asyncio.create_task(runner.run())
    src.put(*range(4), partition="a")
    await wait_until(lambda: runner.stats.received == 4, what="partition a read")
    await wait_until(lambda: clock.sleepers > 1, what="lane a waiting for its window")
    src.put(*range(4), partition="b")  # the bound is reached: nothing more can be read
    await wait_until(lambda: len(out.written) == 8, timeout=2.0, what="both lanes without the window")
    assert clock.monotonic() == 0.0
    runner.request_stop()
    await task


# ---------------------------------------------------------------- pipe files

PIPE_FILE = """\
name: orders
source: {type: memory, channel: in}
target: {type: memory, channel: out}
"""


def located_errors(text: str) -> list[str]:
    result = load_text(text, "pipe.yaml", env={})
    assert result.pipes == []
    return result.errors


def test_a_value_yaml_cannot_construct_is_a_located_error_not_a_traceback() -> None:
    # An unknown tag or a bad explicit one raised out of load_file (and out of a reload).
    errors = located_errors(PIPE_FILE.replace("name: orders", "name: !secret orders"))
    assert "pipe.yaml:1:7: name: YAML: could not determine a constructor for the tag '!secret'" in errors
    errors = located_errors(PIPE_FILE + 'batch: {size: !!int "ten"}\n')
    assert any(e.startswith("pipe.yaml:4:15: batch.size: YAML: ") for e in errors), errors
    errors = located_errors(PIPE_FILE.replace("source: {", "source: {<<: {channel: x}, "))
    assert "pipe.yaml:2:10: source: YAML: merge keys (<<) are not supported" in errors


def test_a_recursive_alias_is_a_located_error_not_a_recursion_error() -> None:
    text = PIPE_FILE.replace("source: {", "source: &s {extra: *s, ")
    assert "pipe.yaml:2:9: source.extra: YAML: recursive alias" in located_errors(text)


def test_a_key_given_twice_is_an_error() -> None:
    # The second one silently won: a typo'd copy-paste must not pass.
    assert located_errors(PIPE_FILE + "name: other\n") == [
        "pipe.yaml:4:1: name: key given twice in this mapping (first at line 1)"
    ]


def test_a_pipe_with_numeric_keys_inside_free_form_options_loads() -> None:
    # Its fingerprint (for reload) raised "Dict key must be str" out of load_file.
    text = (
        "name: orders\n"
        "source: {type: memory, channel: in}\n"
        "target: {type: python, function: 'json:dumps', options: {status: {404: skip}}}\n"
    )
    result = load_text(text, "pipe.yaml", env={})
    assert result.errors == []
    assert [p.name for p in result.pipes] == ["orders"]


async def test_events_read_while_a_revoke_finishes_are_tracked_in_the_new_generation(
    channels: dict[str, str],
) -> None:
    # The lanes of a revoked partition were dropped, then the revoke awaited their
    # cancellation, and only then forgot the partition in the tracker. Events of that
    # partition read meanwhile (re-assigned to us) were tracked in the old queue and
    # forgotten with it, and the next ones started a new queue: a later event's
    # delivery then moved the checkpoint past an earlier one that was still failing.
    src = channel(channels["in"])
    definition = pipe(channels, batch={"size": 10, "window": "1s"}, retry={"max_attempts": 100})
    clock = ManualClock()
    runner = runner_for(definition, clock, once=False, drain_timeout_s=5.0)
    contexts: list[SourceContext] = []
    real_start = runner.source.start

    async def start(context: SourceContext) -> None:
        contexts.append(context)
        await real_start(context)

    runner.source.start = start  # type: ignore[method-assign]
    real_write = runner.target.write
    stuck, cleanup = asyncio.Event(), asyncio.Event()
    failed_once: set[Any] = set()

    def fail_e1_once(event: Event) -> Exception | None:
        if event.payload == "e1" and "e1" not in failed_once:
            failed_once.add("e1")
            return RetryableError("busy")
        return None

    channel(channels["out"]).fail = fail_e1_once

    async def write(events: Sequence[Event]) -> Sequence[Outcome]:
        if events[0].payload == "e0":
            try:
                await stuck.wait()  # never set: e0 is in the target when the revoke comes
            except asyncio.CancelledError:
                await cleanup.wait()  # a target that cleans up when cancelled
                raise
        return await real_write(events)

    runner.target.write = write  # type: ignore[method-assign]
    task = asyncio.create_task(runner.run())
    src.put("e0")
    await wait_until(lambda: runner.stats.received == 1, what="e0 read")
    await clock.advance(1.0)  # e0's window: it goes to the target and stays there
    revoke = asyncio.create_task(contexts[0].revoke(["p0"]))
    while "p0" in runner._lanes:  # the revoke waits for e0 up to its bound, then drops the lane
        await clock.advance(1.0)
        await asyncio.sleep(0.001)
    src.put("e1", "e2")  # re-assigned to us: read while the old lane is still being cancelled
    await wait_until(lambda: runner.stats.received == 3, what="e1 and e2 read")
    cleanup.set()
    await revoke
    src.put("e3")
    await wait_until(lambda: runner.stats.received == 4, what="e3 read")
    await clock.advance(1.0)  # the new lane's window: e1 fails, e2 and e3 are delivered
    out = channel(channels["out"])
    await wait_until(lambda: "e3" in out.written, what="e3 delivered")
    assert "e1" not in out.written
    assert runner.tracker.positions().get("p0", -1) < 1  # e1 (position 1) is not settled
    await clock.advance(5.0)
    await wait_until(lambda: "e1" in out.written, what="e1 retried")
    await wait_until(lambda: runner.tracker.positions() == {"p0": 3}, what="checkpoint after e1")
    runner.request_stop()
    await task


def test_a_checkpoint_interval_of_zero_is_an_error() -> None:
    # Accepted before, it made the committer loop on sleep(0) for as long as the pipe ran.
    errors = located_errors(PIPE_FILE + "checkpoint_interval: 0\n")
    assert errors == ["pipe.yaml:4:1: checkpoint_interval: Input should be greater than 0"]


def test_an_integer_beyond_64_bits_does_not_crash_loading() -> None:
    # The reload fingerprint (orjson) raised "Integer exceeds 64-bit range" out of load_file.
    result = load_text(PIPE_FILE + f"max_in_flight: {2**70}\n", "pipe.yaml", env={})
    assert result.errors == []
    assert result.pipes[0].config.max_in_flight == 2**70


async def test_a_partition_checkpointed_past_its_end_does_not_hide_the_others(
    channels: dict[str, str],
) -> None:
    # The memory source summed unread counts over partitions: one checkpointed past
    # its end counted negative, so --once saw "caught up" and never read the others.
    src = channel(channels["in"])
    src.put("a0", "a1", partition="a")
    src.put("b0", "b1", "b2", partition="b")
    store = MemoryCheckpointStore()
    store.saved["t"] = {"a": 9}
    clock = ManualClock()
    runner = runner_for(pipe(channels), clock, store=store)
    await run_to_end(runner, clock)
    assert channel(channels["out"]).written == ["b0", "b1", "b2"]


async def test_a_lane_that_dies_fails_the_pipe_instead_of_stalling_it(channels: dict[str, str]) -> None:
    # A CancelledError leaking from a client library (not a cancel by the runner) ended
    # the partition's lane: its events were never settled, the reader filled the
    # in-flight bound and waited for ever, with nothing logged and the pipe RUNNING.
    channel(channels["in"]).put(*range(20))
    clock = ManualClock()
    runner = runner_for(pipe(channels, batch={"size": 2, "window": "0ms"}, max_in_flight=4), clock)
    real_write = runner.target.write
    calls = {"n": 0}

    async def leaky_write(events: Sequence[Event]) -> Sequence[Outcome]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise asyncio.CancelledError()  # e.g. a connection torn down under the client
        return await real_write(events)

    runner.target.write = leaky_write  # type: ignore[method-assign]
    with pytest.raises(FatalError, match="p0"):
        await run_to_end(runner, clock)
    assert runner.state == "FAILED"
    assert runner.tracker.positions() == {}
