"""Replay plans and moves for the sources whose positions live in the checkpoint store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipes.checkpoints import MemoryCheckpointStore
from pipes.config import load_definition
from pipes.replay import CannotReplay, ReplayRefused, parse_point, replay
from pipes.testing import channel, run_pipe

NOW = 1_764_000_000.0


def test_points_as_written() -> None:
    assert parse_point("beginning", NOW).kind == "beginning"
    assert parse_point("earliest", NOW).kind == "beginning"
    at = parse_point("now-1h", NOW)
    assert (at.kind, at.time_s) == ("time", NOW - 3600)
    assert parse_point("2025-11-24T16:00:00Z", NOW).time_ms == int(NOW * 1000)
    bare = parse_point("500", NOW)
    assert (bare.kind, bare.position_for("any")) == ("positions", "500")
    per = parse_point("shop.cart-0=120, shop.cart-1=98", NOW)
    assert per.position_for("shop.cart-1") == "98" and per.position_for("shop.cart-2") is None
    ids = parse_point("orders=1700000000000-3", NOW)
    assert ids.position_for("orders") == "1700000000000-3"
    for bad in ("", "=5", "p0=", "5,p0=3"):
        with pytest.raises(ValueError):
            parse_point(bad, NOW)


def generator_pipe(tmp_path: Path) -> Any:
    return load_definition(
        {
            "name": "gen",
            "source": {"type": "generator", "count": 100},
            "target": {"type": "file", "path": str(tmp_path / "out.jsonl"), "fsync": False},
        }
    )


async def test_generator_moves_back_to_an_index_and_refuses_to_skip(tmp_path: Path) -> None:
    store = MemoryCheckpointStore()
    definition = generator_pipe(tmp_path)
    await store.save("gen", {"generator": 59})  # delivered 0..59
    (move,) = await replay(definition, store, parse_point("40", NOW))
    assert (move.partition, move.old, move.new, move.events, move.forward) == ("generator", 59, 39, 20, False)
    assert store.saved["gen"] == {"generator": 39}
    (move,) = await replay(definition, store, parse_point("beginning", NOW))
    assert (move.new, move.events) == (None, 40)
    assert store.saved["gen"] == {}
    with pytest.raises(ReplayRefused, match="--force") as refused:
        await replay(definition, store, parse_point("70", NOW))
    assert refused.value.moves[0].events == -70
    assert store.saved["gen"] == {}  # nothing moved
    (move,) = await replay(definition, store, parse_point("70", NOW), force=True)
    assert store.saved["gen"] == {"generator": 69} and move.forward
    with pytest.raises(CannotReplay, match="cannot replay from a time"):
        await replay(definition, store, parse_point("now-1h", NOW))
    with pytest.raises(CannotReplay, match="no partition named"):
        await replay(definition, store, parse_point("other=3", NOW))


async def test_a_generator_pipe_delivers_again_from_the_index(tmp_path: Path) -> None:
    store = MemoryCheckpointStore()
    definition = {
        "name": "gen",
        "source": {"type": "generator", "count": 30},
        "transform": {"template": "<$.index>"},
        "target": {"type": "file", "path": str(tmp_path / "out.jsonl"), "fsync": False},
    }
    await run_pipe(definition, store=store)
    await replay(load_definition(definition), store, parse_point("25", NOW))
    await run_pipe(definition, store=store)
    lines = (tmp_path / "out.jsonl").read_text().split()
    assert lines == [str(i) for i in range(30)] + ["25", "26", "27", "28", "29"]


async def test_file_moves_to_the_start_of_the_line_at_or_after_an_offset(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_bytes(b'{"a":1}\n{"a":2}\n{"a":3}\n')  # lines start at 0, 8, 16
    definition = {
        "name": "lines",
        "source": {"type": "file", "path": str(source)},
        "target": {"type": "file", "path": str(tmp_path / "out.jsonl"), "fsync": False},
    }
    store = MemoryCheckpointStore()
    await run_pipe(definition, store=store)
    assert store.saved["lines"] == {str(source): 24}
    loaded = load_definition(definition)
    for offset, start, events in (("8", 8, 2), ("9", 16, 1), ("16", 16, 1), ("0", 0, 3)):
        (move,) = await replay(loaded, store, parse_point(f"{source}={offset}", NOW), force=True)
        assert (move.new, move.events) == (start, events), offset
        await store.save("lines", {str(source): 24})
    await replay(loaded, store, parse_point("9", NOW))
    await run_pipe(definition, store=store)
    assert (tmp_path / "out.jsonl").read_text().splitlines() == ['{"a":1}', '{"a":2}', '{"a":3}', '{"a":3}']
    with pytest.raises(CannotReplay, match="cannot replay from a time"):
        await replay(loaded, store, parse_point("now-5m", NOW))
    with pytest.raises(CannotReplay, match="has 24 bytes"):
        await replay(loaded, store, parse_point("99", NOW))


async def test_memory_source_with_native_positions(channels: dict[str, str]) -> None:
    definition = {
        "name": "mem",
        "source": {"type": "memory", "channel": channels["in"], "native_commit": True},
        "target": {"type": "memory", "channel": channels["out"]},
    }
    channel(channels["in"]).put(*range(5), partition="a")
    channel(channels["in"]).put(*range(3), partition="b")
    await run_pipe(definition)
    assert channel(channels["in"]).committed == {"a": 4, "b": 2}
    moves = await replay(load_definition(definition), MemoryCheckpointStore(), parse_point("a=2", NOW))
    assert [(m.partition, m.old, m.new) for m in moves] == [("a", 4, 1)]
    assert channel(channels["in"]).committed == {"a": 1, "b": 2}
    await run_pipe(definition)
    assert channel(channels["out"]).written == [0, 1, 2, 3, 4, 0, 1, 2, 2, 3, 4]


async def test_a_source_without_replay_says_so(channels: dict[str, str]) -> None:
    definition = load_definition(
        {
            "name": "subs",
            "source": {"type": "redis_pubsub", "channels": ["x"]},
            "target": {"type": "memory", "channel": channels["out"]},
        }
    )
    with pytest.raises(CannotReplay, match="redis_pubsub source of pipe 'subs' cannot replay"):
        await replay(definition, MemoryCheckpointStore(), parse_point("beginning", NOW))
