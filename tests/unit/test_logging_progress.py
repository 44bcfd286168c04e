"""Logs are an interface: bound with the pipe, filtered per pipe; progress and summary lines."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pyte
import pytest
import structlog

from pipes.observe import configure_logging
from pipes.progress import Progress, summary_lines
from pipes.terminal import TerminalLines
from pipes.testing import channel, make_runner


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    output = configure_logging("json", stream=stream)
    yield stream
    output.close()
    structlog.reset_defaults()


def definition(ch: dict[str, str], level: str) -> dict[str, object]:
    return {
        "name": f"log-{level.lower()}",
        "source": {"type": "memory", "channel": ch["in"]},
        "filter": {"jmespath": "body != `2`"},
        "target": {"type": "memory", "channel": ch["out"]},
        "log_level": level,
    }


async def run(ch: dict[str, str], level: str, stream: io.StringIO) -> list[dict[str, object]]:
    channel(ch["in"]).put(1, 2, 3)
    runner = make_runner(definition(ch, level))
    await runner.run()
    return [json.loads(line) for line in stream.getvalue().splitlines()]


async def test_trace_logs_each_events_way_bound_with_the_pipe(
    channels: dict[str, str], log_lines: io.StringIO
) -> None:
    lines = await run(channels, "TRACE", log_lines)
    assert all(line["pipe"] == "log-trace" for line in lines)
    events = [line["event"] for line in lines]
    assert events.count("event_received") == 3
    assert events.count("event_filtered") == 1
    assert events.count("event_delivered") == 2


async def test_info_logs_nothing_per_event(channels: dict[str, str], log_lines: io.StringIO) -> None:
    lines = await run(channels, "INFO", log_lines)
    assert [line["event"] for line in lines] == ["pipe_started", "pipe_stopped"]
    assert lines[1]["delivered"] == 2 and lines[1]["filtered"] == 1


async def test_off_logs_nothing(channels: dict[str, str], log_lines: io.StringIO) -> None:
    assert await run(channels, "OFF", log_lines) == []


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def screen_of(text: str, rows: int = 40) -> list[str]:
    """What a terminal shows after ``text`` (a terminal turns each newline into CR LF)."""
    screen = pyte.Screen(100, rows)
    pyte.Stream(screen).feed(text.replace("\n", "\r\n"))
    return [line.rstrip() for line in screen.display if line.strip()]


async def test_progress_draws_a_line_per_pipe_on_a_terminal_only(channels: dict[str, str]) -> None:
    channel(channels["in"]).put(1, 2, 3)
    runner = make_runner(definition(channels, "OFF"))
    await runner.run()
    screen = Terminal()
    progress = Progress([runner], TerminalLines(screen))
    progress.draw()
    progress.draw()
    assert screen_of(screen.getvalue()) == ["log-off [STOPPED] in 3, filtered 1, delivered 2, 0/s"]
    assert not Progress([runner], TerminalLines(io.StringIO())).enabled


async def test_log_lines_go_above_the_progress_block_and_stay(channels: dict[str, str]) -> None:
    channel(channels["in"]).put(1, 2, 3)
    runner = make_runner(definition(channels, "OFF"))
    await runner.run()
    screen = Terminal()
    terminal = TerminalLines(screen)
    progress = Progress([runner, runner], terminal)
    progress.draw()
    for n in range(5):
        terminal.write(f"log line {n}\n")
        progress.draw()
    terminal.write("a line written ")  # in two parts, as print() does
    terminal.write("in two parts\n")
    shown = screen_of(screen.getvalue())
    assert shown[:6] == [*(f"log line {n}" for n in range(5)), "a line written in two parts"]
    assert shown[6:] == ["log-off [STOPPED] in 3, filtered 1, delivered 2, 0/s"] * 2
    terminal.close()
    assert screen_of(screen.getvalue())[6:] == []  # the block is gone at the end, no stale copies


def test_the_block_fits_the_terminal_width() -> None:
    screen = Terminal()
    terminal = TerminalLines(screen)
    terminal.show(["x" * 300])
    terminal.write("after\n")
    assert screen_of(screen.getvalue()) == ["after", "x" * 79]


async def test_summary_line(channels: dict[str, str]) -> None:
    channel(channels["in"]).put(1, 2, 3)
    runner = make_runner(definition(channels, "OFF"))
    await runner.run()
    [line] = summary_lines([(runner, 2.0, None)])
    assert line == (
        "log-off: stopped; received 3, filtered 1, delivered 2, dead-lettered 0, failed attempts 0 in 2.0s (2 events/s)"
    )
