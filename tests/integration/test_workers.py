"""``pipes run --workers 2`` against real brokers: work split, a killed worker restarted, nothing lost."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis.asyncio as redis
from helpers import wait_until_sync
from kafka_broker import KafkaBroker
from redis_server import free_port

PIPES = str(Path(sys.executable).parent / "pipes")

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


class Run:
    """A ``pipes run --workers 2`` process and its admin API."""

    def __init__(self, folder: Path, *extra: str) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [
                PIPES,
                "run",
                "--workers",
                "2",
                "--admin",
                f"127.0.0.1:{self.port}",
                "--no-progress",
                *extra,
                str(folder),
            ],
            cwd=folder.parent,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as response:
            raw = response.read()
        return raw.decode() if path == "/metrics" else json.loads(raw)

    def ready(self) -> bool:
        try:
            answer = self.get("/pipes")
        except OSError:
            return False
        pipes = answer["pipes"]
        return (
            answer["workers"] == ["w0", "w1"]
            and bool(pipes)
            and all(w["state"] == "RUNNING" for p in pipes for w in p["workers"].values())
        )

    def pipe(self, name: str) -> dict[str, Any]:
        return next(p for p in self.get("/pipes")["pipes"] if p["name"] == name)

    def stop(self) -> str:
        self.process.send_signal(signal.SIGTERM)
        _, err = self.process.communicate(timeout=60)
        return err


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[Path]:
    pipes = tmp_path / "pipes"
    pipes.mkdir()
    yield pipes


async def entries(url: str, stream: str) -> list[bytes]:
    client = redis.Redis.from_url(url)
    try:
        return [fields[b"data"] for _, fields in await client.xrange(stream)]
    finally:
        await client.aclose()


async def add(url: str, stream: str, start: int, count: int) -> None:
    client = redis.Redis.from_url(url)
    try:
        async with client.pipeline(transaction=False) as pipe:
            for n in range(start, start + count):
                pipe.xadd(stream, {"data": orjson.dumps({"n": n})})
            await pipe.execute()
    finally:
        await client.aclose()


def stream_pipe(url: str, name: str, stream_in: str, stream_out: str) -> str:
    return (
        f"name: {name}\n"
        f"source: {{type: redis_stream, url: '{url}', stream: {stream_in}, group: g, consumer: c,"
        " starting_position: earliest, count: 50}\n"
        f"target: {{type: redis_stream, url: '{url}', stream: {stream_out}}}\n"
        "batch: {size: 50, window: 10ms}\n"
    )


async def test_redis_stream_work_is_split_a_killed_worker_comes_back_and_nothing_is_lost(
    folder: Path, redis_url: str, unique_key: Any
) -> None:
    stream_in, stream_out = unique_key("in"), unique_key("out")
    (folder / "split.yaml").write_text(stream_pipe(redis_url, "split", stream_in, stream_out))
    (folder / "single.yaml").write_text(
        f"name: single\nsource: {{type: generator, count: 300, rate: 100}}\n"
        f"target: {{type: file, path: {folder.parent / 'single.jsonl'}, fsync: false}}\n"
    )
    # A file cannot be shared either: one worker reads it, so each line is written once.
    lines = folder.parent / "lines.jsonl"
    lines.write_text("".join(f'{{"line": {n}}}\n' for n in range(100)))
    copied = folder.parent / "lines-out.jsonl"
    (folder / "lines.yaml").write_text(
        f"name: lines\nsource: {{type: file, path: {lines}}}\n"
        f"target: {{type: file, path: {copied}, fsync: false}}\n"
    )
    run = Run(folder)
    try:
        wait_until_sync(run.ready, timeout=30, what="both workers running")
        assert [v["state"] for v in run.pipe("lines")["workers"].values()] == ["RUNNING"]
        wait_until_sync(
            lambda: run.pipe("lines")["counters"]["delivered"] == 100, timeout=30, what="lines copied"
        )
        assert copied.read_text() == lines.read_text()  # once, by one worker
        # Both consumers of the group are waiting now: the entries are split between them.
        for start in range(0, 4000, 500):
            await add(redis_url, stream_in, start, 500)
        split = run.pipe("split")
        assert sorted(split["workers"]) == ["w0", "w1"]  # read through a consumer group: in both
        # A generator cannot be shared: exactly one worker has it.
        assert [v["state"] for v in run.pipe("single")["workers"].values()] == ["RUNNING"]
        await asyncio.to_thread(
            wait_until_sync, lambda: run.pipe("split")["counters"]["delivered"] >= 4000, 30, "first 4000"
        )
        # Both workers took part (two consumers of the group).
        assert all(w["counters"]["received"] > 0 for w in run.pipe("split")["workers"].values())
        # kill -9 one worker while more arrives and flows through it: the supervisor starts it again.
        victim = run.get("/workers")["workers"][1]
        for start in range(4000, 8000, 500):
            await add(redis_url, stream_in, start, 500)
            if start == 5000:
                os.kill(victim["pid"], signal.SIGKILL)
        wait_until_sync(
            lambda: run.get("/workers")["workers"][1]["restarts"] == 1, timeout=30, what="restart"
        )
        wait_until_sync(run.ready, timeout=30, what="running again")
        got: list[bytes] = []

        def all_there() -> bool:
            got[:] = asyncio.run(entries(redis_url, stream_out))
            return {orjson.loads(e)["n"] for e in got} == set(range(8000))

        await asyncio.to_thread(wait_until_sync, all_there, 60, "every entry delivered")
        duplicates = sum(c - 1 for c in Counter(got).values())
        assert duplicates <= 2 * 50 * 8  # at most the killed worker's uncommitted tail (its in-flight bound)
        metrics = run.get("/metrics")
        received = [
            line
            for line in metrics.splitlines()
            if line.startswith('pipes_events_received_total{pipe="split"}')
        ]
        # Summed over the workers (a restarted worker counts from zero again, as Prometheus expects).
        per_worker = [w["counters"]["received"] for w in run.pipe("split")["workers"].values()]
        assert received and float(received[0].split()[-1]) == sum(per_worker)
        assert 'worker="w0"' in metrics and 'worker="w1"' in metrics  # state per worker
        # SIGHUP: a new pipe appears in every worker.
        (folder / "more.yaml").write_text(
            stream_pipe(redis_url, "more", unique_key("in2"), unique_key("out2"))
        )
        run.process.send_signal(signal.SIGHUP)
        wait_until_sync(
            lambda: (
                any(p["name"] == "more" for p in run.get("/pipes")["pipes"])
                and sorted(run.pipe("more")["workers"]) == ["w0", "w1"]
            ),
            timeout=30,
            what="the new pipe in both workers",
        )
        # ... and a pipe that cannot be shared stays in its one worker after the reload.
        assert [v["state"] for v in run.pipe("single")["workers"].values()] == ["RUNNING"]
    finally:
        err = run.stop() if run.process.poll() is None else ""
    assert run.process.returncode == 0, err
    assert "split: stopped; received" in err  # one summary line per pipe, over both workers
    assert err.count("split: stopped") == 1


async def test_kafka_partitions_are_split_between_workers(folder: Path, kafka: KafkaBroker) -> None:
    topic = await kafka.create_topic(partitions=4)
    out = await kafka.create_topic(partitions=4)
    values = [orjson.dumps({"n": n}) for n in range(2000)]
    await kafka.produce(topic, values)
    (folder / "k.yaml").write_text(
        f"name: k\nsource: {{type: kafka, bootstrap_servers: '{kafka.bootstrap}', topics: [{topic}],"
        f" group_id: {kafka.group_id()}, starting_position: earliest, session_timeout: 2s}}\n"
        f"target: {{type: kafka, bootstrap_servers: '{kafka.bootstrap}', topic: {out}, idempotent: false}}\n"
        "batch: {size: 100, window: 10ms}\n"
    )
    run = Run(folder)
    try:
        wait_until_sync(
            lambda: run.ready() and run.pipe("k")["counters"]["delivered"] >= 2000, 60, "delivered"
        )
        workers = run.pipe("k")["workers"]
        assert all(w["counters"]["received"] > 0 for w in workers.values())  # both got partitions
        assert sum(w["counters"]["received"] for w in workers.values()) == 2000
    finally:
        err = run.stop()
    assert run.process.returncode == 0, err
    records = await kafka.consume_all(out, 2000)
    assert sorted(orjson.loads(r.value)["n"] for r in records) == list(range(2000))
