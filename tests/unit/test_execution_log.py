"""Execution logs as AWS Pipes has them: ``log: {level, include_execution_data}``; data only when asked for."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from pipes.config import load_text
from pipes.errors import FatalError
from pipes.observe import configure_logging
from pipes.testing import channel, make_runner

SECRET = "ann@example.com"  # personal data a payload may carry


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    output = configure_logging("json", stream=stream)
    yield stream
    output.close()
    structlog.reset_defaults()


async def run(ch: dict[str, str], stream: io.StringIO, **log: Any) -> list[dict[str, Any]]:
    channel(ch["in"]).put({"n": 1, "email": SECRET}, {"n": 2, "email": SECRET}, {"n": 3, "email": SECRET})
    channel(ch["out"]).fail = lambda e: FatalError("refused") if e.payload["n"] == 3 else None
    runner = make_runner(
        {
            "name": "exec-log",
            "source": {"type": "memory", "channel": ch["in"]},
            "filter": {"jmespath": "body.n != `2`"},
            "transform": {"jmespath": "{n: body.n, email: body.email}"},
            "target": {"type": "memory", "channel": ch["out"]},
            "dead_letter": {"type": "memory", "channel": ch["dlq"]},
            **log,
        }
    )
    await runner.run()
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def events(lines: list[dict[str, Any]]) -> list[str]:
    return [line["event"] for line in lines]


async def test_trace_without_execution_data_says_where_events_went_and_nothing_they_hold(
    channels: dict[str, str], log_lines: io.StringIO
) -> None:
    lines = await run(channels, log_lines, log={"level": "TRACE"})
    assert events(lines).count("event_received") == 3
    assert events(lines).count("event_filtered") == 1
    assert events(lines).count("event_transformed") == 2
    assert events(lines).count("event_delivered") == 1
    assert events(lines).count("event_failed") == 1
    assert events(lines).count("event_dead_lettered") == 1
    assert SECRET not in log_lines.getvalue()
    for line in lines:
        assert not {"record", "payload", "records"} & line.keys(), line


async def test_trace_with_execution_data_carries_records_and_payloads(
    channels: dict[str, str], log_lines: io.StringIO
) -> None:
    lines = await run(channels, log_lines, log={"level": "TRACE", "include_execution_data": True})
    first = {line["event"]: line for line in reversed(lines)}  # the first line of each kind
    assert first["event_received"]["record"]["body"] == {"n": 1, "email": SECRET}
    assert first["event_filtered"]["record"]["body"]["n"] == 2
    assert first["event_transformed"]["payload"] == {"n": 1, "email": SECRET}
    assert first["event_delivered"]["payload"] == {"n": 1, "email": SECRET}
    failed = first["event_failed"]
    assert failed["stage"] == "target" and failed["payload"] == {"n": 3, "email": SECRET}
    assert first["event_dead_lettered"]["record"]["body"]["n"] == 3


async def test_info_logs_failures_without_data_unless_asked(
    channels: dict[str, str], log_lines: io.StringIO
) -> None:
    lines = await run(channels, log_lines, log={"level": "INFO"})
    assert events(lines) == ["pipe_started", "event_dead_lettered", "pipe_stopped"]
    assert lines[1]["level"] == "warning"  # an event given up on is worth a look, not routine
    assert "record" not in lines[1] and SECRET not in log_lines.getvalue()


async def test_info_with_execution_data_puts_the_record_on_the_dead_letter_line(
    channels: dict[str, str], log_lines: io.StringIO
) -> None:
    lines = await run(channels, log_lines, log={"level": "INFO", "include_execution_data": True})
    [dead] = [line for line in lines if line["event"] == "event_dead_lettered"]
    assert dead["record"]["body"] == {"n": 3, "email": SECRET}
    assert events(lines).count("event_received") == 0  # still nothing per event below TRACE


async def test_off_logs_nothing_even_with_execution_data(
    channels: dict[str, str], log_lines: io.StringIO
) -> None:
    assert await run(channels, log_lines, log={"level": "OFF", "include_execution_data": True}) == []


async def test_log_level_is_still_the_short_form(channels: dict[str, str], log_lines: io.StringIO) -> None:
    lines = await run(channels, log_lines, log_level="TRACE")
    assert events(lines).count("event_received") == 3
    assert SECRET not in log_lines.getvalue()


def test_log_and_log_level_together_is_one_located_error() -> None:
    result = load_text(
        "name: both\nsource: {type: generator}\ntarget: {type: stdout}\n"
        "log: {level: TRACE}\nlog_level: INFO\n",
        "both.yaml",
    )
    assert result.errors == [
        "both.yaml:5:1: log_level: log_level is short for log: {level: ...}; give one of them "
        "(e.g. log: {level: TRACE, include_execution_data: false})"
    ]


def test_unknown_log_keys_and_levels_are_located() -> None:
    result = load_text(
        "name: bad\nsource: {type: generator}\ntarget: {type: stdout}\n"
        "log: {level: DEBUG, execution_data: true}\n",
        "bad.yaml",
    )
    assert [line.split(": ", 2)[:2] for line in result.errors] == [
        ["bad.yaml:4:7", "log.level"],
        ["bad.yaml:4:21", "log.execution_data"],
    ]
