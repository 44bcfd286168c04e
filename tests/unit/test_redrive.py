"""Dead letters read back and sent again through their pipe (memory and file dead letters)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from connectors.kafka.reading import PartitionReader
from pipes.checkpoints import FileCheckpointStore, MemoryCheckpointStore
from pipes.config import load_definition
from pipes.connector import ConnectorContext
from pipes.dead_letters import CannotReadBack, Selection, reader_for
from pipes.errors import FatalError, RetryableError
from pipes.redrive import Redrive, open_log
from pipes.testing import channel, run_pipe


def pipe(channels: dict[str, str], **extra: Any) -> dict[str, Any]:
    return {
        "name": "orders",
        "source": {"type": "memory", "channel": channels["in"]},
        "target": {"type": "memory", "channel": channels["out"]},
        "dead_letter": {"type": "memory", "channel": channels["dlq"]},
        "retry": {"max_attempts": 1},
        "batch": {"size": 10, "window": 0},
        **extra,
    }


async def dead_lettered(channels: dict[str, str], count: int, **extra: Any) -> dict[str, Any]:
    """Run the pipe once with a target that refuses everything: ``count`` dead letters."""
    definition = pipe(channels, **extra)
    channel(channels["in"]).put(*[{"n": i, "kind": "even" if i % 2 == 0 else "odd"} for i in range(count)])
    channel(channels["out"]).fail = lambda event: RetryableError("reporting db is down")
    stats = await run_pipe(definition)
    assert stats.dead_lettered + stats.filtered == count
    return definition


def delivered(channels: dict[str, str]) -> Counter[int]:
    return Counter(payload["n"] for payload in channel(channels["out"]).written)


async def test_ls_counts_what_waits_by_stage_and_error(channels: dict[str, str]) -> None:
    definition = await dead_lettered(channels, 25)
    log = await open_log(
        load_definition(definition), MemoryCheckpointStore(), ConnectorContext(pipe="orders")
    )
    summary = (await log.summary()).as_dict()
    assert summary["count"] == 25
    assert summary["type"] == "memory"
    assert summary["by_stage"] == {"target": 25}
    assert summary["by_error"] == {"RetryableError": 25}
    assert summary["oldest"] <= summary["newest"]
    assert summary["redriven"] == 0


async def test_show_selects_by_pattern_since_and_limit(channels: dict[str, str]) -> None:
    definition = await dead_lettered(channels, 20)
    log = await open_log(
        load_definition(definition), MemoryCheckpointStore(), ConnectorContext(pipe="orders")
    )

    async def shown(selection: Selection) -> list[int]:
        return [p.letter.record["record"]["body"]["n"] async for batch in log.scan(selection) for p in batch]  # type: ignore[index]

    where = Selection.parse({"record": {"body": {"kind": ["odd"]}}}, now_s=0)
    assert await shown(where) == list(range(1, 20, 2))
    by_error = Selection.parse('{"error": {"type": ["RetryableError"]}}', limit="3", now_s=0)
    assert await shown(by_error) == [0, 1, 2]
    none = Selection.parse('{"error": {"type": ["FatalError"]}}', now_s=0)
    assert await shown(none) == []
    future = Selection.parse(since="2999-01-01T00:00:00Z", now_s=0)
    assert await shown(future) == []
    for bad, message in (({"error": "x"}, "--where"), ("now-soon", "--since"), ("0", "--limit")):
        with pytest.raises(ValueError, match=message):
            if message == "--where":
                Selection.parse(bad, now_s=0)
            elif message == "--since":
                Selection.parse(since=str(bad), now_s=0)
            else:
                Selection.parse(limit=bad, now_s=0)


async def test_redrive_delivers_each_once_and_a_second_redrive_sends_nothing(
    channels: dict[str, str],
) -> None:
    definition = load_definition(await dead_lettered(channels, 35))
    store = MemoryCheckpointStore()
    channel(channels["out"]).fail = None  # the cause is fixed
    seen: list[dict[str, Any]] = []
    summary = await Redrive(
        definition, store=store, selection=Selection(), on_progress=lambda p: seen.append(p.as_dict())
    ).run()
    assert (summary.selected, summary.delivered, summary.failed_again) == (35, 35, 0)
    assert delivered(channels) == Counter(range(35))
    assert seen[-1]["finished"] and [p["done"] for p in seen[1:-1]] == [10, 20, 30, 35]
    again = await Redrive(definition, store=store, selection=Selection()).run()
    assert (again.selected, again.delivered) == (0, 0)
    assert delivered(channels) == Counter(range(35))


async def test_records_that_fail_again_carry_redrive_count_and_their_first_failure(
    channels: dict[str, str],
) -> None:
    definition = load_definition(await dead_lettered(channels, 10))
    store = MemoryCheckpointStore()
    dlq = channel(channels["dlq"])
    out = channel(channels["out"])
    out.fail = lambda event: FatalError("still broken") if event.payload["n"] == 3 else None
    first = await Redrive(definition, store=store, selection=Selection()).run()
    assert (first.delivered, first.failed_again) == (9, 1)
    again = dlq.written[-1]
    assert again["redrive_count"] == 1
    assert again["error"] == {"type": "FatalError", "message": "still broken"}
    assert again["first_failure"]["error"] == {"type": "RetryableError", "message": "reporting db is down"}
    assert again["record"]["body"]["n"] == 3
    second = await Redrive(definition, store=store, selection=Selection()).run()
    assert (second.selected, second.failed_again) == (1, 1)
    twice = dlq.written[-1]
    assert twice["redrive_count"] == 2
    assert twice["first_failure"] == again["first_failure"]  # the first failure ever, kept
    out.fail = None
    third = await Redrive(definition, store=store, selection=Selection()).run()
    assert (third.selected, third.delivered) == (1, 1)
    assert delivered(channels) == Counter(range(10))


async def test_a_selective_redrive_leaves_the_rest_for_a_later_one(channels: dict[str, str]) -> None:
    definition = load_definition(await dead_lettered(channels, 12))
    store = MemoryCheckpointStore()
    channel(channels["out"]).fail = None
    odd = Selection.parse({"record": {"body": {"kind": ["odd"]}}}, now_s=0)
    assert (await Redrive(definition, store=store, selection=odd).run()).delivered == 6
    assert sorted(delivered(channels)) == list(range(1, 12, 2))
    log = await open_log(definition, store, ConnectorContext(pipe="orders"))
    assert (await log.summary()).as_dict()["count"] == 6
    assert (await Redrive(definition, store=store, selection=Selection()).run()).delivered == 6
    assert delivered(channels) == Counter(range(12))


async def test_a_stopped_redrive_resumes_without_sending_again(channels: dict[str, str]) -> None:
    definition = load_definition(await dead_lettered(channels, 40))
    store = MemoryCheckpointStore()
    out = channel(channels["out"])
    out.fail = None
    job: Redrive | None = None

    def stop_after_two(progress: Any) -> None:
        if progress.done >= 20 and job is not None:
            job.request_stop()

    job = Redrive(definition, store=store, selection=Selection(), on_progress=stop_after_two)
    stopped = await job.run()
    assert stopped.stopped and stopped.done == 20
    assert delivered(channels) == Counter(range(20))
    rest = await Redrive(definition, store=store, selection=Selection()).run()
    assert (rest.selected, rest.delivered) == (20, 20)
    assert delivered(channels) == Counter(range(40))


async def test_the_pipe_filter_and_transform_apply_again(channels: dict[str, str]) -> None:
    extra = {
        "filter": [{"body": {"kind": ["even"]}}],
        "transform": {"template": '{"n": <$.body.n>, "again": true}'},
    }
    definition = load_definition(await dead_lettered(channels, 10, **extra))
    assert len(channel(channels["dlq"]).written) == 5  # the odd ones were filtered out
    channel(channels["out"]).fail = None
    # The pipe is changed meanwhile: the filter lets odd ones through now, even ones not.
    changed = load_definition(pipe(channels, **{**extra, "filter": [{"body": {"kind": ["odd"]}}]}))
    summary = await Redrive(changed, store=MemoryCheckpointStore(), selection=Selection()).run()
    assert (summary.selected, summary.filtered, summary.delivered) == (5, 5, 0)
    summary = await Redrive(definition, store=MemoryCheckpointStore(), selection=Selection()).run()
    payloads = [orjson.loads(p) for p in channel(channels["out"]).written]
    assert sorted(p["n"] for p in payloads) == [0, 2, 4, 6, 8]
    assert all(p["again"] for p in payloads)


async def test_a_target_failure_after_an_enrichment_goes_on_after_it(channels: dict[str, str]) -> None:
    """Its dead letter holds the enrichment's result: the enricher is not called again."""
    enrich = channel(channels["enrich"])
    calls: list[Any] = []

    def lookup(record: dict[str, Any]) -> list[Any]:
        calls.append(record)
        return [{"customer": f"c-{record['body']['n']}", "tier": "gold"}]

    enrich.enrich = lookup
    extra = {
        "enrichment": {"type": "memory", "channel": channels["enrich"]},
        "transform": {"template": '{"who": <$.customer>}'},
    }
    definition = load_definition(await dead_lettered(channels, 4, **extra))
    assert len(calls) == 4
    assert channel(channels["dlq"]).written[0]["record"] == {"customer": "c-0", "tier": "gold"}
    channel(channels["out"]).fail = None
    summary = await Redrive(definition, store=MemoryCheckpointStore(), selection=Selection()).run()
    assert summary.delivered == 4
    assert len(calls) == 4
    assert sorted(orjson.loads(p)["who"] for p in channel(channels["out"]).written) == [
        f"c-{i}" for i in range(4)
    ]


async def test_dry_run_reports_per_stage_and_writes_nothing(channels: dict[str, str]) -> None:
    extra = {"filter": [{"body": {"kind": ["even"]}}], "transform": {"template": "<$.body.n>"}}
    definition = load_definition(await dead_lettered(channels, 6, **extra))
    store = MemoryCheckpointStore()
    reports: list[dict[str, Any]] = []
    changed = load_definition(
        pipe(channels, **{**extra, "filter": [{"body": {"n": [{"numeric": ["<", 3]}]}}]})
    )
    summary = await Redrive(
        changed, store=store, selection=Selection(), dry_run=True, on_dry_run=reports.append
    ).run()
    assert len(reports) == 3
    assert reports[0]["stages"] == [
        {"stage": "filter", "matched": True},
        {"stage": "transform", "payloads": ["0"]},
    ]
    assert reports[2]["stages"] == [{"stage": "filter", "matched": False}]
    assert (summary.delivered, summary.filtered, summary.dry_run) == (2, 1, True)
    assert channel(channels["out"]).written == []
    assert store.saved == {}
    assert definition.name == "orders"


async def test_a_dead_letter_that_cannot_be_read_back_says_so(channels: dict[str, str]) -> None:
    no_dlq = load_definition({k: v for k, v in pipe(channels).items() if k != "dead_letter"})
    with pytest.raises(CannotReadBack, match="has no dead_letter"):
        reader_for(no_dlq)
    stdout = load_definition({**pipe(channels), "dead_letter": {"type": "stdout"}})
    with pytest.raises(CannotReadBack) as info:
        reader_for(stdout)
    assert "cannot be read back" in str(info.value) and "\n" not in str(info.value)


async def test_file_dead_letters_read_back_with_unreadable_lines_left_alone(
    channels: dict[str, str], tmp_path: Path
) -> None:
    dlq = tmp_path / "dlq" / "orders.jsonl"
    definition = await dead_lettered(channels, 5, dead_letter={"type": "file", "path": str(dlq)})
    with dlq.open("ab") as handle:
        handle.write(b"not json\n\n")  # someone else wrote there; blank lines carry nothing
    loaded = load_definition({**definition, "dead_letter": {"type": "file", "path": str(dlq)}})
    store = FileCheckpointStore(tmp_path / "checkpoints")
    log = await open_log(loaded, store, ConnectorContext(pipe="orders"))
    summary = (await log.summary()).as_dict()
    assert (summary["count"], summary["unreadable"]) == (5, 1)
    channel(channels["out"]).fail = None
    result = await Redrive(loaded, store=store, selection=Selection()).run()
    assert (result.delivered, result.unreadable) == (5, 1)
    assert delivered(channels) == Counter(range(5))
    assert (tmp_path / "checkpoints" / "orders.redrive.json").exists()
    # The unreadable line stays, waiting for a person.
    summary = (await (await open_log(loaded, store, ConnectorContext(pipe="orders"))).summary()).as_dict()
    assert (summary["count"], summary["unreadable"], summary["redriven"]) == (0, 1, 5)


async def test_a_kafka_dead_letter_out_of_reach_is_one_error_and_leaves_no_client_open(
    channels: dict[str, str],
) -> None:
    unreachable = {"type": "kafka", "bootstrap_servers": "127.0.0.1:1", "topic": "dlq"}
    definition = load_definition({**pipe(channels), "dead_letter": unreachable})
    with pytest.raises(RetryableError, match=r"^kafka: cannot reach [^\n]*$"):
        await reader_for(definition).start(ConnectorContext(pipe="orders"))
    assert definition.dead_letter is not None
    partitions = PartitionReader(definition.dead_letter.options, "orders", "dlq")
    with pytest.raises(RetryableError):
        await partitions.start()
    # aiokafka has no public word for it: an unclosed consumer warns "Unclosed AIOKafkaConsumer" when collected.
    assert partitions._consumer._closed
