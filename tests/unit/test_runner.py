"""The runner with memory connectors and an injected clock."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from helpers import wait_until
from runner_kit import pipe, run_to_end, runner_for

from pipes.checkpoints import MemoryCheckpointStore
from pipes.clock import ManualClock
from pipes.errors import FatalError, RetryableError
from pipes.events import Event
from pipes.testing import channel


async def test_delivers_bodies_in_order_per_partition(channels: dict[str, str]) -> None:
    src = channel(channels["in"])
    src.put(*range(25), partition="a")
    src.put(*range(100, 112), partition="b")
    clock = ManualClock()
    runner = runner_for(pipe(channels), clock)
    await run_to_end(runner, clock)
    out = channel(channels["out"]).written
    assert [x for x in out if x < 100] == list(range(25))
    assert [x for x in out if x >= 100] == list(range(100, 112))
    assert runner.stats.received == 37 and runner.stats.delivered == 37


async def test_batches_are_cut_by_size(channels: dict[str, str]) -> None:
    channel(channels["in"]).put(*range(25))
    clock = ManualClock()
    runner = runner_for(pipe(channels, batch={"size": 10, "window": "5m"}), clock, once=False)
    task = asyncio.create_task(runner.run())
    out = channel(channels["out"])
    await wait_until(lambda: out.batch_sizes == [10, 10], what="two full batches")
    await wait_until(lambda: clock.sleepers > 1, what="the tail waiting for its window")
    assert out.batch_sizes == [10, 10]  # the last five wait for the window
    await clock.advance(300)
    await wait_until(lambda: out.batch_sizes == [10, 10, 5], what="the tail after the window")
    runner.request_stop()
    await task


async def test_batches_are_cut_by_window(channels: dict[str, str]) -> None:
    src = channel(channels["in"])
    clock = ManualClock()
    runner = runner_for(pipe(channels, batch={"size": 100, "window": "2s"}), clock, once=False)
    task = asyncio.create_task(runner.run())
    out = channel(channels["out"])
    src.put(1, 2, 3)
    await wait_until(lambda: runner.stats.received == 3, what="three received")
    await wait_until(lambda: clock.sleepers > 0, what="the lane waiting on its window")
    await clock.advance(1.0)
    assert out.written == []  # window not over: nothing sent yet
    src.put(4)
    await wait_until(lambda: runner.stats.received == 4, what="fourth received")
    await clock.advance(1.01)
    await wait_until(lambda: out.written == [1, 2, 3, 4], what="the windowed batch")
    assert out.batch_sizes == [4]
    runner.request_stop()
    await task


async def test_filter_and_transform_are_wired(channels: dict[str, str]) -> None:
    channel(channels["in"]).put(
        {"detail-type": "OrderPlaced", "detail": {"total": 150, "id": "a"}},
        {"detail-type": "OrderPlaced", "detail": {"total": 50, "id": "b"}},
        {"detail-type": "CartUpdated", "detail": {"total": 500, "id": "c"}},
        {"detail-type": "OrderPlaced", "detail": {"total": 101, "id": "d"}},
    )
    definition = pipe(
        channels,
        filter=[{"body": {"detail-type": ["OrderPlaced"], "detail": {"total": [{"numeric": [">", 100]}]}}}],
        transform={"template": '{"id": <$.body.detail.id>, "pipe": <aws.pipes.pipe-name>}'},
    )
    clock = ManualClock()
    runner = runner_for(definition, clock)
    await run_to_end(runner, clock)
    assert channel(channels["out"]).written == ['{"id":"a","pipe":"t"}', '{"id":"d","pipe":"t"}']
    assert runner.stats.filtered == 2
    assert runner.stats.delivered == 2


async def test_jmespath_filter_and_projection(channels: dict[str, str]) -> None:
    channel(channels["in"]).put({"n": 1, "tags": ["x"]}, {"n": 2, "tags": []}, {"n": 3, "tags": ["y"]})
    definition = pipe(
        channels,
        filter={"jmespath": "length(body.tags) > `0`"},
        transform={"jmespath": "{n: body.n, first: body.tags[0]}"},
    )
    clock = ManualClock()
    runner = runner_for(definition, clock)
    await run_to_end(runner, clock)
    assert channel(channels["out"]).written == [{"n": 1, "first": "x"}, {"n": 3, "first": "y"}]


async def test_partial_batch_failure_retries_only_the_failed_events(channels: dict[str, str]) -> None:
    channel(channels["in"]).put(*range(6))
    attempts: dict[int, int] = {}

    def fail_odd_once(event: Event) -> Exception | None:
        n = event.payload
        attempts[n] = attempts.get(n, 0) + 1
        if n % 2 and attempts[n] == 1:
            return RetryableError(f"busy {n}")
        return None

    channel(channels["out"]).fail = fail_odd_once
    clock = ManualClock()
    runner = runner_for(pipe(channels), clock)
    await run_to_end(runner, clock)
    assert attempts == {0: 1, 1: 2, 2: 1, 3: 2, 4: 1, 5: 2}
    assert channel(channels["out"]).batch_sizes == [6, 3]
    assert sorted(channel(channels["out"]).written) == list(range(6))
    assert runner.stats.failed == 3 and runner.stats.retried == 3 and runner.stats.delivered == 6


async def test_retries_then_dead_letter_with_the_documented_record(channels: dict[str, str]) -> None:
    channel(channels["in"]).put({"id": 1}, {"id": 2}, {"id": 3})
    channel(channels["out"]).fail = lambda e: RetryableError("target down") if e.payload["id"] == 2 else None
    definition = pipe(channels, dead_letter={"type": "memory", "channel": channels["dlq"]})
    clock = ManualClock()
    runner = runner_for(definition, clock)
    await run_to_end(runner, clock)
    dlq = channel(channels["dlq"]).written
    assert len(dlq) == 1
    record = dlq[0]
    assert set(record) == {
        "pipe",
        "stage",
        "error",
        "attempts",
        "first_attempt_at",
        "last_attempt_at",
        "record",
    }
    assert record["pipe"] == "t"
    assert record["stage"] == "target"
    assert record["error"] == {"type": "RetryableError", "message": "target down"}
    assert record["attempts"] == 3
    assert record["record"] == {"partition": "p0", "index": 1, "body": {"id": 2}}
    assert record["first_attempt_at"] <= record["last_attempt_at"]
    assert channel(channels["out"]).written == [{"id": 1}, {"id": 3}]
    assert runner.stats.dead_lettered == 1
    # Dead-lettered counts as settled: the checkpoint passes it.
    assert runner.tracker.positions() == {"p0": 2}


async def test_fatal_error_goes_to_dead_letter_without_retrying(channels: dict[str, str]) -> None:
    channel(channels["in"]).put("ok", "poison")
    channel(channels["out"]).fail = lambda e: FatalError("rejected") if e.payload == "poison" else None
    definition = pipe(channels, dead_letter={"type": "memory", "channel": channels["dlq"]})
    clock = ManualClock()
    runner = runner_for(definition, clock)
    await run_to_end(runner, clock)
    [record] = channel(channels["dlq"]).written
    assert record["attempts"] == 1 and record["error"]["type"] == "FatalError"
    assert runner.stats.retried == 0


async def test_transform_failure_is_dead_lettered_with_its_stage(channels: dict[str, str]) -> None:
    channel(channels["in"]).put({"a": [1, 2]}, {"a": "text"})
    definition = pipe(
        channels,
        transform={"jmespath": "sum(body.a)"},
        dead_letter={"type": "memory", "channel": channels["dlq"]},
    )
    clock = ManualClock()
    runner = runner_for(definition, clock)
    await run_to_end(runner, clock)
    assert channel(channels["out"]).written == [3]
    [record] = channel(channels["dlq"]).written
    assert record["stage"] == "transform"


async def test_without_dead_letter_the_partition_waits_and_others_proceed(channels: dict[str, str]) -> None:
    src = channel(channels["in"])
    src.put("a1", "a2-poison", "a3", partition="a")
    src.put("b1", "b2", "b3", partition="b")
    out = channel(channels["out"])
    broken = {"on": True}
    out.fail = lambda e: RetryableError("no") if e.payload == "a2-poison" and broken["on"] else None
    definition = pipe(channels, batch={"size": 1, "window": "0ms"}, retry={"max_attempts": 2})
    clock = ManualClock()
    runner = runner_for(definition, clock, once=False)
    task = asyncio.create_task(runner.run())
    await wait_until(lambda: {"b1", "b2", "b3"} <= set(out.written), what="partition b delivered")
    # Far past max_attempts: without a dead letter nothing is dropped and a3 waits behind a2.
    for _ in range(20):
        await clock.advance(40)
    assert "a3" not in out.written
    assert "a2-poison" not in out.written
    assert runner.stats.failed > 2
    assert runner.tracker.positions().get("a") == 0
    broken["on"] = False
    await clock.advance(40)
    await wait_until(lambda: out.written.count("a3") == 1, what="a3 after the poison is fixed")
    assert [x for x in out.written if x.startswith("a")] == ["a1", "a2-poison", "a3"]
    runner.request_stop()
    await task
    assert runner.tracker.positions() == {"a": 2, "b": 2}


async def test_checkpoint_is_the_contiguous_settled_prefix(channels: dict[str, str]) -> None:
    channel(channels["in"]).put(*range(5))
    out = channel(channels["out"])
    broken = {"on": True}
    out.fail = lambda e: RetryableError("later") if e.payload == 1 and broken["on"] else None
    store = MemoryCheckpointStore()
    clock = ManualClock()
    runner = runner_for(pipe(channels, retry={"max_attempts": 100}), clock, store=store, once=False)
    task = asyncio.create_task(runner.run())
    await wait_until(lambda: sorted(out.written) == [0, 2, 3, 4], what="all but event 1")
    await wait_until(lambda: store.saved.get("t") == {"p0": 0}, what="checkpoint at 0")
    assert runner.tracker.positions() == {"p0": 0}  # 2..4 are settled but 1 is not
    broken["on"] = False
    await clock.advance(5)
    await wait_until(lambda: store.saved.get("t") == {"p0": 4}, what="checkpoint jumps to 4")
    runner.request_stop()
    await task


async def test_resumes_from_checkpoint_without_duplicates(channels: dict[str, str]) -> None:
    channel(channels["in"]).put(*range(10))
    store = MemoryCheckpointStore()
    clock = ManualClock()
    await run_to_end(runner_for(pipe(channels), clock, store=store), clock)
    channel(channels["in"]).put(10, 11)
    await run_to_end(runner_for(pipe(channels), clock, store=store), clock)
    assert channel(channels["out"]).written == list(range(12))


async def test_backpressure_bounds_in_flight_events(channels: dict[str, str]) -> None:
    channel(channels["in"]).put(*range(1000))
    out = channel(channels["out"])
    out.hold = asyncio.Event()
    definition = pipe(channels, batch={"size": 10, "window": "0ms"}, concurrency=1, max_in_flight=30)
    clock = ManualClock()
    runner = runner_for(definition, clock, once=False)
    task = asyncio.create_task(runner.run())
    await wait_until(lambda: runner.stats.received >= 30, what="the bound filled")
    for _ in range(50):
        await asyncio.sleep(0)
    assert runner.stats.received == 30
    assert runner.status().in_flight == 30
    peak = 0
    out.hold.set()
    while len(out.written) < 1000:
        peak = max(peak, runner.status().in_flight)
        await asyncio.sleep(0)
    assert peak <= 30
    runner.request_stop()
    await task


async def test_drain_on_stop_delivers_every_event_already_pulled(channels: dict[str, str]) -> None:
    channel(channels["in"]).put(*range(200))
    out = channel(channels["out"])
    out.hold = asyncio.Event()
    store = MemoryCheckpointStore()
    clock = ManualClock()
    runner = runner_for(
        pipe(channels, batch={"size": 10, "window": "0ms"}, max_in_flight=50), clock, store=store, once=False
    )
    task = asyncio.create_task(runner.run())
    await wait_until(lambda: runner.stats.received == 50, what="pulled up to the bound")
    runner.request_stop()
    out.hold.set()
    await task
    assert out.written == list(range(50))
    assert store.saved["t"] == {"p0": 49}
    assert runner.state == "STOPPED"


async def test_enrichment_replaces_merges_drops_and_fans_out(channels: dict[str, str]) -> None:
    channel(channels["in"]).put({"id": 1}, {"id": 2}, {"id": 3})

    def enrich(record: dict[str, Any]) -> list[Any]:
        n = record["body"]["id"]
        if n == 2:
            return []
        if n == 3:
            return [{"n": 3, "part": 1}, {"n": 3, "part": 2}]
        return [{"n": n, "looked": "up"}]

    channel(channels["enrich"]).enrich = enrich
    replace = pipe(channels, enrichment={"type": "memory", "channel": channels["enrich"]})
    clock = ManualClock()
    runner = runner_for(replace, clock)
    await run_to_end(runner, clock)
    assert channel(channels["out"]).written == [
        {"n": 1, "looked": "up"},
        {"n": 3, "part": 1},
        {"n": 3, "part": 2},
    ]
    assert runner.stats.dropped == 1
    assert runner.tracker.positions() == {"p0": 2}


async def test_enrichment_into_merges_under_a_key(channels: dict[str, str]) -> None:
    channel(channels["in"]).put({"id": 7})
    channel(channels["enrich"]).enrich = lambda record: [{"tier": "gold"}]
    definition = pipe(
        channels,
        enrichment={"type": "memory", "channel": channels["enrich"], "into": "customer"},
        transform={"template": '{"id": <$.body.id>, "tier": <$.customer.tier>}'},
    )
    clock = ManualClock()
    runner = runner_for(definition, clock)
    await run_to_end(runner, clock)
    assert channel(channels["out"]).written == ['{"id":7,"tier":"gold"}']


async def test_source_fault_goes_to_dead_letter_with_stage_source(channels: dict[str, str]) -> None:
    class FaultySource:
        pass

    channel(channels["in"]).put("x")
    definition = pipe(channels, dead_letter={"type": "memory", "channel": channels["dlq"]})
    clock = ManualClock()
    runner = runner_for(definition, clock)
    original_read = runner.source.read

    async def read_with_fault(max_events: int, timeout_s: float) -> list[Event]:
        events = await original_read(max_events, timeout_s)
        for event in events:
            event.fault = FatalError("delivered 9 times, more than max_deliveries=5")
        return events

    runner.source.read = read_with_fault  # type: ignore[method-assign]
    await run_to_end(runner, clock)
    [record] = channel(channels["dlq"]).written
    assert record["stage"] == "source"
    assert "max_deliveries" in record["error"]["message"]
    assert channel(channels["out"]).written == []


async def test_a_source_that_cannot_start_is_retried_until_it_can(channels: dict[str, str]) -> None:
    channel(channels["in"]).put(1)
    clock = ManualClock()
    runner = runner_for(pipe(channels), clock)
    calls = {"n": 0}
    original_start = runner.source.start

    async def flaky_start(context: Any) -> None:
        calls["n"] += 1
        if calls["n"] < 3:
            raise RetryableError("connection refused")
        await original_start(context)

    runner.source.start = flaky_start  # type: ignore[method-assign]
    task = asyncio.create_task(runner.run())
    await wait_until(lambda: runner.state == "FAILED", what="FAILED while unreachable")
    assert runner.last_error == "RetryableError: connection refused"
    while not task.done():
        await clock.advance(1)
        await asyncio.sleep(0.001)
    await task
    assert channel(channels["out"]).written == [1]
    assert calls["n"] == 3


async def test_a_fatal_start_error_fails_the_pipe(channels: dict[str, str]) -> None:
    clock = ManualClock()
    runner = runner_for(pipe(channels), clock)

    async def refuse(context: Any) -> None:
        raise FatalError("kafka target: the broker refused an idempotent producer; set idempotent: false")

    runner.target.start = refuse  # type: ignore[method-assign]
    with pytest.raises(FatalError, match="idempotent"):
        await runner.run()
    assert runner.state == "FAILED"


async def test_a_drain_keeps_backing_off_and_gives_up_at_its_deadline(channels: dict[str, str]) -> None:
    channel(channels["in"]).put("stuck")
    channel(channels["out"]).fail = lambda e: RetryableError("down")
    clock = ManualClock()
    store = MemoryCheckpointStore()
    runner = runner_for(
        pipe(channels, retry={"max_attempts": 1000, "backoff_initial": "1s", "backoff_max": "1s"}),
        clock,
        once=False,
        store=store,
        drain_timeout_s=5.0,
    )
    task = asyncio.create_task(runner.run())
    await wait_until(lambda: runner.stats.failed >= 1, what="a first failure")
    runner.request_stop()
    for _ in range(8):
        await clock.advance(1.0)
        await asyncio.sleep(0.01)
    await wait_until(task.done, what="the drain to give up at its deadline")
    await task
    assert runner.stats.failed <= 40  # backed off (full jitter under 1s) over 8s, never spun
    assert store.saved.get("t", {}) == {}  # the stuck event was abandoned, not committed
    assert runner.last_error == "target: RetryableError: down"
    assert runner.state == "STOPPED"


async def test_once_without_dead_letter_fails_the_pipe_when_an_event_gives_up(
    channels: dict[str, str],
) -> None:
    channel(channels["in"]).put("ok", "stuck", "after")
    channel(channels["out"]).fail = lambda e: RetryableError("down") if e.payload == "stuck" else None
    store = MemoryCheckpointStore()
    clock = ManualClock()
    runner = runner_for(pipe(channels, batch={"size": 1, "window": "0ms"}), clock, store=store)
    with pytest.raises(
        FatalError, match=r"target failed for good at p0@1 after 3 attempts and there is no dead_letter"
    ):
        await run_to_end(runner, clock)
    assert runner.state == "FAILED"
    assert channel(channels["out"]).written == ["ok"]
    assert store.saved["t"] == {"p0": 0}  # the stuck event is not committed: the next run retries it


async def test_a_held_up_partition_is_paused_so_the_others_go_on(channels: dict[str, str]) -> None:
    # Partition a is stuck on a failing event (no dead letter) and has much more to
    # read; without pausing it, its events would fill the in-flight bound and b
    # would never be read.
    src = channel(channels["in"])
    src.put("a-poison", *[f"a{i}" for i in range(200)], partition="a")
    src.put(*[f"b{i}" for i in range(100)], partition="b")
    out = channel(channels["out"])
    broken = {"on": True}
    out.fail = lambda e: RetryableError("no") if e.payload == "a-poison" and broken["on"] else None
    definition = pipe(channels, batch={"size": 5, "window": "0ms"}, max_in_flight=40, concurrency=2)
    clock = ManualClock()
    runner = runner_for(definition, clock, once=False)
    task = asyncio.create_task(runner.run())
    for _ in range(2000):  # bounded: without pausing, b is never read
        if sum(1 for x in out.written if x.startswith("b")) == 100:
            break
        await clock.advance(0.2)
        await asyncio.sleep(0.001)
    assert sum(1 for x in out.written if x.startswith("b")) == 100, "partition b starved"
    # a waits behind its poison; only the poison's batch-mates got through.
    assert [x for x in out.written if x.startswith("a")] == ["a0", "a1", "a2", "a3"]
    assert runner.source.paused == {"a"}  # type: ignore[attr-defined]
    broken["on"] = False
    for _ in range(2000):
        if len([x for x in out.written if x.startswith("a")]) == 201:
            break
        await clock.advance(1.0)
        await asyncio.sleep(0.001)
    assert [x for x in out.written if x.startswith("a")] == [
        *[f"a{i}" for i in range(4)],
        "a-poison",
        *[f"a{i}" for i in range(4, 200)],
    ]
    assert runner.source.paused == set()  # type: ignore[attr-defined]
    runner.request_stop()
    await task
