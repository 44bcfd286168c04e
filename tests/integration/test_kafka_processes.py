"""``pipes run`` processes on Kafka: killed with SIGKILL, restarted, and sharing a consumer group."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from kafka_broker import KafkaBroker

pytestmark = pytest.mark.integration

PIPES = str(Path(sys.executable).parent / "pipes")
TRANSFORM = '{"p": <$.partition>, "o": <$.offset>, "by": <aws.pipes.pipe-name>}'


def pipe_file(
    directory: Path, name: str, kafka: KafkaBroker, topic: str, group: str, out: str, **extra: Any
) -> Path:
    definition = {
        "name": name,
        "source": {
            "type": "kafka",
            "bootstrap_servers": kafka.bootstrap,
            "topics": [topic],
            "group_id": group,
            "starting_position": "earliest",
            "session_timeout": "2s",
            "fetch_max_wait": "100ms",
        },
        "transform": {"template": TRANSFORM},
        "target": {
            "type": "kafka",
            "bootstrap_servers": kafka.bootstrap,
            "topic": out,
            "idempotent": False,
        },
        "checkpoint_interval": "100ms",
        **extra,
    }
    path = directory / f"{name}.yaml"
    path.write_text(json.dumps(definition))  # JSON is YAML
    return path


def spawn(path: Path, state: Path, log: Path, *flags: str) -> subprocess.Popen[bytes]:
    with log.open("ab") as sink:
        return subprocess.Popen(
            [PIPES, "run", *flags, "--no-progress", "--admin", "off", "--state-dir", str(state), str(path)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )


class Output:
    """Every record of the output topic, read as it arrives."""

    def __init__(self, kafka: KafkaBroker, topic: str, partitions: int) -> None:
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=kafka.bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
        )
        self.tps = [TopicPartition(topic, p) for p in range(partitions)]
        self.values: list[dict[str, Any]] = []

    async def __aenter__(self) -> Output:
        await self.consumer.start()
        self.consumer.assign(self.tps)
        await self.consumer.seek_to_beginning(*self.tps)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop()

    async def poll(self) -> None:
        batch = await self.consumer.getmany(timeout_ms=100)
        for messages in batch.values():
            self.values.extend(orjson.loads(m.value) for m in messages)

    async def until(self, condition: Any, what: str, timeout_s: float = 40.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            await self.poll()

    async def drain(self) -> None:
        while True:
            before = len(self.values)
            await self.poll()
            await self.poll()
            if len(self.values) == before:
                return


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> int:
    if process.poll() is None:
        process.send_signal(sig)
    return process.wait(timeout=40)


async def test_kill_9_and_restart_loses_nothing_and_repeats_only_the_uncommitted_tail(
    kafka: KafkaBroker, tmp_path: Path
) -> None:
    topic = await kafka.create_topic(partitions=2)
    out = await kafka.create_topic(partitions=2)
    group = kafka.group_id()
    n = 20_000
    produced = await kafka.produce(topic, [b'{"i": %d}' % i for i in range(n)])
    # Small batches, one at a time: slow enough to be killed half-way.
    path = pipe_file(tmp_path, "killed", kafka, topic, group, out, batch={"size": 10}, concurrency=1)
    log = tmp_path / "pipes.log"
    async with Output(kafka, out, 2) as output:
        process = spawn(path, tmp_path / "state", log)
        try:
            await output.until(lambda: len(output.values) >= 2_000, "output before the kill")
        finally:
            stop(process, signal.SIGKILL)
        await output.drain()
        before_kill = len(output.values)
        assert before_kill < n, "the pipe finished before it could be killed"
        committed = await kafka.committed(group, topic, 2)

        restarted = spawn(path, tmp_path / "state", log, "--once")
        assert await asyncio.to_thread(restarted.wait, 120) == 0, log.read_text()[-3000:]
        await output.drain()

    seen = Counter((v["p"], v["o"]) for v in output.values)
    assert set(seen) == set(produced), "every source record reaches the output"
    for (partition, offset), count in seen.items():
        if count > 1:
            # Only what was past the committed offset at the kill may repeat.
            start = committed[partition]
            assert start is None or offset >= start, (partition, offset, start)
    duplicates = sum(seen.values()) - len(seen)
    assert duplicates <= before_kill - sum(o or 0 for o in committed.values())
    ends = {p: max(o for q, o in produced if q == p) + 1 for p in range(2)}
    assert await kafka.committed(group, topic, 2) == ends


async def test_two_processes_split_partitions_and_one_takes_over_when_the_other_dies(
    kafka: KafkaBroker, tmp_path: Path
) -> None:
    partitions = 4
    topic = await kafka.create_topic(partitions=partitions)
    out = await kafka.create_topic(partitions=1)
    group = kafka.group_id()
    log = tmp_path / "pipes.log"
    members = {
        name: spawn(
            pipe_file(tmp_path, name, kafka, topic, group, out, batch={"size": 50, "window": "10ms"}),
            tmp_path / name,
            log,
        )
        for name in ("member-a", "member-b")
    }
    sent: list[tuple[int, int]] = []
    rounds = 0

    async def round_handled_by(output: Output) -> set[str]:
        """Send one record to every partition; who handled them, once all came out."""
        nonlocal rounds
        rounds += 1
        records = await asyncio.gather(
            *(kafka.produce(topic, [b'{"round": %d}' % rounds], partition=p) for p in range(partitions))
        )
        wanted = {r[0] for r in records}
        sent.extend(wanted)
        who: dict[tuple[int, int], str] = {}

        def complete() -> bool:
            for v in output.values:
                if (v["p"], v["o"]) in wanted:
                    who[(v["p"], v["o"])] = v["by"]
            return len(who) == len(wanted)

        await output.until(complete, f"round {rounds} in the output")
        return set(who.values())

    try:
        async with Output(kafka, out, 1) as output:
            deadline = time.monotonic() + 40
            while (handlers := await round_handled_by(output)) != set(members):
                assert time.monotonic() < deadline, f"partitions never split (last: {handlers})"
            stop(members["member-a"], signal.SIGKILL)
            deadline = time.monotonic() + 40
            while (handlers := await round_handled_by(output)) != {"member-b"}:
                assert time.monotonic() < deadline, f"member-b never took over (last: {handlers})"
            await round_handled_by(output)
            await output.drain()
            seen = {(v["p"], v["o"]) for v in output.values}
        assert seen == set(sent), "nothing lost across the split and the take-over"
    finally:
        codes = {name: stop(process) for name, process in members.items()}
    assert codes["member-b"] == 0, log.read_text()[-3000:]
