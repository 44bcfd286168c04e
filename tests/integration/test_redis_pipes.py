"""Whole pipes on Redis: counts, crashes, a dead consumer, a restarted server, lookups.

Crash tests run the real ``pipes`` command in a subprocess and kill it with
SIGKILL; in-process runs go through ``pipes.testing``.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis.asyncio as redis
import yaml

from connectors.generator import cart_event
from pipes.testing import make_runner, run_pipe

pytestmark = pytest.mark.integration

PIPES = str(Path(sys.executable).parent / "pipes")
FILTER = [{"body": {"detail-type": ["OrderPlaced"], "detail": {"total": [{"numeric": [">", 100]}]}}}]
TEMPLATE = (
    '{"order": <$.body.detail.order_id>, "customer": <$.body.detail.customer.id>, '
    '"tier": <$.body.detail.customer.tier>, "total": <$.body.detail.total>}'
)


def passes(event: dict[str, Any]) -> bool:
    return bool(event["detail-type"] == "OrderPlaced" and event["detail"]["total"] > 100)


async def preload(client: redis.Redis, stream: str, start: int, stop: int) -> list[str]:
    async with client.pipeline(transaction=False) as pipe:
        for index in range(start, stop):
            pipe.xadd(stream, {"data": orjson.dumps(cart_event(index))})
        ids: list[str] = await pipe.execute()
    return ids


async def wait_for(condition: Callable[[], Awaitable[bool]], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await condition():
        assert time.monotonic() < deadline, "condition not reached before the deadline"
        await asyncio.sleep(0.02)  # polling a condition with a deadline


async def source_ids(client: redis.Redis, stream: str) -> set[str]:
    entries: Any = await client.xrange(stream)
    return {fields["src"] for _, fields in entries}


async def group_pending(client: redis.Redis, stream: str, group: str) -> int:
    summary: Any = await client.xpending(stream, group)
    return int(summary["pending"])


def stream_pipe(name: str, url: str, src: str, out: str, **source: Any) -> dict[str, Any]:
    return {
        "name": name,
        "source": {
            "type": "redis_stream",
            "url": url,
            "stream": src,
            "group": "g",
            "consumer": "c1",
            "starting_position": "earliest",
            **source,
        },
        "target": {"type": "redis_stream", "url": url, "stream": out, "fields": {"src": "<$.id>"}},
        "batch": {"size": 100, "window": "50ms"},
        "retry": {"backoff_initial": "50ms", "backoff_max": "500ms"},
        "checkpoint_interval": "200ms",
        "log_level": "ERROR",
    }


class PipeProcess:
    """``pipes run`` on a YAML file in a subprocess."""

    def __init__(self, directory: Path, definition: dict[str, Any], *, once: bool = False) -> None:
        self.path = directory / f"{definition['name']}.yaml"
        self.path.write_text(yaml.safe_dump(definition))
        self.log = (directory / f"{definition['name']}.log").open("ab")
        args = [PIPES, "run", "--state-dir", str(directory / "state"), "--admin", "off", "--no-progress"]
        if once:
            args.append("--once")
        self.process = subprocess.Popen(
            [*args, str(self.path)], stdout=self.log, stderr=subprocess.STDOUT, cwd=directory
        )

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        self.log.close()

    def terminate(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=30)
        self.log.close()
        return code

    def wait(self, timeout_s: float = 60) -> int:
        code = self.process.wait(timeout=timeout_s)
        self.log.close()
        return code


async def test_stream_to_stream_through_filter_and_transform(
    redis_url: str, redis_client: redis.Redis, unique_key: Callable[[str], str], tmp_path: Path
) -> None:
    src, out = unique_key("in"), unique_key("out")
    total = 3000
    await preload(redis_client, src, 0, total)
    expected = [cart_event(i) for i in range(total) if passes(cart_event(i))]
    definition = stream_pipe("stream-to-stream", redis_url, src, out, max_deliveries=5)
    definition["filter"] = FILTER
    definition["transform"] = {"template": TEMPLATE}
    definition["target"] = {"type": "redis_stream", "url": redis_url, "stream": out}

    stats = await run_pipe(definition, once=True, state_dir=tmp_path)

    assert (stats.received, stats.filtered, stats.delivered) == (total, total - len(expected), len(expected))
    assert (stats.failed, stats.dead_lettered) == (0, 0)
    entries: Any = await redis_client.xrange(out)
    assert [orjson.loads(fields["data"]) for _, fields in entries] == [
        {
            "order": e["detail"]["order_id"],
            "customer": e["detail"]["customer"]["id"],
            "tier": e["detail"]["customer"]["tier"],
            "total": e["detail"]["total"],
        }
        for e in expected
    ]
    assert await group_pending(redis_client, src, "g") == 0


# Bodies a decode-and-encode would change (see tests/unit/test_fidelity.py).
TRICKY = [
    b'"hello"',
    b"123456789012345678901234567890",
    b'{"a":1,"a":2}',
    b'{"$base64":"aGVsbG8="}',
    b'{ "spaced" :  [1, 2] }',
    b"plain text",
    b"\xff\xfe not utf-8",
]


async def test_without_a_transform_every_redis_hop_writes_the_bytes_it_read(
    redis_url: str, unique_key: Callable[[str], str], tmp_path: Path
) -> None:
    # file -> stream -> list -> file: each hop must hand the bytes on as read.
    first, stream, queue = tmp_path / "in.jsonl", unique_key("stream"), unique_key("list")
    first.write_bytes(b"\n".join(TRICKY) + b"\n")
    last = tmp_path / "out.jsonl"
    hops = [
        ({"type": "file", "path": str(first)}, {"type": "redis_stream", "url": redis_url, "stream": stream}),
        (
            {"type": "redis_stream", "url": redis_url, "stream": stream, "group": "g", "consumer": "c"}
            | {"starting_position": "earliest"},
            {"type": "redis_list", "url": redis_url, "list": queue},
        ),
        ({"type": "redis_list", "url": redis_url, "list": queue}, {"type": "file", "path": str(last)}),
    ]
    raw = redis.Redis.from_url(redis_url)  # bytes, not decoded text
    for n, (source, target) in enumerate(hops):
        stats = await run_pipe(
            {"name": f"hop{n}", "source": source, "target": target}, once=True, state_dir=tmp_path / "state"
        )
        assert (stats.delivered, stats.failed) == (len(TRICKY), 0), f"hop {n}"
        if n == 0:
            entries: Any = await raw.xrange(stream)
            assert [fields[b"data"] for _, fields in entries] == TRICKY
        if n == 1:
            assert await raw.lrange(queue, 0, -1) == TRICKY
    await raw.aclose()
    assert last.read_bytes().splitlines() == TRICKY


async def test_kill_9_and_restart_loses_nothing(
    redis_url: str, redis_client: redis.Redis, unique_key: Callable[[str], str], tmp_path: Path
) -> None:
    src, out = unique_key("in"), unique_key("out")
    definition = stream_pipe("crashing", redis_url, src, out)
    ids = await preload(redis_client, src, 0, 2000)
    first = PipeProcess(tmp_path, definition)
    try:
        await wait_for(lambda: _longer_than(redis_client, out, 0))
    finally:
        first.kill()
    delivered_before = int(await redis_client.xlen(out))
    assert 0 < delivered_before < 2000  # killed mid-stream
    ids += await preload(redis_client, src, 2000, 3000)

    assert PipeProcess(tmp_path, definition, once=True).wait() == 0

    assert await source_ids(redis_client, out) == set(ids)
    assert await group_pending(redis_client, src, "g") == 0


async def test_survivor_claims_the_pending_entries_of_a_killed_consumer(
    redis_url: str, redis_client: redis.Redis, unique_key: Callable[[str], str], tmp_path: Path
) -> None:
    src, out = unique_key("in"), unique_key("out")
    victim_def = stream_pipe("victim", redis_url, src, out, consumer="victim", claim_idle="1s")
    survivor_def = stream_pipe("survivor", redis_url, src, out, consumer="survivor", claim_idle="1s")
    victim = PipeProcess(tmp_path, victim_def)
    survivor = PipeProcess(tmp_path, survivor_def)
    ids: list[str] = []
    stranded = 0

    async def victim_holds_entries() -> bool:
        nonlocal stranded
        try:
            summary: Any = await redis_client.xpending(src, "g")
        except redis.ResponseError:  # no group yet: neither has started
            return False
        by_consumer = {c["name"]: int(c["pending"]) for c in summary["consumers"] or []}
        stranded = by_consumer.get("victim", 0)
        if stranded == 0:
            # Keep both busy: whichever consumer asks first gets the new entries.
            ids.extend(await preload(redis_client, src, len(ids), len(ids) + 20))
        return stranded > 0

    try:
        await wait_for(victim_holds_entries)
        victim.kill()
        ids.extend(await preload(redis_client, src, len(ids), len(ids) + 500))
        await wait_for(lambda: _has_all(redis_client, out, set(ids)))
        await wait_for(lambda: _no_pending(redis_client, src))
    finally:
        if victim.process.poll() is None:
            victim.kill()
        code = survivor.terminate()
    assert code == 0
    assert stranded > 0
    assert await group_pending(redis_client, src, "g") == 0


async def test_pipe_survives_a_server_restart(
    redis_server_factory: Callable[[], Any], unique_key: Callable[[str], str], tmp_path: Path
) -> None:
    server = redis_server_factory()
    client = redis.Redis.from_url(server.url, decode_responses=True, protocol=2)
    try:
        src, out = unique_key("in"), unique_key("out")
        ids = await preload(client, src, 0, 1000)
        runner = make_runner(stream_pipe("restarted", server.url, src, out), once=False, state_dir=tmp_path)
        task = asyncio.create_task(runner.run())
        try:
            await wait_for(lambda: _longer_than(client, out, 0))
            await client.aclose()
            server.restart()  # SIGTERM: the append-only file keeps streams and the group
            client = redis.Redis.from_url(server.url, decode_responses=True, protocol=2)
            ids += await preload(client, src, 1000, 2000)
            await wait_for(lambda: _has_all(client, out, set(ids)))
            await wait_for(lambda: _no_pending(client, src))
        finally:
            runner.request_stop()
            await asyncio.wait_for(task, 30)
        # Writes that hit the restart failed and were retried (stats.failed counts those
        # attempts); nothing was given up on.
        assert runner.stats.dead_lettered == 0
        assert runner.stats.delivered >= 2000
    finally:
        await client.aclose()


async def test_reliable_list_survives_kill_9(
    redis_url: str, redis_client: redis.Redis, unique_key: Callable[[str], str], tmp_path: Path
) -> None:
    queue, out = unique_key("queue"), unique_key("out")
    definition = {
        "name": "list-crash",
        "source": {"type": "redis_list", "url": redis_url, "list": queue, "consumer": "c1"},
        "transform": {"template": '{"n": <$.body.n>}'},
        "target": {"type": "redis_list", "url": redis_url, "list": out},
        "batch": {"size": 50, "window": "50ms"},
        "checkpoint_interval": "200ms",
        "log_level": "ERROR",
    }
    await redis_client.rpush(queue, *[orjson.dumps({"n": n}) for n in range(2000)])
    first = PipeProcess(tmp_path, definition)
    try:
        await wait_for(lambda: _list_longer_than(redis_client, out, 0))
    finally:
        first.kill()
    assert 0 < int(await redis_client.llen(out)) < 2000  # killed mid-stream
    assert int(await redis_client.llen(f"{queue}:processing:c1")) > 0
    await redis_client.rpush(queue, *[orjson.dumps({"n": n}) for n in range(2000, 4000)])

    assert PipeProcess(tmp_path, definition, once=True).wait() == 0

    delivered = {orjson.loads(v)["n"] for v in await redis_client.lrange(out, 0, -1)}
    assert delivered == set(range(4000))
    assert await redis_client.llen(queue) == 0
    assert await redis_client.llen(f"{queue}:processing:c1") == 0


async def test_lookup_enrichment_merges_drops_and_fails_per_policy(
    redis_url: str, redis_client: redis.Redis, unique_key: Callable[[str], str], tmp_path: Path
) -> None:
    src, prefix = unique_key("in"), unique_key("customer")
    await redis_client.set(f"{prefix}:1", orjson.dumps({"name": "Ada", "tier": "gold"}))
    for n in (1, 2, 1):
        await redis_client.xadd(src, {"data": orjson.dumps({"customer": n})})

    outcomes: dict[str, Any] = {}
    for policy in ("keep", "drop", "fail"):
        out, dlq = unique_key(f"out-{policy}"), unique_key(f"dlq-{policy}")
        definition = stream_pipe(f"lookup-{policy}", redis_url, src, out, group=f"g-{policy}")
        definition["enrichment"] = {
            "type": "redis_lookup",
            "url": redis_url,
            "key": f"{prefix}:<$.body.customer>",
            "missing": policy,
            "into": "profile",
        }
        definition["transform"] = {"template": '{"customer": <$.body.customer>, "profile": <$.profile>}'}
        definition["target"] = {"type": "redis_stream", "url": redis_url, "stream": out}
        definition["dead_letter"] = {"type": "redis_list", "url": redis_url, "list": dlq}
        stats = await run_pipe(definition, once=True, state_dir=tmp_path / policy)
        entries: Any = await redis_client.xrange(out)
        outcomes[policy] = (
            [orjson.loads(fields["data"]) for _, fields in entries],
            stats.dead_lettered,
            [orjson.loads(v) for v in await redis_client.lrange(dlq, 0, -1)],
        )
        assert await group_pending(redis_client, src, f"g-{policy}") == 0

    ada = {"name": "Ada", "tier": "gold"}
    assert outcomes["keep"][:2] == (
        [{"customer": 1, "profile": ada}, {"customer": 2, "profile": None}, {"customer": 1, "profile": ada}],
        0,
    )
    assert outcomes["drop"][:2] == ([{"customer": 1, "profile": ada}, {"customer": 1, "profile": ada}], 0)
    delivered, dead, letters = outcomes["fail"]
    assert delivered == [{"customer": 1, "profile": ada}, {"customer": 1, "profile": ada}]
    assert dead == 1
    assert f"key '{prefix}:2' not found" in orjson.dumps(letters[0]).decode()


async def _longer_than(client: redis.Redis, stream: str, n: int) -> bool:
    return int(await client.xlen(stream)) > n


async def _list_longer_than(client: redis.Redis, key: str, n: int) -> bool:
    return int(await client.llen(key)) > n


async def _has_all(client: redis.Redis, stream: str, ids: set[str]) -> bool:
    return await source_ids(client, stream) >= ids


async def _no_pending(client: redis.Redis, stream: str) -> bool:
    return await group_pending(client, stream, "g") == 0


async def test_entries_delivered_too_often_are_dead_lettered_and_acknowledged(
    redis_url: str, redis_client: redis.Redis, unique_key: Callable[[str], str], tmp_path: Path
) -> None:
    from connectors.redis.stream_source import RedisStreamSource, RedisStreamSourceOptions
    from pipes.connector import SourceContext

    src, out, dlq = unique_key("in"), unique_key("out"), unique_key("dlq")
    poison: list[Any] = [await redis_client.xadd(src, {"data": orjson.dumps({"n": n})}) for n in range(3)]
    # Two earlier runs took the entries and died before settling them.
    for _ in range(2):
        crashed = RedisStreamSource(
            RedisStreamSourceOptions(
                url=redis_url, stream=src, group="g", consumer="c1", starting_position="earliest"
            )
        )
        await crashed.start(SourceContext(pipe="crashed"))
        try:
            assert len(await crashed.read(10, 0.05)) == 3
        finally:
            await crashed.stop()
    healthy = await redis_client.xadd(src, {"data": orjson.dumps({"n": 3})})

    definition = stream_pipe("poison", redis_url, src, out, max_deliveries=2)
    definition["dead_letter"] = {"type": "redis_list", "url": redis_url, "list": dlq}
    stats = await run_pipe(definition, once=True, state_dir=tmp_path)

    assert (stats.delivered, stats.dead_lettered) == (1, 3)
    assert await source_ids(redis_client, out) == {healthy}
    letters = [orjson.loads(v) for v in await redis_client.lrange(dlq, 0, -1)]
    assert len(letters) == 3
    text = orjson.dumps(letters).decode()
    assert "delivered 3 times, more than max_deliveries=2" in text
    assert all(entry_id in text for entry_id in poison)
    assert await group_pending(redis_client, src, "g") == 0


async def test_cli_keeps_checkpoints_in_redis_with_state_url(
    redis_url: str, redis_client: redis.Redis, unique_key: Callable[[str], str], tmp_path: Path
) -> None:
    out = unique_key("gen-out")
    name = unique_key("gen").lower()
    definition = {
        "name": name,
        "source": {"type": "generator", "count": 50},
        "target": {"type": "redis_list", "url": redis_url, "list": out},
        "log_level": "ERROR",
    }
    path = tmp_path / "gen.yaml"
    path.write_text(yaml.safe_dump(definition))
    args = [PIPES, "run", "--once", "--no-progress", "--state", redis_url, str(path)]
    for _ in range(2):  # the second run resumes from the checkpoint: nothing new
        process = await asyncio.create_subprocess_exec(
            *args, cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        output, _ = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 0, output.decode()
    assert await redis_client.llen(out) == 50
    saved: Any = orjson.loads(str(await redis_client.get(f"pipes:checkpoint:{name}")))
    assert saved == {"pipe": name, "positions": {"generator": 49}}
