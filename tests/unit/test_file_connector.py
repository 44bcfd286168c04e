"""The file source (following JSON lines) and the file target (appending them)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest
from structlog.testing import capture_logs

from connectors.file import FileSource, FileSourceOptions, FileTarget, FileTargetOptions, connector
from pipes.clock import ManualClock
from pipes.connector import ConnectorContext, SourceContext
from pipes.errors import FatalError, RetryableError
from pipes.events import Event


async def open_source(
    path: Path,
    *,
    once: bool = False,
    checkpoint: dict[str, int | str] | None = None,
    clock: ManualClock | None = None,
    **options: object,
) -> FileSource:
    source = FileSource(FileSourceOptions.model_validate({"path": str(path), **options}))
    context = SourceContext(pipe="t", once=once, checkpoint=checkpoint or {})
    if clock is not None:
        context = SourceContext(pipe="t", once=once, checkpoint=checkpoint or {}, clock=clock)
    await source.start(context)
    return source


def bodies(events: list[Event]) -> list[object]:
    return [e.body for e in events]


async def test_reads_json_and_text_lines_with_offsets(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"a":1}\nplain text\n[1,2]\n')
    source = await open_source(path)
    events = await source.read(100, 0)
    assert bodies(events) == [{"a": 1}, "plain text", [1, 2]]
    assert [e.record["offset"] for e in events] == [0, 8, 19]
    assert [e.position for e in events] == [8, 19, 25]
    assert {e.partition for e in events} == {str(path)}
    assert events[0].record == {"path": str(path), "offset": 0, "body": {"a": 1}}
    assert await source.read(100, 0) == []
    await source.stop()


async def test_blank_lines_are_skipped_and_crlf_tolerated(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"a":1}\r\n\n   \n\t \r\ntext\r\n')  # whitespace-only lines are blank too
    source = await open_source(path, once=True)
    events = await source.read(100, 0)
    assert bodies(events) == [{"a": 1}, "text"]
    assert events[-1].position == path.stat().st_size
    assert source.caught_up()
    await source.stop()


async def test_max_events_splits_reads_without_losing_lines(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"".join(orjson.dumps({"n": n}) + b"\n" for n in range(2500)))
    source = await open_source(path, once=True)
    seen: list[object] = []
    while not source.caught_up():
        batch = await source.read(1000, 0)
        assert len(batch) <= 1000
        seen.extend(e.body["n"] for e in batch)
    assert seen == list(range(2500))
    await source.stop()


async def test_lines_longer_than_a_chunk(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    big = "x" * (3 << 20)
    path.write_bytes(orjson.dumps({"big": big}) + b"\n" + b'{"after":1}\n')
    source = await open_source(path)
    events = await source.read(10, 0)
    assert bodies(events) == [{"big": big}, {"after": 1}]
    await source.stop()


async def test_partial_line_waits_until_completed(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"a":1}\n{"b":')
    source = await open_source(path)
    assert bodies(await source.read(100, 0)) == [{"a": 1}]
    assert await source.read(100, 0) == []
    with path.open("ab") as handle:
        handle.write(b'2}\n{"c":3}\n')
    events = await source.read(100, 0)
    assert bodies(events) == [{"b": 2}, {"c": 3}]
    assert events[0].record["offset"] == 8
    await source.stop()


async def test_once_treats_trailing_partial_line_as_complete(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"a":1}\n{"b":2}')
    source = await open_source(path, once=True)
    assert not source.caught_up()
    events = await source.read(100, 0)
    assert bodies(events) == [{"a": 1}]
    events += await source.read(100, 0)
    assert bodies(events) == [{"a": 1}, {"b": 2}]
    assert events[-1].position == path.stat().st_size
    assert source.caught_up()
    await source.stop()


async def test_once_is_caught_up_at_the_size_seen_at_start(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"1\n2\n")
    source = await open_source(path, once=True)
    with path.open("ab") as handle:
        handle.write(b"3\n")  # written after start: may be read, need not be
    events = await source.read(1, 0)
    assert bodies(events) == [1]
    assert not source.caught_up()
    await source.read(1, 0)
    assert source.caught_up()
    await source.stop()


async def test_resumes_at_checkpointed_position(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"1\n2\n3\n")
    source = await open_source(path, once=True)
    first = await source.read(2, 0)
    await source.stop()
    resumed = await open_source(path, once=True, checkpoint={str(path): first[-1].position})
    assert bodies(await resumed.read(100, 0)) == [3]
    assert resumed.caught_up()
    await resumed.stop()


async def test_rerun_after_everything_settled_reads_nothing(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"1\n2\n")
    source = await open_source(path, once=True, checkpoint={str(path): 4})
    assert source.caught_up()
    assert await source.read(100, 0) == []
    await source.stop()


async def test_start_at_end_skips_existing_lines(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"old\nhalf-writ")
    source = await open_source(path, start_at="end")
    assert await source.read(100, 0) == []
    with path.open("ab") as handle:
        handle.write(b"ten\nnew\n")
    assert bodies(await source.read(100, 0)) == ["half-written", "new"]
    await source.stop()


async def test_checkpoint_wins_over_start_at_end(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"1\n2\n")
    source = await open_source(path, start_at="end", checkpoint={str(path): 2})
    assert bodies(await source.read(100, 0)) == [2]
    await source.stop()


async def test_truncation_restarts_from_zero(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"first line\nsecond line\n")
    source = await open_source(path)
    assert len(await source.read(100, 0)) == 2
    with path.open("r+b") as handle:  # truncate in place, as copytruncate does
        handle.truncate(0)
        handle.write(b"new\n")
    with capture_logs() as logs:
        events = await source.read(100, 0)
    assert bodies(events) == ["new"]
    assert events[0].record["offset"] == 0
    assert any(entry["event"] == "file_truncated" for entry in logs)
    await source.stop()


async def test_checkpoint_beyond_the_end_restarts_from_zero(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"1\n")
    with capture_logs() as logs:
        source = await open_source(path, checkpoint={str(path): 1000})
    assert bodies(await source.read(100, 0)) == [1]
    assert [entry["event"] for entry in logs] == ["file_truncated"]
    await source.stop()


async def test_rotation_drains_the_old_file_then_follows_the_new(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"1\n")
    source = await open_source(path)
    assert bodies(await source.read(100, 0)) == [1]
    with path.open("ab") as handle:
        handle.write(b"2\n")
    path.rename(tmp_path / "in.jsonl.1")
    path.write_bytes(b"3\n")
    assert bodies(await source.read(100, 0)) == [2]
    assert bodies(await source.read(100, 0)) == [3]
    await source.stop()


async def test_missing_file_in_once_mode_is_fatal(tmp_path: Path) -> None:
    path = tmp_path / "nope.jsonl"
    source = FileSource(FileSourceOptions(path=str(path)))
    with pytest.raises(FatalError) as info:
        await source.start(SourceContext(pipe="t", once=True))
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)
    await source.stop()


async def test_missing_file_is_waited_for(tmp_path: Path) -> None:
    path = tmp_path / "later.jsonl"
    with capture_logs() as logs:
        source = await open_source(path, start_at="end")
        assert await source.read(100, 0) == []
        assert await source.read(100, 0) == []
    assert [entry["event"] for entry in logs] == ["file_missing"]
    path.write_bytes(b'{"x":1}\n')
    # A file that appears after start is new: read from its beginning.
    assert bodies(await source.read(100, 0)) == [{"x": 1}]
    await source.stop()


async def test_read_polls_on_the_clock_until_timeout(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"")
    clock = ManualClock()
    source = await open_source(path, clock=clock, poll_interval="100ms")
    reading = asyncio.create_task(source.read(100, 1.0))
    for _ in range(1000):
        if clock.sleepers:
            break
        await asyncio.sleep(0)
    path.write_bytes(b"late\n")
    await clock.advance(0.1)
    assert bodies(await asyncio.wait_for(reading, 1.0)) == ["late"]
    reading = asyncio.create_task(source.read(100, 0.3))
    for _ in range(6):
        await clock.advance(0.1)
    assert await asyncio.wait_for(reading, 1.0) == []
    await source.stop()


def test_source_options() -> None:
    options = FileSourceOptions.model_validate({"path": "x", "poll_interval": "50ms"})
    assert options.poll_interval == pytest.approx(0.05)
    assert options.start_at == "beginning"
    with pytest.raises(ValueError):
        FileSourceOptions.model_validate({})
    with pytest.raises(ValueError):
        FileSourceOptions.model_validate({"path": "x", "start_at": "middle"})
    for model in (FileSourceOptions, FileTargetOptions):
        for name, field in model.model_fields.items():
            assert field.description, name


# -- target -----------------------------------------------------------------------


def payload_events(*payloads: object) -> list[Event]:
    return [
        Event(record={}, partition="p", position=i, payload=payload) for i, payload in enumerate(payloads)
    ]


async def open_target(path: Path, **options: object) -> FileTarget:
    target = FileTarget(FileTargetOptions.model_validate({"path": str(path), **options}))
    await target.start(ConnectorContext(pipe="t"))
    return target


async def test_target_appends_one_line_per_payload(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "out.jsonl"
    target = await open_target(path)
    outcomes = await target.write(payload_events({"a": 1, "b": "é"}, "verbatim text", [1, 2]))
    assert outcomes == [None, None, None]
    assert await target.write(payload_events('{"already":"json"}')) == [None]
    await target.stop()
    assert path.read_bytes() == ('{"a":1,"b":"é"}\nverbatim text\n[1,2]\n{"already":"json"}\n'.encode())


async def test_target_keeps_existing_content(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_bytes(b"before\n")
    target = await open_target(path, fsync=False)
    await target.write(payload_events({"n": 1}))
    await target.stop()
    assert path.read_bytes() == b'before\n{"n":1}\n'


async def test_target_round_trips_through_the_source(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    target = await open_target(path)
    sent = [{"n": n, "s": "x" * (n % 7)} for n in range(300)]
    await target.write(payload_events(*sent))
    await target.stop()
    source = await open_source(path, once=True)
    assert bodies(await source.read(1000, 0)) == sent
    await source.stop()


async def test_target_without_mkdir_refuses_a_missing_directory(tmp_path: Path) -> None:
    target = FileTarget(FileTargetOptions(path=str(tmp_path / "no" / "out.jsonl"), mkdir=False))
    with pytest.raises(FatalError, match="cannot open"):
        await target.start(ConnectorContext(pipe="t"))
    await target.stop()


async def test_target_on_a_directory_is_fatal(tmp_path: Path) -> None:
    target = FileTarget(FileTargetOptions(path=str(tmp_path)))
    with pytest.raises(FatalError):
        await target.start(ConnectorContext(pipe="t"))
    await target.stop()


@pytest.mark.parametrize("fsync", [True, False])
async def test_write_errors_are_retryable_per_event(fsync: bool) -> None:
    # /dev/full fails every write with ENOSPC, like a full disk.
    target = await open_target(Path("/dev/full"), mkdir=False, fsync=fsync)
    outcomes = await target.write(payload_events({"a": 1}, "b"))
    assert len(outcomes) == 2
    assert all(isinstance(o, RetryableError) for o in outcomes)
    assert "/dev/full" in str(outcomes[0])
    await target.stop()


def test_connector_descriptor() -> None:
    assert connector.name == "file"
    assert connector.roles == ["source", "target"]


async def test_once_ends_when_the_file_is_truncated_below_the_start_size(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"one\ntwo\nthree\n")
    source = await open_source(path, once=True)
    assert bodies(await source.read(1, 0)) == ["one"]
    path.write_bytes(b"x\n")  # truncated and rewritten, shorter than at start
    # Lines already read into memory before the truncation still come out.
    assert bodies(await source.read(100, 0)) == ["two", "three"]
    assert bodies(await source.read(100, 0)) == ["x"]
    assert source.caught_up()
    assert await source.read(100, 0) == []
    await source.stop()
