"""Pipes with Kafka sources and targets, run in-process by the runner against a real broker."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka_broker import KafkaBroker

from pipes.testing import make_runner, run_pipe

pytestmark = pytest.mark.integration

#: The workload's filter and transform (workload.md), on small hand-made events.
FILTER = [{"value": {"detail-type": ["OrderPlaced"], "detail": {"total": [{"numeric": [">", 100]}]}}}]
TRANSFORM = (
    '{"order": <$.value.detail.order_id>, "customer": <$.value.detail.customer>, '
    '"total": <$.value.detail.total>, "p": <$.partition>, "o": <$.offset>}'
)


def order(i: int) -> dict[str, Any]:
    kind = ("OrderPlaced", "CartUpdated", "OrderPlaced")[i % 3]
    return {
        "detail-type": kind,
        "detail": {"order_id": f"ord-{i:05d}", "customer": f"c{i % 7}", "total": (i * 37) % 250},
    }


def passes(event: dict[str, Any]) -> bool:
    return bool(event["detail-type"] == "OrderPlaced" and event["detail"]["total"] > 100)


def source(kafka: KafkaBroker, topic: str, group: str) -> dict[str, Any]:
    return {
        "type": "kafka",
        "bootstrap_servers": kafka.bootstrap,
        "topics": [topic],
        "group_id": group,
        "starting_position": "earliest",
        "session_timeout": "2s",
        "fetch_max_wait": "100ms",
    }


def kafka_target(kafka: KafkaBroker, topic: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "kafka",
        "bootstrap_servers": kafka.bootstrap,
        "topic": topic,
        "idempotent": False,
        **extra,
    }


async def produce_orders(kafka: KafkaBroker, topic: str, n: int) -> list[tuple[int, int]]:
    values = [orjson.dumps(order(i)) for i in range(n)]
    keys = [f"c{i % 7}".encode() for i in range(n)]
    return await kafka.produce(topic, values, keys=keys)


def last_offsets(produced: list[tuple[int, int]], partitions: int) -> dict[int, int | None]:
    ends: dict[int, int | None] = dict.fromkeys(range(partitions))
    for partition, offset in produced:
        ends[partition] = max(offset + 1, ends[partition] or 0)
    return ends


async def test_kafka_to_kafka_through_filter_and_transform(kafka: KafkaBroker, tmp_path: Path) -> None:
    topic = await kafka.create_topic(partitions=4)
    out = await kafka.create_topic(partitions=2)
    group = kafka.group_id()
    n = 600
    produced = await produce_orders(kafka, topic, n)
    stats = await run_pipe(
        {
            "name": "k2k",
            "source": source(kafka, topic, group),
            "filter": FILTER,
            "transform": {"template": TRANSFORM},
            "target": kafka_target(kafka, out),
            "batch": {"size": 50, "window": "20ms"},
        },
        state_dir=tmp_path,
    )
    expected = {f"ord-{i:05d}": order(i) for i in range(n) if passes(order(i))}
    assert stats.received == n
    assert stats.delivered == len(expected)
    assert stats.filtered == n - len(expected)
    assert stats.failed == 0 and stats.dead_lettered == 0
    records = await kafka.consume_all(out, len(expected))
    assert len(records) == len(expected)
    outputs = {orjson.loads(r.value)["order"]: (r, orjson.loads(r.value)) for r in records}
    assert set(outputs) == set(expected)
    for order_id, (record, value) in outputs.items():
        event = expected[order_id]
        assert value["customer"] == event["detail"]["customer"]
        assert value["total"] == event["detail"]["total"]
        # The source record's key is carried over by default.
        assert record.key == event["detail"]["customer"].encode()
    assert await kafka.committed(group, topic, 4) == last_offsets(produced, 4)


async def test_kafka_to_file_with_values_that_are_not_json(kafka: KafkaBroker, tmp_path: Path) -> None:
    topic = await kafka.create_topic(partitions=1)
    group = kafka.group_id()
    values = [
        orjson.dumps(order(2)),  # OrderPlaced, total 74: filtered out by the pattern
        b"not json at all",
        orjson.dumps(order(5)),  # OrderPlaced, total 185: passes
        b"\xff\xfe\xfd not utf-8",
        b"",
        orjson.dumps(order(8)),  # OrderPlaced, total 46: filtered out
        orjson.dumps(order(11)),  # OrderPlaced, total 157: passes
    ]
    produced = await kafka.produce(topic, values)
    output = tmp_path / "out.jsonl"
    stats = await run_pipe(
        {
            "name": "k2f",
            "source": source(kafka, topic, group),
            "filter": FILTER,
            "transform": {"template": TRANSFORM},
            "target": {"type": "file", "path": str(output)},
        },
        state_dir=tmp_path,
    )
    # A value that is not JSON (or not UTF-8) cannot match a pattern on its
    # fields: it is filtered out, counted, and its offset committed.
    assert (stats.received, stats.delivered, stats.filtered) == (7, 2, 5)
    lines = [orjson.loads(line) for line in output.read_bytes().splitlines()]
    assert [(x["order"], x["o"]) for x in lines] == [("ord-00005", 2), ("ord-00011", 6)]
    assert await kafka.committed(group, topic, 1) == {0: produced[-1][1] + 1}


async def test_values_pass_through_unchanged_without_a_transform(kafka: KafkaBroker, tmp_path: Path) -> None:
    topic = await kafka.create_topic(partitions=1)
    out = await kafka.create_topic(partitions=1)
    values: list[bytes | None] = [b'{"a": 1}', b"text", b"\xff\x00raw", None]
    await kafka.produce(
        topic, values, keys=[b"k", None, b"\x80", b"gone"], headers=[[("h", b"1")], [], [], []]
    )
    stats = await run_pipe(
        {
            "name": "passthrough",
            "source": source(kafka, topic, kafka.group_id()),
            "target": kafka_target(kafka, out),
        },
        state_dir=tmp_path,
    )
    assert stats.delivered == 4
    records = await kafka.consume_all(out, 4)
    assert [(r.key, r.value, list(r.headers)) for r in records] == [
        (b"k", b'{"a": 1}', [("h", b"1")]),  # the bytes as read: not decoded and written again
        (None, b"text", []),
        (b"\x80", b"\xff\x00raw", []),
        (b"gone", None, []),  # a tombstone stays a tombstone
    ]


async def test_missing_target_topic_and_paused_broker_delay_but_lose_nothing(
    kafka: KafkaBroker, tmp_path: Path
) -> None:
    topic = await kafka.create_topic(partitions=2)
    out = kafka.topic_name("late")  # not created: the first writes find no such topic
    group = kafka.group_id()
    runner = make_runner(
        {
            "name": "paused",
            "source": source(kafka, topic, group),
            "target": kafka_target(kafka, out, metadata_timeout="1s"),
            "batch": {"size": 20, "window": "10ms"},
            "retry": {"backoff_initial": "100ms", "backoff_max": "1s"},
            "checkpoint_interval": "200ms",
        },
        once=False,
        state_dir=tmp_path,
    )
    task = asyncio.create_task(runner.run())
    try:
        first = await kafka.produce(topic, [b'{"n": %d}' % i for i in range(100)])
        await wait_for(lambda: runner.stats.delivered >= 100, "first 100 delivered")
        second = await kafka.produce(topic, [b'{"n": %d}' % i for i in range(100, 300)])
        with kafka.paused():
            await asyncio.sleep(3.0)  # the outage itself, not a wait for a condition
        await wait_for(lambda: runner.stats.delivered >= 300, "all 300 delivered", 60)
        await wait_for_committed(kafka, group, topic, last_offsets(first + second, 2))
    finally:
        runner.request_stop()
        await asyncio.wait_for(task, 30)
    records = await kafka.consume_all(out, 300)
    assert sorted({orjson.loads(r.value)["n"] for r in records}) == list(range(300))


async def test_a_frozen_broker_makes_the_pipe_degraded_until_it_answers(
    kafka: KafkaBroker, tmp_path: Path
) -> None:
    # The broker stopped with SIGSTOP: no error, no empty answer, nothing at all.
    topic = await kafka.create_topic(partitions=1)
    out = tmp_path / "out.jsonl"
    runner = make_runner(
        {
            "name": "frozen",
            "source": source(kafka, topic, kafka.group_id()),
            "target": {"type": "file", "path": str(out), "fsync": False},
            "batch": {"size": 20, "window": "10ms"},
            "stall_timeout": "2s",
        },
        once=False,
        state_dir=tmp_path,
    )
    task = asyncio.create_task(runner.run())
    try:
        await kafka.produce(topic, [b'{"n": %d}' % i for i in range(10)])
        await wait_for(lambda: runner.stats.delivered >= 10, "first 10 delivered")
        assert runner.state == "RUNNING"
        with kafka.paused():
            await wait_for(lambda: runner.state == "DEGRADED", "DEGRADED while the broker is frozen")
            reason = runner.status().reason
            assert reason is not None and reason.startswith("source: no answer for"), reason
        await wait_for(lambda: runner.state == "RUNNING", "RUNNING again once it answers", 60)
        assert runner.status().reason is None
        await kafka.produce(topic, [b'{"n": %d}' % i for i in range(10, 20)])
        await wait_for(lambda: runner.stats.delivered >= 20, "the next 10 delivered")
    finally:
        runner.request_stop()
        await asyncio.wait_for(task, 30)


async def wait_for(condition: Any, what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for: {what}"
        await asyncio.sleep(0.05)


async def wait_for_committed(
    kafka: KafkaBroker, group: str, topic: str, expected: dict[int, int | None], timeout_s: float = 30.0
) -> None:
    deadline = time.monotonic() + timeout_s
    while (committed := await kafka.committed(group, topic, len(expected))) != expected:
        assert time.monotonic() < deadline, f"committed {committed}, expected {expected}"
        await asyncio.sleep(0.1)


async def test_a_record_the_target_refuses_is_dead_lettered_and_the_pipe_goes_on(
    kafka: KafkaBroker, tmp_path: Path
) -> None:
    topic = await kafka.create_topic(partitions=1)
    out = await kafka.create_topic(partitions=1)
    group = kafka.group_id()
    values = [b'{"n": 1}', b'{"big": "' + b"x" * 5000 + b'"}', b'{"n": 3}']
    produced = await kafka.produce(topic, values)
    dead = tmp_path / "dlq.jsonl"
    stats = await run_pipe(
        {
            "name": "refused",
            "source": source(kafka, topic, group),
            "target": kafka_target(kafka, out, max_request_size=2000, max_batch_size=2000),
            "dead_letter": {"type": "file", "path": str(dead)},
        },
        state_dir=tmp_path,
    )
    assert (stats.delivered, stats.dead_lettered) == (2, 1)
    records = await kafka.consume_all(out, 2)
    assert [r.value for r in records] == [b'{"n": 1}', b'{"n": 3}']
    (letter,) = [orjson.loads(line) for line in dead.read_bytes().splitlines()]
    assert letter["stage"] == "target"
    assert letter["error"]["type"] == "FatalError"
    assert "max_request_size" in letter["error"]["message"]
    assert letter["record"]["offset"] == produced[1][1]
    assert await kafka.committed(group, topic, 1) == {0: produced[-1][1] + 1}


async def test_a_partition_stuck_on_a_failing_record_is_paused_and_the_others_go_on(
    kafka: KafkaBroker, tmp_path: Path, unique: str
) -> None:
    from pipes.errors import RetryableError
    from pipes.testing import HUB, channel

    topic = await kafka.create_topic(partitions=2)
    await kafka.produce(topic, [b'"poison"', *[b'{"n": %d}' % i for i in range(400)]], partition=0)
    await kafka.produce(topic, [b'{"m": %d}' % i for i in range(200)], partition=1)
    out = channel(f"out-{unique}")
    broken = {"on": True}
    out.fail = lambda e: RetryableError("refused") if e.payload == "poison" and broken["on"] else None
    runner = make_runner(
        {
            "name": "stuck",
            "source": source(kafka, topic, kafka.group_id()),
            "target": {"type": "memory", "channel": f"out-{unique}"},
            "batch": {"size": 10, "window": "10ms"},
            "retry": {"backoff_initial": "50ms", "backoff_max": "200ms", "max_attempts": 1000},
            "max_in_flight": 100,
        },
        once=False,
        state_dir=tmp_path,
    )
    task = asyncio.create_task(runner.run())
    try:
        # Partition 1 is delivered whole while partition 0 waits behind its poison.
        await wait_for(
            lambda: sum(1 for p in out.written if isinstance(p, dict) and "m" in p) == 200, "partition 1"
        )
        assert sum(1 for p in out.written if isinstance(p, dict) and "n" in p) < 400
        broken["on"] = False
        await wait_for(
            lambda: sum(1 for p in out.written if isinstance(p, dict) and "n" in p) == 400, "partition 0"
        )
    finally:
        runner.request_stop()
        await asyncio.wait_for(task, 30)
        HUB.drop(f"out-{unique}")
    assert out.written.count("poison") == 1
