"""Replay from a time on real brokers, through a running daemon, while another pipe runs on.

10,000 events with known times went through a pipe; ``POST /pipes/NAME/replay``
with a time redelivers exactly those stamped at or after it: per partition by
record timestamp on Kafka, by entry id on a Redis stream (ids are times).
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis.asyncio as redis
from aiohttp.test_utils import TestClient, TestServer
from aiokafka import AIOKafkaProducer
from helpers import wait_until
from kafka_broker import KafkaBroker

from connectors.memory import HUB
from pipes.admin import make_app
from pipes.checkpoints import FileCheckpointStore, MemoryCheckpointStore
from pipes.clock import iso_utc
from pipes.config import load_definition, load_paths
from pipes.daemon import Daemon
from pipes.replay import ReplayRefused, parse_point, replay

pytestmark = pytest.mark.integration

EVENTS = 10_000
BASE_MS = 1_700_000_000_000


class Running:
    """A daemon with the replayed pipe and a steady one beside it, and its admin API."""

    def __init__(self, daemon: Daemon, client: TestClient[Any, Any], out: Path, steady: str) -> None:
        self.daemon = daemon
        self.client = client
        self.out = out
        self.steady = steady

    def lines(self) -> list[dict[str, Any]]:
        if not self.out.exists():
            return []
        data = self.out.read_bytes()
        complete = data[: data.rfind(b"\n") + 1]  # a line being written is not read yet
        return [orjson.loads(line) for line in complete.splitlines()]

    def steady_count(self) -> int:
        return len(HUB.channel(self.steady).written)


@pytest.fixture
async def running(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    started: list[tuple[Daemon, asyncio.Task[None], TestClient[Any, Any], str]] = []

    async def start(replayed: dict[str, Any]) -> Running:
        out = tmp_path / "out.jsonl"
        steady = f"steady-{tmp_path.name}"
        replayed = {
            **replayed,
            "name": "reporting",
            "target": {"type": "file", "path": str(out), "fsync": False},
            "batch": {"size": 500, "window": "20ms"},
            "checkpoint_interval": "50ms",
        }
        other = {
            "name": "steady",
            "source": {"type": "generator", "count": None, "rate": 1000},
            "target": {"type": "memory", "channel": steady},
            "batch": {"size": 50, "window": "10ms"},
        }
        (tmp_path / "pipes").mkdir()
        for definition in (replayed, other):
            (tmp_path / "pipes" / f"{definition['name']}.yaml").write_text(json.dumps(definition))
        definitions = [d for r in load_paths([tmp_path / "pipes"]) for d in r.pipes]
        daemon = Daemon(
            definitions,
            store=FileCheckpointStore(tmp_path / "state" / "checkpoints"),
            state_dir=str(tmp_path),
        )
        task = asyncio.create_task(daemon.run())
        client = TestClient(TestServer(make_app(daemon)))
        await client.start_server()
        started.append((daemon, task, client, steady))
        return Running(daemon, client, out, steady)

    yield start
    for daemon, task, client, steady in started:
        await client.close()
        daemon.request_stop()
        await asyncio.wait_for(task, 30)
        HUB.drop(steady)


async def replay_while_steady_runs(run: Running, body: dict[str, Any]) -> dict[str, Any]:
    """POST the replay; the steady pipe keeps its runner and goes on delivering meanwhile."""
    steady = run.daemon.pipes["steady"].runner
    await wait_until(lambda: run.steady_count() > 0, timeout=30, what="the steady pipe delivering")
    before = run.steady_count()
    answer = await run.client.post("/pipes/reporting/replay", json=body)
    assert answer.status == 200, await answer.text()
    await wait_until(lambda: run.steady_count() > before, timeout=30, what="the steady pipe still delivering")
    assert run.daemon.pipes["steady"].runner is steady and run.daemon.pipes["steady"].state == "RUNNING"
    result: dict[str, Any] = await answer.json()
    return result


async def test_kafka_replay_from_a_time_per_partition(
    kafka: KafkaBroker, running: Any, tmp_path: Path
) -> None:
    topic = await kafka.create_topic(partitions=2)
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap, linger_ms=5)
    await producer.start()
    try:
        sent = [
            await producer.send(topic, b'{"i": %d}' % i, partition=i % 2, timestamp_ms=BASE_MS + 10 * i)
            for i in range(EVENTS)
        ]
        metadata = await asyncio.gather(*sent)
    finally:
        await producer.stop()
    offset_of = {i: (md.partition, md.offset) for i, md in enumerate(metadata)}
    run = await running(
        {
            "source": {
                "type": "kafka",
                "bootstrap_servers": kafka.bootstrap,
                "topics": [topic],
                "group_id": kafka.group_id(),
                "starting_position": "earliest",
                "fetch_max_wait": "50ms",
                # Tansu forgets a member that left only when its session times out.
                "session_timeout": "2s",
            },
            "transform": {
                "template": '{"i": <$.value.i>, "p": <$.partition>, "o": <$.offset>, "t": <$.timestamp>}'
            },
        }
    )
    await wait_until(lambda: len(run.lines()) >= EVENTS, timeout=120, what="10,000 delivered")
    ends = {f"{topic}-0": EVENTS // 2 - 1, f"{topic}-1": EVENTS // 2 - 1}
    await wait_until(
        lambda: run.daemon.pipes["reporting"].positions() == ends, timeout=30, what="all settled"
    )

    at_ms = BASE_MS + 10 * 7000 + 5  # 7001 and later are stamped at or after it
    answer = await replay_while_steady_runs(run, {"from": iso_utc(at_ms / 1000)})
    expected = [i for i in range(EVENTS) if BASE_MS + 10 * i >= at_ms]
    first = {p: min(offset_of[i][1] for i in expected if offset_of[i][0] == p) for p in (0, 1)}
    moves = {m["partition"]: m for m in answer["partitions"]}
    for p in (0, 1):
        move = moves[f"{topic}-{p}"]
        assert (move["old"], move["new"]) == (EVENTS // 2 - 1, first[p] - 1), move
        assert move["events"] == EVENTS // 2 - first[p]

    total = EVENTS + len(expected)
    await wait_until(lambda: len(run.lines()) >= total, timeout=60, what="the replayed events")
    await wait_until(
        lambda: run.daemon.pipes["reporting"].positions() == ends, timeout=30, what="settled again"
    )
    lines = run.lines()
    assert len(lines) == total, "nothing more than the replayed events"
    again = lines[EVENTS:]
    assert Counter(line["i"] for line in again) == Counter(expected)
    assert all(line["t"] >= at_ms for line in again)

    # A window: from one time up to (not including) another; the pipe stops there.
    window = await replay_while_steady_runs(
        run, {"from": iso_utc((BASE_MS + 10 * 1000) / 1000), "to": iso_utc((BASE_MS + 10 * 1100) / 1000)}
    )
    assert window["stops_at_to"] is True
    await wait_until(
        lambda: run.daemon.pipes["reporting"].state == "STOPPED", timeout=60, what="stopped at --to"
    )
    assert Counter(line["i"] for line in run.lines()[total:]) == Counter(range(1000, 1100))


async def test_redis_stream_replay_from_a_time_by_entry_id(
    redis_url: str, running: Any, tmp_path: Path
) -> None:
    stream = f"replay-{tmp_path.name}"
    client = redis.Redis.from_url(redis_url, protocol=2)
    try:
        async with client.pipeline(transaction=False) as pipe:
            for i in range(EVENTS):
                pipe.xadd(stream, {"data": b'{"i": %d}' % i}, id=f"{BASE_MS + i}-0")
            await pipe.execute()
    finally:
        await client.aclose()
    run = await running(
        {
            "source": {
                "type": "redis_stream",
                "url": redis_url,
                "stream": stream,
                "group": "reporting",
                "consumer": "c1",
                "starting_position": "earliest",
                "block": "50ms",
            },
            "transform": {"template": '{"i": <$.body.i>, "id": <$.id>}'},
        }
    )
    await wait_until(lambda: len(run.lines()) >= EVENTS, timeout=120, what="10,000 delivered")
    last = f"{BASE_MS + EVENTS - 1}-0"
    await wait_until(
        lambda: run.daemon.pipes["reporting"].positions() == {stream: last},
        timeout=30,
        what="all acknowledged",
    )

    at_ms = BASE_MS + 7000
    answer = await replay_while_steady_runs(run, {"from": iso_utc(at_ms / 1000)})
    (move,) = answer["partitions"]
    assert (move["partition"], move["old"], move["new"]) == (stream, last, f"{at_ms - 1}-0")

    await wait_until(lambda: len(run.lines()) >= EVENTS + 3000, timeout=60, what="the replayed entries")
    await wait_until(
        lambda: run.daemon.pipes["reporting"].positions() == {stream: last},
        timeout=30,
        what="acknowledged again",
    )
    lines = run.lines()
    assert len(lines) == EVENTS + 3000
    assert Counter(line["i"] for line in lines[EVENTS:]) == Counter(range(7000, EVENTS))


# ---------------------------------------------------------------------- moving forward needs --force


async def test_kafka_replay_forward_past_unsettled_offsets_needs_force(kafka: KafkaBroker) -> None:
    topic = await kafka.create_topic(partitions=1)
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap)
    await producer.start()
    try:
        for i in range(10):
            await producer.send_and_wait(topic, b'{"i": %d}' % i, partition=0)
    finally:
        await producer.stop()
    definition = load_definition(
        {
            "name": "stopped",
            "source": {
                "type": "kafka",
                "bootstrap_servers": kafka.bootstrap,
                "topics": [topic],
                "group_id": kafka.group_id(),
                "starting_position": "earliest",
            },
            "target": {"type": "stdout"},
        }
    )
    store = MemoryCheckpointStore()
    # The group never committed: offsets 0..4 were never settled, and moving to 5 would skip them.
    with pytest.raises(ReplayRefused, match="--force") as refused:
        await replay(definition, store, parse_point("5", 0))
    (move,) = refused.value.moves
    assert (move.old, move.new, move.events, move.forward) == (None, 4, -5, True)
    (moved,) = await replay(definition, store, parse_point("5", 0), force=True)
    assert (moved.old, moved.new) == (None, 4)
    # Committed at 5 now: back to the beginning is no skip; on to 8 is one (5..7).
    (back,) = await replay(definition, store, parse_point("beginning", 0))
    assert (back.old, back.new, back.events, back.forward) == (4, None, 5, False)
    await replay(definition, store, parse_point("5", 0), force=True)
    with pytest.raises(ReplayRefused, match=r"\(3 events\)"):
        await replay(definition, store, parse_point(f"{topic}-0=8", 0))


async def test_redis_stream_replay_forward_past_undelivered_entries_needs_force(
    redis_url: str, tmp_path: Path
) -> None:
    stream = f"forward-{tmp_path.name}"
    client = redis.Redis.from_url(redis_url, protocol=2)
    try:
        for i in range(10):
            await client.xadd(stream, {"data": b'{"i": %d}' % i}, id=f"{BASE_MS + i}-0")
        definition = load_definition(
            {
                "name": "stopped",
                "source": {"type": "redis_stream", "url": redis_url, "stream": stream, "group": "g"},
                "target": {"type": "stdout"},
            }
        )
        store = MemoryCheckpointStore()
        start = parse_point(f"{BASE_MS + 5}-0", 0)
        # No group yet: entries before 5 were never delivered, and setting the group after them skips them.
        with pytest.raises(ReplayRefused, match="--force"):
            await replay(definition, store, start)
        assert await client.xinfo_groups(stream) == [], "nothing moved"
        (moved,) = await replay(definition, store, start, force=True)
        assert (moved.old, moved.new) == (None, f"{BASE_MS + 4}-0")
        (group,) = await client.xinfo_groups(stream)
        assert group["last-delivered-id"] == f"{BASE_MS + 4}-0".encode()
        (back,) = await replay(definition, store, parse_point("beginning", 0))
        assert (back.new, back.forward) == ("0-0", False)
        with pytest.raises(ReplayRefused, match="--force"):
            await replay(definition, store, parse_point(f"{BASE_MS + 1}-0", 0))
    finally:
        await client.aclose()
