"""The admin API for when things fail: dead letters, redrive and replay through a running daemon."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from helpers import wait_until

from connectors.memory import HUB
from pipes.admin import make_app
from pipes.checkpoints import MemoryCheckpointStore
from pipes.config import load_paths
from pipes.daemon import Daemon
from pipes.errors import RetryableError
from pipes.testing import channel

JSON = {"Content-Type": "application/json"}


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[Daemon]:
    tag = uuid.uuid4().hex[:8]
    (tmp_path / "orders.yaml").write_text(
        f"name: orders\nsource: {{type: memory, channel: in-{tag}}}\n"
        f"target: {{type: memory, channel: out-{tag}}}\n"
        f"dead_letter: {{type: memory, channel: dlq-{tag}}}\n"
        "retry: {max_attempts: 1}\nbatch: {size: 5, window: 0}\ncheckpoint_interval: 10ms\n"
    )
    (tmp_path / "gen.yaml").write_text(
        f"name: gen\nsource: {{type: generator, count: 40}}\ntarget: {{type: memory, channel: gen-{tag}}}\n"
        "transform: {template: '<$.index>'}\nbatch: {size: 4, window: 0}\ncheckpoint_interval: 10ms\n"
    )
    (tmp_path / "steady.yaml").write_text(
        f"name: steady\nsource: {{type: generator, count: null, rate: 500}}\n"
        f"target: {{type: memory, channel: steady-{tag}}}\nbatch: {{size: 10, window: 10ms}}\n"
    )
    definitions = [d for r in load_paths([tmp_path]) for d in r.pipes]
    d = Daemon(definitions, store=MemoryCheckpointStore(), paths=[str(tmp_path)], drain_timeout_s=5)
    d.tag = tag  # type: ignore[attr-defined]
    channel(f"out-{tag}").fail = lambda event: RetryableError("reporting db is down")
    channel(f"in-{tag}").put(*[{"n": i} for i in range(12)])
    task = asyncio.create_task(d.run())
    await wait_until(lambda: len(channel(f"dlq-{tag}").written) == 12, what="12 dead letters")
    await wait_until(lambda: len(channel(f"gen-{tag}").written) == 40, what="gen delivered 40")
    yield d
    d.request_stop()
    await asyncio.wait_for(task, 10)
    for role in ("in", "out", "dlq", "gen", "steady"):
        HUB.drop(f"{role}-{tag}")


@pytest.fixture
async def client(daemon: Daemon) -> AsyncIterator[TestClient[Any, Any]]:
    async with TestClient(TestServer(make_app(daemon))) as c:
        yield c


def lines(body: bytes) -> list[Any]:
    return [orjson.loads(line) for line in body.splitlines() if line.strip()]


async def test_dead_letters_summary_and_records(client: TestClient[Any, Any]) -> None:
    answer = await client.get("/pipes/orders/dead-letters")
    assert answer.status == 200
    summary = await answer.json()
    assert (summary["name"], summary["count"], summary["by_error"]) == ("orders", 12, {"RetryableError": 12})
    records = await client.get(
        "/pipes/orders/dead-letters/records",
        params={"where": '{"record": {"body": {"n": [{"numeric": [">=", 9]}]}}}', "limit": "2"},
    )
    assert records.headers["Content-Type"].startswith("application/x-ndjson")
    assert [r["record"]["body"]["n"] for r in lines(await records.read())] == [9, 10]
    bad = await client.get("/pipes/orders/dead-letters/records", params={"where": '{"error": 5}'})
    assert bad.status == 400 and "--where" in (await bad.json())["error"]
    none = await client.get("/pipes/gen/dead-letters")
    assert none.status == 422 and "has no dead_letter" in (await none.json())["error"]
    assert (await client.get("/pipes/nope/dead-letters")).status == 404


async def test_redrive_streams_progress_and_a_summary(daemon: Daemon, client: TestClient[Any, Any]) -> None:
    tag = daemon.tag  # type: ignore[attr-defined]
    channel(f"out-{tag}").fail = None  # fixed
    refused = await client.post("/pipes/orders/redrive", data=b"{}")  # no JSON content type
    assert refused.status == 415
    answer = await client.post(
        "/pipes/orders/redrive", json={"where": {"record": {"body": {"n": [0, 1, 2]}}}}
    )
    assert answer.status == 200
    got = lines(await answer.read())
    assert got[-1]["summary"]["delivered"] == 3 and got[-1]["summary"]["finished"]
    assert any("progress" in line for line in got)
    assert sorted(p["n"] for p in channel(f"out-{tag}").written) == [0, 1, 2]
    rest = lines(
        await (await client.post("/pipes/orders/redrive", json={"dry_run": True, "limit": 2})).read()
    )
    assert [line["dry_run"]["stages"] for line in rest if "dry_run" in line] == [
        [{"stage": "payload", "payloads": [{"n": 3}]}],
        [{"stage": "payload", "payloads": [{"n": 4}]}],
    ]
    rest = lines(await (await client.post("/pipes/orders/redrive", json={})).read())
    assert rest[-1]["summary"]["delivered"] == 9
    assert sorted(p["n"] for p in channel(f"out-{tag}").written) == list(range(12))
    summary = await (await client.get("/pipes/orders/dead-letters")).json()
    assert (summary["count"], summary["redriven"]) == (0, 12)


async def test_one_redrive_per_pipe_at_a_time(daemon: Daemon, client: TestClient[Any, Any]) -> None:
    tag = daemon.tag  # type: ignore[attr-defined]
    out = channel(f"out-{tag}")
    out.fail = None
    out.hold = asyncio.Event()
    writes = out.writes
    first = asyncio.create_task(client.post("/pipes/orders/redrive", json={}))
    await wait_until(lambda: out.writes > writes, what="the first redrive writing")
    second = await client.post("/pipes/orders/redrive", json={})
    assert second.status == 409 and "under way" in (await second.json())["error"]
    out.hold.set()
    answer = await first
    assert lines(await answer.read())[-1]["summary"]["delivered"] == 12


async def test_replay_stops_moves_and_starts_the_pipe_while_others_run(
    daemon: Daemon, client: TestClient[Any, Any]
) -> None:
    tag = daemon.tag  # type: ignore[attr-defined]
    steady = daemon.pipes["steady"].runner
    before = len(channel(f"steady-{tag}").written)
    answer = await client.post("/pipes/gen/replay", json={"from": "30"})
    assert answer.status == 200
    body = await answer.json()
    assert body["partitions"] == [
        {"partition": "generator", "old": 39, "new": 29, "events": 10, "until": None, "forward": False}
    ]
    assert body["desired_state"] == "RUNNING"
    await wait_until(lambda: len(channel(f"gen-{tag}").written) == 50, what="10 delivered again")
    assert channel(f"gen-{tag}").written[40:] == [str(i) for i in range(30, 40)]
    forward = await client.post("/pipes/gen/replay", json={"from": "beginning", "to": "5"})
    assert (await forward.json())["stops_at_to"] is True
    await wait_until(lambda: daemon.pipes["gen"].state == "STOPPED", what="gen stopped at --to")
    assert channel(f"gen-{tag}").written[50:] == [str(i) for i in range(5)]
    assert daemon.pipes["gen"].desired == "STOPPED"
    refused = await client.post("/pipes/gen/replay", json={"from": "20"})
    assert refused.status == 409
    refusal = await refused.json()
    assert "--force" in refusal["error"] and refusal["partitions"][0]["forward"] is True
    bad = await client.post("/pipes/gen/replay", json={"from": "now-1h"})
    assert bad.status == 422 and "cannot replay from a time" in (await bad.json())["error"]
    assert (await client.post("/pipes/gen/replay", json={"from": ""})).status == 400
    # The other pipe ran on, untouched: the same runner, still delivering.
    assert daemon.pipes["steady"].runner is steady and daemon.pipes["steady"].state == "RUNNING"
    await wait_until(lambda: len(channel(f"steady-{tag}").written) > before + 5, what="steady delivering")
