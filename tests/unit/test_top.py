"""``pipes top``: rates from counters, sorting and selection by key, and the plain table off a terminal."""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from helpers import wait_until
from rich.console import Console

from connectors.memory import HUB
from pipes.admin import AdminServer
from pipes.checkpoints import MemoryCheckpointStore
from pipes.config import load_paths
from pipes.daemon import Daemon
from pipes.top import COLUMNS, PipeRow, Rates, TopView, _keys, _parse_keys, plain_table, top


def pipe(
    name: str, state: str = "RUNNING", lag: int | None = None, in_flight: int = 0, **counters: int
) -> Any:
    return {"name": name, "state": state, "counters": counters, "lag": lag, "in_flight": in_flight}


def test_rates_are_the_counters_growth_between_two_polls() -> None:
    rates = Rates()
    [first] = rates.rows([pipe("a", received=100, filtered=10, delivered=90, failed=2)], now=10.0)
    assert (first.in_s, first.filtered_s, first.delivered_s) == (None, None, None)
    assert first.failed == 2
    [second] = rates.rows(
        [pipe("a", lag=7, in_flight=3, received=300, filtered=50, delivered=250, dead_lettered=1)], now=12.0
    )
    assert (second.in_s, second.filtered_s, second.delivered_s) == (100.0, 20.0, 80.0)
    assert (second.lag, second.in_flight, second.dead_lettered) == (7, 3, 1)
    [restarted] = rates.rows([pipe("a", received=5)], now=13.0)  # counters of a new process
    assert restarted.in_s == 0.0


def rows() -> list[PipeRow]:
    return [
        PipeRow("beta", "RUNNING", 50.0, 0.0, 50.0, 0, 0, None, 1),
        PipeRow("alpha", "FAILED", 10.0, 1.0, 0.0, 9, 3, 120, 40),
        PipeRow("gamma", "STOPPED", None, None, None, 0, 0, None, 0),
    ]


def test_keys_sort_select_and_act_on_the_selected_pipe() -> None:
    view = TopView("127.0.0.1:9900")
    assert [r.name for r in view.ordered(rows())] == ["alpha", "beta", "gamma"]
    view.render(rows())
    assert view.selected == "alpha"
    assert view.press("down", rows()) is None and view.selected == "beta"
    assert view.press("j", rows()) is None and view.selected == "gamma"
    assert view.press("j", rows()) is None and view.selected == "gamma"  # stays at the end
    assert view.press("x", rows()) == ("stop", "gamma")
    assert view.press("s", rows()) == ("start", "gamma")
    view.press(">", rows())
    view.press(">", rows())  # IN/S, largest first
    assert COLUMNS[view.sort].title == "IN/S" and view.reverse
    assert [r.name for r in view.ordered(rows())] == ["beta", "alpha", "gamma"]  # no rate: last
    view.press("r", rows())
    assert [r.name for r in view.ordered(rows())][:2] == ["alpha", "beta"]
    assert view.press("q", rows()) == ("quit", "")


def test_the_live_view_shows_every_pipe_and_the_keys() -> None:
    view = TopView("127.0.0.1:9900")
    console = Console(file=io.StringIO(), width=120, record=True, color_system=None)
    console.print(view.render(rows()))
    text = console.export_text()
    for name in ("alpha", "beta", "gamma", "FAILED", "IN/S", "DELIVERED/S", "LETTERED", "FLIGHT"):
        assert name in text
    assert "q quit" in text and "3 pipes" in text


def test_the_plain_table_aligns_columns() -> None:
    assert plain_table(rows()[:2]) == [
        "NAME   STATE    IN/S  FILTERED/S  DELIVERED/S  FAILED  DEAD-LETTERED  LAG  IN FLIGHT",
        "beta   RUNNING    50           0           50       0              0    -          1",
        "alpha  FAILED     10           1            0       9              3  120         40",
    ]


def test_terminal_keys_become_names() -> None:
    assert list(_parse_keys(b"\x1b[A\x1b[Bq>\x1bOD")) == ["up", "down", "q", ">", "left"]


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[Daemon, str, str]]:
    tag = uuid.uuid4().hex[:8]
    for name in ("orders", "audit"):
        (tmp_path / f"{name}.yaml").write_text(
            f"name: {name}\nsource: {{type: memory, channel: {name}-in-{tag}}}\n"
            f"target: {{type: memory, channel: {name}-out-{tag}}}\nbatch: {{size: 10, window: 5ms}}\n"
        )
    definitions = [d for r in load_paths([tmp_path]) for d in r.pipes]
    daemon = Daemon(definitions, store=MemoryCheckpointStore(), paths=[str(tmp_path)], drain_timeout_s=5)
    task = asyncio.create_task(daemon.run())
    await wait_until(lambda: all(h.state == "RUNNING" for h in daemon.pipes.values()), what="running")
    server = AdminServer(daemon, "127.0.0.1", 0)
    await server.start()
    try:
        yield daemon, f"127.0.0.1:{server.port}", tag
    finally:
        await server.stop()
        daemon.request_stop()
        await asyncio.wait_for(task, 10)
        for name in ("orders", "audit"):
            HUB.drop(f"{name}-in-{tag}")
            HUB.drop(f"{name}-out-{tag}")


async def test_off_a_terminal_top_prints_plain_tables(served: tuple[Daemon, str, str]) -> None:
    _, address, tag = served
    HUB.channel(f"orders-in-{tag}").put(*range(30))
    out = io.StringIO()
    assert await asyncio.to_thread(top, address, 0.05, 2, out) == 0
    tables = out.getvalue().split("\n\n")
    assert len(tables) == 2
    for table in tables:
        lines = table.strip().splitlines()
        assert lines[0].split()[:3] == ["NAME", "STATE", "IN/S"]
        assert [line.split()[:2] for line in lines[1:]] == [["audit", "RUNNING"], ["orders", "RUNNING"]]


async def test_top_without_a_daemon_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert await asyncio.to_thread(top, "127.0.0.1:9", 0.05, 1, io.StringIO()) == 1
    assert (
        capsys.readouterr().err
        == "pipes top: no daemon at 127.0.0.1:9 (is `pipes run` running with --admin?)\n"
    )


async def test_a_terminal_gone_is_a_key_that_quits() -> None:
    import os
    import pty

    leader, follower = pty.openpty()
    keys: asyncio.Queue[str] = asyncio.Queue()
    with os.fdopen(follower, "r") as stream, _keys(stream, keys) as interactive:
        assert interactive
        os.write(leader, b"j")
        assert await asyncio.wait_for(keys.get(), 5) == "j"
        os.close(leader)  # the terminal window closed
        assert await asyncio.wait_for(keys.get(), 5) == "hangup"
    assert TopView("x").press("hangup", []) == ("quit", "")
