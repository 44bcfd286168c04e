"""Live taps: each stage's tap sees exactly the events that reached it, copied; a slow viewer loses only tap lines."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from runner_kit import pipe, run_to_end, runner_for

from connectors.memory import HUB
from pipes.checkpoints import Batch
from pipes.clock import ManualClock
from pipes.errors import FatalError
from pipes.events import Event
from pipes.patterns import EventFilter
from pipes.tap import STAGES, TapHub, TooManyTaps, tap_line
from pipes.testing import run_pipe


async def drain(tap: Any) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in await tap.lines(0)]


def by_stage(lines: list[dict[str, Any]]) -> dict[str, list[tuple[Any, str]]]:
    out: dict[str, list[tuple[Any, str]]] = {stage: [] for stage in STAGES}
    for line in lines:
        out[line["stage"]].append((line["position"], line["outcome"]))
    return out


# ---------------------------------------------------------------------- the hub


def event(n: int) -> Event:
    return Event({"body": {"n": n}}, "p0", n)


async def test_a_hub_is_active_only_while_a_tap_is_attached() -> None:
    hub = TapHub("t", ManualClock())
    assert not hub.active
    tap = hub.attach(stages=["filter"])
    assert hub.active and hub.wants("filter") and not hub.wants("target")
    hub.detach(tap)
    assert not hub.active and not hub.wants("filter")
    assert tap.ended and tap.reason == "detached"


async def test_a_tap_takes_its_stages_and_what_its_pattern_selects() -> None:
    hub = TapHub("t", ManualClock())
    tap = hub.attach(stages=["filter"], where=EventFilter.compile([{"outcome": ["filtered"]}]), rate=None)
    hub.offer(
        [
            ("source", "received", event(1), None),
            ("filter", "matched", event(1), True),
            ("filter", "filtered", event(2), False),
        ]
    )
    [line] = await drain(tap)
    assert line["pipe"] == "t" and line["stage"] == "filter" and line["outcome"] == "filtered"
    assert line["position"] == 2 and line["record"] == {"body": {"n": 2}}
    assert line["time"].endswith("Z")


async def test_a_line_is_a_copy_made_when_offered() -> None:
    hub = TapHub("t", ManualClock())
    tap = hub.attach(rate=None)
    e = event(1)
    hub.offer([("source", "received", e, None)])
    e.record["body"]["n"] = 999  # a later stage changes the event
    [line] = await drain(tap)
    assert line["record"] == {"body": {"n": 1}}


async def test_the_limit_ends_the_tap_and_detaches_it() -> None:
    hub = TapHub("t", ManualClock())
    tap = hub.attach(limit=2, rate=None)
    hub.offer([("source", "received", event(n), None) for n in range(5)])
    assert [line["position"] for line in await drain(tap)] == [0, 1]
    assert tap.reason == "limit" and not hub.active


async def test_the_rate_skips_lines_beyond_it_and_counts_them() -> None:
    clock = ManualClock()
    hub = TapHub("t", clock)
    tap = hub.attach(rate=2)
    hub.offer([("source", "received", event(n), None) for n in range(5)])
    assert [line["position"] for line in await drain(tap)] == [0, 1]
    assert tap.over_rate == 3
    await clock.advance(1.0)  # two more tokens
    hub.offer([("source", "received", event(n), None) for n in range(5, 10)])
    assert [line["position"] for line in await drain(tap)] == [5, 6]
    assert tap.over_rate == 6 and tap.dropped == 0


async def test_a_full_buffer_drops_lines_and_counts_them() -> None:
    hub = TapHub("t", ManualClock())
    tap = hub.attach(rate=None, buffer=3)
    hub.offer([("source", "received", event(n), None) for n in range(10)])
    assert tap.dropped == 7 and tap.sent == 3
    assert [line["position"] for line in await drain(tap)] == [0, 1, 2]
    hub.offer([("source", "received", event(10), None)])  # room again once the viewer took them
    assert [line["position"] for line in await drain(tap)] == [10]


async def test_bad_arguments_and_too_many_taps_are_refused() -> None:
    hub = TapHub("t", ManualClock(), max_taps=2)
    with pytest.raises(ValueError, match="unknown stage 'sink'"):
        hub.attach(stages=["sink"])
    with pytest.raises(ValueError, match="limit"):
        hub.attach(limit=0)
    hub.attach()
    hub.attach()
    with pytest.raises(TooManyTaps):
        hub.attach()
    hub.close("daemon stopping")
    assert not hub.active
    hub.attach()  # room again


def test_tap_lines_carry_what_each_stage_saw() -> None:
    e = Event({"body": {"n": 1}}, "p0", 4, payload={"out": 1})
    assert tap_line("filter", "matched", e, True)["record"] == {"body": {"n": 1}}
    enriched = tap_line("enrichment", "enriched", e, [{"x": 1}])
    assert enriched["record"] == {"body": {"n": 1}} and enriched["result"] == [{"x": 1}]
    assert tap_line("transform", "transformed", e, {"out": 1})["payload"] == {"out": 1}
    assert tap_line("target", "delivered", e, None)["payload"] == {"out": 1}
    failed = tap_line("target", "failed", e, FatalError("no"))
    assert failed["error"] == {"type": "FatalError", "message": "no"} and failed["payload"] == {"out": 1}
    dead = tap_line("dead_letter", "dead_lettered", e, {"stage": "target"})
    assert dead["dead_letter"] == {"stage": "target"} and "record" not in dead


# ---------------------------------------------------------------------- a running pipe


def enrich(record: dict[str, Any]) -> list[Any]:
    n = record["body"]["n"]
    if n % 4 == 0:
        return []  # dropped
    if n == 5:
        return [{"body": {"n": 50}}, {"body": {"n": 51}}]  # fanned out
    return [record]


async def test_each_stage_sees_exactly_the_events_that_reached_it(channels: dict[str, str]) -> None:
    source = HUB.channel(channels["in"])
    source.put(*({"n": n} for n in range(12)))
    HUB.channel(channels["enrich"]).enrich = enrich
    HUB.channel(channels["out"]).fail = lambda e: FatalError("refused") if e.payload["n"] == 7 else None
    definition = pipe(
        channels,
        filter=[{"body": {"n": [{"numeric": ["<", 10]}]}}],  # 10 and 11 are filtered out
        enrichment={"type": "memory", "channel": channels["enrich"]},
        transform={"jmespath": "{n: body.n}"},
        dead_letter={"type": "memory", "channel": channels["dlq"]},
    )
    clock = ManualClock()
    runner = runner_for(definition, clock)
    tap = runner.taps.attach(rate=None, buffer=10_000)
    await run_to_end(runner, clock)
    seen = by_stage(await drain(tap))
    assert seen["source"] == [(n, "received") for n in range(12)]
    assert seen["filter"] == [(n, "matched") for n in range(10)] + [(10, "filtered"), (11, "filtered")]
    passed_enrichment = [1, 2, 3, 5, 5, 6, 7, 9]  # 0, 4, 8 dropped; 5 became two events
    assert sorted(seen["enrichment"]) == sorted(
        [(n, "dropped") for n in (0, 4, 8)] + [(n, "enriched") for n in (1, 2, 3, 5, 6, 7, 9)]
    )
    assert [p for p, _ in seen["transform"]] == passed_enrichment
    assert sorted(seen["target"]) == sorted(
        [(n, "delivered") for n in passed_enrichment if n != 7] + [(7, "failed")]
    )
    assert seen["dead_letter"] == [(7, "dead_lettered")]
    assert tap.dropped == 0 and tap.over_rate == 0
    assert HUB.channel(channels["out"]).written == [{"n": n} for n in (1, 2, 3, 50, 51, 6, 9)]


async def test_with_no_tap_the_steps_record_nothing_per_event(channels: dict[str, str]) -> None:
    runner = runner_for(pipe(channels, filter=[{"body": {"n": [1]}}]))
    batch = Batch("p0", [event(1)], 0.0, 0.0)
    assert runner.processor._tally(batch).trace is None
    tap = runner.taps.attach()
    assert runner.processor._tally(batch).trace == []
    runner.taps.detach(tap)
    assert runner.processor._tally(batch).trace is None


async def test_a_tap_whose_viewer_never_reads_loses_tap_lines_never_pipe_events(
    channels: dict[str, str],
) -> None:
    HUB.channel(channels["in"]).put(*({"n": n} for n in range(2_000)))
    clock = ManualClock()
    runner = runner_for(pipe(channels, batch={"size": 100, "window": "0ms"}), clock)
    tap = runner.taps.attach(rate=None)  # the default buffer, never read
    await run_to_end(runner, clock)
    assert HUB.channel(channels["out"]).written == [{"n": n} for n in range(2_000)]
    assert runner.stats.delivered == 2_000
    assert tap.sent == 256 and tap.dropped == 2 * 2_000 - 256  # source and target lines


@pytest.mark.parametrize("tapped", [False, True])
async def test_a_tap_does_not_change_what_a_filter_on_wide_numbers_passes(
    tmp_path: Any, tapped: bool
) -> None:
    """Traced events are matched one by one: decoded exactly, as the fast path does, or 2**64 + 1 == 2**64."""
    (tmp_path / "in.jsonl").write_text('{"n": 18446744073709551617}\n{"n": 18446744073709551616}\n')
    definition = {
        "name": "wide",
        "source": {"type": "file", "path": str(tmp_path / "in.jsonl")},
        "filter": [{"body": {"n": [18446744073709551617]}}],
        "target": {"type": "file", "path": str(tmp_path / "out.jsonl")},
    }
    hub = TapHub("wide")
    if tapped:
        hub.attach(rate=None)
    stats = await run_pipe(definition, state_dir=tmp_path / "state", taps=hub)
    assert (stats.delivered, stats.filtered) == (1, 1)
    assert (tmp_path / "out.jsonl").read_text() == '{"n": 18446744073709551617}\n'


async def test_large_records_are_bounded_by_bytes_too() -> None:
    hub = TapHub("t", ManualClock())
    tap = hub.attach(rate=None)
    big = Event({"body": "x" * 1_000_000}, "p0", 0)
    hub.offer([("source", "received", big, None)] * 10)
    assert tap.sent == 5 and tap.dropped == 5  # about 4 MiB held, the rest dropped
    assert len(await drain(tap)) == 5
