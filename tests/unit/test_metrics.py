"""Metric values equal the events that went through, by kind and by stage, across restarts."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from helpers import wait_until

from connectors.memory import HUB
from pipes.checkpoints import MemoryCheckpointStore
from pipes.config import load_paths
from pipes.daemon import Daemon
from pipes.errors import FatalError, RetryableError
from pipes.events import Event
from pipes.metrics import DaemonMetrics, PipeProbe


def pipe_yaml(tag: str, extra: str = "") -> str:
    return f"""
name: counted
source: {{type: memory, channel: in-{tag}}}
filter:
  - body: {{keep: [true]}}
enrichment: {{type: memory, channel: enrich-{tag}}}
target: {{type: memory, channel: out-{tag}}}
dead_letter: {{type: memory, channel: dlq-{tag}}}
batch: {{size: 16, window: 2ms}}
retry: {{backoff_initial: 1ms, backoff_max: 2ms, max_attempts: 5}}
checkpoint_interval: 20ms
{extra}"""


def expected(numbers: range) -> dict[str, int]:
    kept = [n for n in numbers if n % 4 != 0]
    enriched = [n for n in kept if n % 3 != 0]
    fatal = [n for n in enriched if n % 7 == 0]
    retryable = [n for n in enriched if n % 7 != 0 and n % 5 == 0]
    return {
        "received": len(numbers),
        "filtered": len(numbers) - len(kept),
        "dropped": len(kept) - len(enriched),
        "delivered": len(enriched) - len(fatal),
        "dead_lettered": len(fatal),
        "failed_target": len(fatal) + len(retryable),
        "retried": len(retryable),
    }


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    tag = uuid.uuid4().hex[:8]
    attempted: set[int] = set()

    def enrich(record: dict[str, Any]) -> list[Any]:
        return [] if record["body"]["n"] % 3 == 0 else [record]

    def fail(event: Event) -> Exception | None:
        n = event.record["body"]["n"]
        if n % 7 == 0:
            return FatalError(f"order {n} is rejected")
        if n % 5 == 0 and n not in attempted:
            attempted.add(n)
            return RetryableError(f"order {n}: try again")
        return None

    HUB.channel(f"enrich-{tag}").enrich = enrich
    HUB.channel(f"out-{tag}").fail = fail
    path = tmp_path / "counted.yaml"
    path.write_text(pipe_yaml(tag))
    definitions = [d for r in load_paths([path]) for d in r.pipes]
    daemon = Daemon(definitions, store=MemoryCheckpointStore(), paths=[str(path)], drain_timeout_s=5)
    task = asyncio.create_task(daemon.run())
    await wait_until(lambda: daemon.pipes["counted"].state == "RUNNING", what="running")
    yield {"daemon": daemon, "tag": tag, "path": path}
    daemon.request_stop()
    await asyncio.wait_for(task, 10)
    for role in ("in", "out", "enrich", "dlq"):
        HUB.drop(f"{role}-{tag}")


def values(metrics: DaemonMetrics) -> dict[str, float | None]:
    v = metrics.value
    return {
        "received": v("pipes_events_received_total", pipe="counted"),
        "filtered": v("pipes_events_filtered_total", pipe="counted"),
        "dropped": v("pipes_events_dropped_total", pipe="counted"),
        "delivered": v("pipes_events_delivered_total", pipe="counted"),
        "dead_lettered": v("pipes_events_dead_lettered_total", pipe="counted"),
        "failed_target": v("pipes_events_failed_total", pipe="counted", stage="target"),
        "retried": v("pipes_events_retried_total", pipe="counted"),
    }


async def settle(daemon: Daemon, tag: str, numbers: range) -> None:
    want = expected(numbers)
    done = want["delivered"]
    await wait_until(lambda: len(HUB.channel(f"out-{tag}").written) == done, what=f"{done} delivered")
    await wait_until(
        lambda: len(HUB.channel(f"dlq-{tag}").written) == want["dead_lettered"], what="dead letters"
    )
    runner = daemon.pipes["counted"].runner
    assert runner is not None
    await wait_until(lambda: runner.status().in_flight == 0, what="all settled")


async def test_counters_equal_the_events_that_went_through(setup: dict[str, Any]) -> None:
    daemon: Daemon = setup["daemon"]
    tag: str = setup["tag"]
    numbers = range(400)
    HUB.channel(f"in-{tag}").put(*({"n": n, "keep": n % 4 != 0} for n in numbers))
    await settle(daemon, tag, numbers)
    want = expected(numbers)
    assert values(daemon.metrics) == {k: float(n) for k, n in want.items()}
    # The API's counters and the metrics tell the same story.
    counters = daemon.pipes["counted"].counters()
    assert counters["received"] == want["received"] and counters["delivered"] == want["delivered"]
    assert counters["failed_by_stage"] == {"target": want["failed_target"]}
    for stage in ("source", "filter", "enrichment", "transform"):
        assert daemon.metrics.value("pipes_events_failed_total", pipe="counted", stage=stage) == 0.0
    batches = daemon.metrics.value("pipes_batch_duration_seconds_count", pipe="counted")
    assert batches is not None and batches >= 400 / 16
    for stage in ("filter", "enrichment", "target"):
        count = daemon.metrics.value("pipes_stage_duration_seconds_count", pipe="counted", stage=stage)
        assert count is not None and count >= 1, stage
    assert daemon.metrics.value("pipes_pipe_state", pipe="counted", state="RUNNING") == 1.0
    assert daemon.metrics.value("pipes_pipe_state", pipe="counted", state="FAILED") == 0.0
    assert daemon.metrics.value("pipes_in_flight_events", pipe="counted") == 0.0
    assert daemon.metrics.value("pipes_source_lag", pipe="counted", partition="p0") == 0.0


async def test_a_restarted_pipe_keeps_counting_on_the_same_series(setup: dict[str, Any]) -> None:
    daemon: Daemon = setup["daemon"]
    tag: str = setup["tag"]
    first = range(200)
    HUB.channel(f"in-{tag}").put(*({"n": n, "keep": n % 4 != 0} for n in first))
    await settle(daemon, tag, first)
    setup["path"].write_text(pipe_yaml(tag, extra="concurrency: 2\n"))
    report = await daemon.reload()
    assert report.restarted == ["counted"]
    await wait_until(lambda: daemon.pipes["counted"].state == "RUNNING", what="running again")
    both = range(300)
    HUB.channel(f"in-{tag}").put(*({"n": n, "keep": n % 4 != 0} for n in range(200, 300)))
    await settle(daemon, tag, both)
    assert values(daemon.metrics) == {k: float(n) for k, n in expected(both).items()}
    assert daemon.pipes["counted"].counters()["delivered"] == expected(both)["delivered"]


async def test_stopped_pipe_state_and_a_removed_pipe_leaves_no_series(setup: dict[str, Any]) -> None:
    daemon: Daemon = setup["daemon"]
    await daemon.stop_pipe("counted")
    assert daemon.metrics.value("pipes_pipe_state", pipe="counted", state="STOPPED") == 1.0
    assert daemon.metrics.value("pipes_pipe_state", pipe="counted", state="RUNNING") == 0.0
    setup["path"].unlink()
    report = await daemon.reload()
    assert report.removed == ["counted"]
    assert daemon.metrics.value("pipes_events_received_total", pipe="counted") is None
    assert daemon.metrics.value("pipes_pipe_state", pipe="counted", state="STOPPED") is None


def test_registries_are_per_daemon() -> None:
    a, b = DaemonMetrics(), DaemonMetrics(lambda: [PipeProbe("p", "FAILED", 3, {"0": 7})])
    a.observer("p").events("received", 5)
    b.observer("p").events("received", 2)
    b.observer("p").events("failed", 1, "enrichment")
    b.observer("p").duration("batch", 0.01)
    assert a.value("pipes_events_received_total", pipe="p") == 5.0
    assert b.value("pipes_events_received_total", pipe="p") == 2.0
    assert b.value("pipes_events_failed_total", pipe="p", stage="enrichment") == 1.0
    assert b.value("pipes_pipe_state", pipe="p", state="FAILED") == 1.0
    assert b.value("pipes_in_flight_events", pipe="p") == 3.0
    assert b.value("pipes_source_lag", pipe="p", partition="0") == 7.0
    assert b.value("pipes_batch_duration_seconds_count", pipe="p") == 1.0
    text = b.render().decode()
    assert 'pipes_events_received_total{pipe="p"} 2.0' in text
