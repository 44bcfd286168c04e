"""The settled-prefix tracker and the checkpoint stores."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipes.checkpoints import FileCheckpointStore, SettledTracker
from pipes.events import Event


def events(partition: str, n: int) -> list[Event]:
    return [Event(record={}, partition=partition, position=i) for i in range(n)]


def test_checkpoint_is_the_contiguous_settled_prefix() -> None:
    tracker = SettledTracker()
    a = events("a", 5)
    for e in a:
        tracker.track(e)
    for i in (1, 2, 4):
        tracker.settle(a[i])
    assert tracker.positions() == {}  # event 0 is not settled: nothing is safe yet
    tracker.settle(a[0])
    assert tracker.positions() == {"a": 2}
    tracker.settle(a[3])
    assert tracker.positions() == {"a": 4}
    assert tracker.in_flight == 0


def test_partitions_are_independent_and_dirty_ones_are_reported_once() -> None:
    tracker = SettledTracker()
    a, b = events("a", 2), events("b", 2)
    for e in a + b:
        tracker.track(e)
    tracker.settle(b[0])
    assert tracker.take_dirty() == {"b": 0}
    assert tracker.take_dirty() == {}
    tracker.settle(a[0])
    tracker.settle(a[1])
    assert tracker.take_dirty() == {"a": 1}


def test_fan_out_settles_the_parent_with_its_last_child() -> None:
    tracker = SettledTracker()
    [parent] = events("a", 1)
    tracker.track(parent)
    children = [parent.derive({"n": i}, "") for i in range(3)]
    tracker.settle(children[0])
    tracker.settle(children[0])  # settling twice counts once
    tracker.settle(children[2])
    assert tracker.positions() == {}
    tracker.settle(children[1])
    assert tracker.positions() == {"a": 0}


def test_forgotten_partitions_are_never_committed() -> None:
    tracker = SettledTracker()
    a = events("a", 3)
    for e in a:
        tracker.track(e)
    tracker.settle(a[0])
    tracker.forget(["a"])
    tracker.settle(a[1])
    assert tracker.positions() == {}
    assert tracker.in_flight == 0


async def test_file_store_round_trip_and_atomic_replace(tmp_path: Path) -> None:
    store = FileCheckpointStore(tmp_path / "cp")
    assert await store.load("p") == {}
    await store.save("p", {"a": 3, "b": "1-0"})
    await store.save("p", {"a": 4, "b": "1-0"})
    assert await store.load("p") == {"a": 4, "b": "1-0"}
    assert sorted(os.listdir(tmp_path / "cp")) == ["p.json"]  # no temporary file left behind


async def test_file_store_keeps_the_old_checkpoint_when_a_write_fails(tmp_path: Path) -> None:
    store = FileCheckpointStore(tmp_path / "cp")
    await store.save("p", {"a": 1})

    class Unserialisable:
        pass

    with pytest.raises(TypeError):
        await store.save("p", {"a": Unserialisable()})  # type: ignore[dict-item]
    assert await store.load("p") == {"a": 1}
