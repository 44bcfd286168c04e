"""The job's policies that need no worker: failure tolerance, and delivery to a result target."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from pipes.config import BoundConnector
from pipes.connector import NoOptions, Target
from pipes.errors import FatalError, RetryableError
from pipes.events import Event, Outcome
from pipes.map.executors import Executor
from pipes.map.executors import Outcome as TaskOutcome
from pipes.map.items import Item
from pipes.map.job import MapJob, MapOptions
from pipes.map.loader import load_map_text
from pipes.map.model import MapRetryConfig
from pipes.map.reduce import Partial
from pipes.map.results import deliver_results
from pipes.map.state import Failure, RunState
from pipes.map.worker import JobSpec, Task, run_task

MAP = "items: x/*.csv\nitem_reader: {format: csv}\nreduce: {aggregations: {n: count}}\n"


def job_with(extra: str, tmp_path: Any) -> MapJob:
    result = load_map_text(MAP + extra, "m.yaml", env={})
    assert result.definition is not None, result.errors
    return MapJob(result.definition, MapOptions(workers=1, state_dir=str(tmp_path)))


@pytest.mark.parametrize(
    ("extra", "failed", "exceeded"),
    [
        ("", 0, False),
        ("", 1, True),  # neither threshold set: no failure is tolerated (as in AWS)
        ("tolerated_failure_count: 2\n", 2, False),
        ("tolerated_failure_count: 2\n", 3, True),
        ("tolerated_failure_percentage: 10\n", 10, False),  # 10 of 100 items is not more than 10%
        ("tolerated_failure_percentage: 10\n", 11, True),
        ("tolerated_failure_percentage: 50\ntolerated_failure_count: 5\n", 6, True),  # either one
    ],
)
def test_failure_tolerance(extra: str, failed: int, exceeded: bool, tmp_path: Any) -> None:
    job = job_with(extra, tmp_path)
    items = [Item(i, f"{i}", 1) for i in range(100)]
    state = RunState.new("m", "fp", items, Partial([{}]))
    state.failed = {i: Failure("bad", 1) for i in range(failed)}
    assert job._exceeded(state) is exceeded


class FlakyTarget(Target):
    """Refuses each event on its first attempt (retryable), and events whose n is 13 for good."""

    seen: list[Any] = []
    attempts: dict[int, int] = {}

    async def write(self, events: Sequence[Event]) -> Sequence[Outcome]:
        outcomes: list[Outcome] = []
        for event in events:
            n = event.payload["n"]
            self.attempts[n] = self.attempts.get(n, 0) + 1
            if n == 13:
                outcomes.append(FatalError("thirteen is refused"))
            elif self.attempts[n] == 1:
                outcomes.append(RetryableError("busy"))
            else:
                self.seen.append(event.payload)
                outcomes.append(None)
        return outcomes


def bound() -> BoundConnector:
    return BoundConnector("flaky", "target", FlakyTarget, NoOptions())


async def test_result_records_are_retried_until_delivered() -> None:
    FlakyTarget.seen, FlakyTarget.attempts = [], {}
    records = [{"n": i} for i in range(250) if i != 13]
    retry = MapRetryConfig(backoff_initial=0.001, backoff_max=0.001)
    assert await deliver_results(bound(), records, "m", "state", retry) is None
    assert sorted(r["n"] for r in FlakyTarget.seen) == [r["n"] for r in records]
    assert set(FlakyTarget.attempts.values()) == {2}


async def test_a_refused_or_undeliverable_result_is_one_line() -> None:
    FlakyTarget.seen, FlakyTarget.attempts = [], {}
    retry = MapRetryConfig(backoff_initial=0.001, backoff_max=0.001)
    error = await deliver_results(bound(), [{"n": 13}], "m", "state", retry)
    assert error == "result_target (flaky): 1 result records rejected: thirteen is refused"
    error = await deliver_results(bound(), [{"n": 1}], "m", "state", MapRetryConfig(max_attempts=1))
    assert error == "result_target (flaky): 1 result records not delivered after 1 attempts: busy"


class InlineExecutor(Executor):
    """Runs tasks in this process, one per wait, and records how many were in flight at most."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.description = "inline"
        self.queued: list[tuple[JobSpec, Task]] = []
        self.most_in_flight = 0

    def submit(self, spec: JobSpec, task: Task) -> None:
        self.queued.append((spec, task))
        self.most_in_flight = max(self.most_in_flight, len(self.queued))

    def wait(self, timeout_s: float) -> list[TaskOutcome]:
        if not self.queued:
            return []
        spec, task = self.queued.pop(0)
        return [(task, run_task(spec, task))]

    def close(self, cancel: bool) -> None:
        self.queued.clear()


@pytest.mark.parametrize(("max_concurrency", "most"), [("max_concurrency: 3\n", 3), ("", 8)])
def test_max_concurrency_bounds_the_tasks_in_flight(
    max_concurrency: str, most: int, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(20):
        (tmp_path / f"{i:02}.txt").write_text(f"{i}\n")
    text = "items: '*.txt'\nitem_reader: {format: text}\nitem_batcher: {max_items: 1}\n"
    text += (
        "reduce: {aggregations: {n: count}}\n"
        + max_concurrency
        + f"result_writer: {{path: '{tmp_path}/out'}}\n"
    )
    definition = load_map_text(text, "m.yaml", env={}, cwd=str(tmp_path)).definition
    assert definition is not None
    executor = InlineExecutor(workers=4)  # default: two tasks per worker
    monkeypatch.setattr("pipes.map.job.make_executor", lambda name, workers: executor)
    options = MapOptions(workers=4, state_dir=str(tmp_path / "state"))
    summary = MapJob(definition, options, cwd=str(tmp_path)).run()
    assert summary["status"] == "SUCCEEDED"
    assert summary["items"]["succeeded"] == 20
    assert executor.most_in_flight == most
