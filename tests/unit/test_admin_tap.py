"""``GET /pipes/NAME/tap`` and ``pipes tap``: a live tap over server-sent events, behind the admin token."""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from helpers import wait_until

from connectors.memory import HUB
from pipes.admin import AdminServer
from pipes.admin_client import AdminError, server_sent_events, tap
from pipes.checkpoints import MemoryCheckpointStore
from pipes.config import load_paths, load_text
from pipes.daemon import Daemon

TOKEN = "tap-token"


@pytest.fixture
async def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[Daemon, str, str]]:
    """A daemon running pipe ``orders`` (memory in and out) behind an admin API with a token."""
    tag = uuid.uuid4().hex[:8]
    (tmp_path / "orders.yaml").write_text(
        f"name: orders\nsource: {{type: memory, channel: in-{tag}}}\n"
        "filter: [{body: {total: [{numeric: ['>', 100]}]}}]\n"
        "transform: {jmespath: '{id: body.id}'}\n"
        f"target: {{type: memory, channel: out-{tag}}}\n"
        "batch: {size: 50, window: 5ms}\n"
    )
    definitions = [d for r in load_paths([tmp_path]) for d in r.pipes]
    daemon = Daemon(definitions, store=MemoryCheckpointStore(), paths=[str(tmp_path)], drain_timeout_s=5)
    task = asyncio.create_task(daemon.run())
    await wait_until(lambda: daemon.pipes["orders"].state == "RUNNING", what="orders running")
    server = AdminServer(daemon, "127.0.0.1", 0, token=TOKEN)
    await server.start()
    monkeypatch.setenv("PIPES_ADMIN_TOKEN", TOKEN)
    try:
        yield daemon, f"127.0.0.1:{server.port}", tag
    finally:
        await server.stop()
        daemon.request_stop()
        await asyncio.wait_for(task, 10)
        for name in (f"in-{tag}", f"out-{tag}"):
            HUB.drop(name)


async def events_until(
    stream: AsyncIterator[tuple[str, bytes]], done: Any, timeout: float = 10.0
) -> list[tuple[str, Any]]:
    """Read the stream until ``done(events so far)``; every event's data decoded."""
    seen: list[tuple[str, Any]] = []

    async def read() -> None:
        async for name, data in stream:
            seen.append((name, orjson.loads(data)))
            if done(seen):
                return

    await asyncio.wait_for(read(), timeout)
    return seen


def taps(seen: list[tuple[str, Any]]) -> list[Any]:
    return [data for name, data in seen if name == "tap"]


async def test_the_tap_streams_what_passes_the_chosen_stage(served: tuple[Daemon, str, str]) -> None:
    daemon, address, tag = served
    stream = server_sent_events(address, "/pipes/orders/tap?stage=target&rate=0", TOKEN)
    [(name, attached)] = await events_until(stream, lambda seen: True)
    assert name == "attached"
    assert attached["pipe"] == "orders" and attached["stages"] == ["target"] and attached["rate"] is None
    HUB.channel(f"in-{tag}").put(*({"id": n, "total": 50 + 20 * n} for n in range(10)))
    seen = await events_until(stream, lambda seen: len(taps(seen)) == 7)
    lines = taps(seen)
    assert [line["payload"] for line in lines] == [{"id": n} for n in range(3, 10)]
    assert {line["stage"] for line in lines} == {"target"} and {line["outcome"] for line in lines} == {
        "delivered"
    }
    await stream.aclose()  # the viewer goes: the tap is detached
    await wait_until(lambda: not daemon.pipes["orders"].taps.active, what="tap detached")


async def test_where_and_limit_select_and_end_the_tap(served: tuple[Daemon, str, str]) -> None:
    _, address, tag = served
    where = orjson.dumps({"outcome": ["filtered"]}).decode()
    from urllib.parse import quote

    stream = server_sent_events(
        address, f"/pipes/orders/tap?stage=filter&where={quote(where)}&limit=2", TOKEN
    )
    await events_until(stream, lambda seen: True)
    HUB.channel(f"in-{tag}").put(*({"id": n, "total": 10 * n} for n in range(20)))
    seen = await events_until(stream, lambda seen: seen[-1][0] == "end")
    assert [line["record"]["body"]["id"] for line in taps(seen)] == [0, 1]
    assert seen[-1][1]["reason"] == "limit" and seen[-1][1]["sent"] == 2


async def test_the_tap_needs_the_token_and_says_what_is_wrong(served: tuple[Daemon, str, str]) -> None:
    _, address, _ = served
    for path, token, status in (
        ("/pipes/orders/tap", None, "HTTP 401"),
        ("/pipes/orders/tap", "wrong", "HTTP 401"),
        ("/pipes/nope/tap", TOKEN, "HTTP 404: no pipe named 'nope'"),
        ("/pipes/orders/tap?stage=sink", TOKEN, "HTTP 400: stage 'sink'"),
        ("/pipes/orders/tap?where=%7Bbad", TOKEN, "HTTP 400: where:"),
        ("/pipes/orders/tap?limit=0", TOKEN, "HTTP 400: limit"),
        ("/pipes/orders/tap?rate=fast", TOKEN, "HTTP 400: rate: 'fast' is not a number"),
    ):
        with pytest.raises(AdminError, match=status.replace("(", r"\(")):
            async for _ in server_sent_events(address, path, token):
                pass


async def test_a_pipe_takes_a_bounded_number_of_taps(served: tuple[Daemon, str, str]) -> None:
    daemon, address, _ = served
    hub = daemon.pipes["orders"].taps
    held = [hub.attach() for _ in range(hub.max_taps)]
    with pytest.raises(AdminError, match="HTTP 429"):
        async for _ in server_sent_events(address, "/pipes/orders/tap", TOKEN):
            pass
    for t in held:
        hub.detach(t)


async def test_a_removed_pipe_ends_its_taps(served: tuple[Daemon, str, str], tmp_path: Path) -> None:
    daemon, address, _ = served
    stream = server_sent_events(address, "/pipes/orders/tap", TOKEN)
    await events_until(stream, lambda seen: True)
    (tmp_path / "orders.yaml").unlink()
    await daemon.reload()
    seen = await events_until(stream, lambda seen: seen[-1][0] == "end")
    assert seen[-1][1]["reason"] == "pipe removed"


async def test_a_slow_viewer_loses_tap_lines_never_pipe_events(served: tuple[Daemon, str, str]) -> None:
    daemon, address, tag = served
    stream = server_sent_events(address, "/pipes/orders/tap?rate=0", TOKEN)
    await events_until(stream, lambda seen: True)
    total = 5_000
    HUB.channel(f"in-{tag}").put(*({"id": n, "total": 500, "pad": "x" * 2_000} for n in range(total)))
    # The viewer reads nothing while the pipe runs: its socket and its tap buffer fill up.
    await wait_until(
        lambda: len(HUB.channel(f"out-{tag}").written) == total, timeout=60, what="all delivered"
    )
    assert HUB.channel(f"out-{tag}").written == [{"id": n} for n in range(total)]
    tap_state = daemon.pipes["orders"].taps.taps[0]
    assert tap_state.dropped > 0
    seen = await events_until(stream, lambda seen: any(name == "dropped" for name, _ in seen), timeout=30)
    assert next(data for name, data in seen if name == "dropped")["dropped"] > 0
    await stream.aclose()


async def test_pipes_tap_prints_json_lines(
    served: tuple[Daemon, str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    daemon, address, tag = served
    out = io.StringIO()
    client = asyncio.create_task(
        asyncio.to_thread(tap, "orders", address, stages=["transform"], limit=3, out=out)
    )
    await wait_until(lambda: daemon.pipes["orders"].taps.active, what="tap attached")
    HUB.channel(f"in-{tag}").put(*({"id": n, "total": 500} for n in range(5)))
    assert await asyncio.wait_for(client, 10) == 0
    lines = [orjson.loads(line) for line in out.getvalue().splitlines()]
    assert [(line["stage"], line["payload"]) for line in lines] == [
        ("transform", {"id": n}) for n in range(3)
    ]
    assert "pipes tap: attached to orders (RUNNING), stages transform" in capsys.readouterr().err


async def test_a_tap_stays_attached_while_its_pipe_stops_and_starts(served: tuple[Daemon, str, str]) -> None:
    daemon, address, tag = served
    stream = server_sent_events(address, "/pipes/orders/tap?stage=source", TOKEN)
    await events_until(stream, lambda seen: True)
    await daemon.stop_pipe("orders")
    await daemon.start_pipe("orders")
    await wait_until(lambda: daemon.pipes["orders"].state == "RUNNING", what="orders running again")
    HUB.channel(f"in-{tag}").put({"id": 1, "total": 500})
    seen = await events_until(stream, lambda seen: len(taps(seen)) == 1)
    assert taps(seen)[0]["record"]["body"] == {"id": 1, "total": 500}
    await stream.aclose()


async def test_stopping_the_api_ends_open_taps_at_once() -> None:
    tag = uuid.uuid4().hex[:8]
    text = f"name: solo\nsource: {{type: memory, channel: solo-{tag}}}\ntarget: {{type: memory, channel: out-{tag}}}\n"
    daemon = Daemon(load_text(text).pipes, store=MemoryCheckpointStore())
    task = asyncio.create_task(daemon.run())
    server = AdminServer(daemon, "127.0.0.1", 0)
    await server.start()
    stream = server_sent_events(f"127.0.0.1:{server.port}", "/pipes/solo/tap", None)
    try:
        await events_until(stream, lambda seen: True)
        stopping = asyncio.create_task(server.stop())
        seen = await events_until(stream, lambda seen: seen[-1][0] == "end")
        assert seen[-1][1]["reason"] == "daemon stopping"
        await asyncio.wait_for(stopping, 5)  # not held up for the server's shutdown timeout
    finally:
        daemon.request_stop()
        await asyncio.wait_for(task, 10)
        HUB.drop(f"solo-{tag}")
        HUB.drop(f"out-{tag}")
