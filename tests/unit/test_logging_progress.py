"""Logs are an interface: bound with the pipe, filtered per pipe; progress and summary lines."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest
import structlog

from pipes.observe import configure_logging
from pipes.progress import Progress, summary_lines
from pipes.testing import channel, make_runner


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging("json", stream=stream)
    yield stream
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


async def test_progress_draws_a_line_per_pipe_on_a_terminal_only(channels: dict[str, str]) -> None:
    channel(channels["in"]).put(1, 2, 3)
    runner = make_runner(definition(channels, "OFF"))
    await runner.run()
    screen = Terminal()
    progress = Progress([runner], stream=screen)
    progress.draw()
    progress.draw()
    text = screen.getvalue()
    assert "log-off [STOPPED] in 3, filtered 1, delivered 2" in text
    assert "\x1b[1F" in text  # the second draw rewrote the line in place
    plain = io.StringIO()
    assert not Progress([runner], stream=plain).enabled


async def test_summary_line(channels: dict[str, str]) -> None:
    channel(channels["in"]).put(1, 2, 3)
    runner = make_runner(definition(channels, "OFF"))
    await runner.run()
    [line] = summary_lines([(runner, 2.0, None)])
    assert line == (
        "log-off: stopped; received 3, filtered 1, delivered 2, dead-lettered 0, failed attempts 0 in 2.0s (2 events/s)"
    )
