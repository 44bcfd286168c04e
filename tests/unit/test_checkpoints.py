"""The settled-prefix tracker and the checkpoint stores."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipes.checkpoints import Batch, FileCheckpointStore, SettledTracker
from pipes.events import Event


def batch(partition: str, first: int, n: int) -> Batch:
    """A batch of ``n`` events of ``partition`` at positions ``first`` .. ``first + n - 1``."""
    events = [Event(record={}, partition=partition, position=i) for i in range(first, first + n)]
    return Batch(partition, events, received_at=0.0, ingested_at=0.0)


def test_checkpoint_is_the_contiguous_settled_prefix_of_batches() -> None:
    done: list[Batch] = []
    tracker = SettledTracker(on_settled=done.append)
    b0, b1, b2 = batch("a", 0, 2), batch("a", 2, 2), batch("a", 4, 1)
    for b in (b0, b1, b2):
        tracker.open(b)
    tracker.settle(b1, 2)
    tracker.settle(b2, 1)
    assert tracker.positions() == {}  # batch 0 is not settled: nothing is safe yet
    assert done == [b1, b2]  # settled batches are reported (the in-flight gate frees them)
    tracker.settle(b0, 1)
    assert tracker.positions() == {}  # half of batch 0 is still pending
    tracker.settle(b0, 1)
    assert tracker.positions() == {"a": 4}
    assert tracker.unsettled("a") == 0


def test_partitions_are_independent_and_dirty_ones_are_reported_once() -> None:
    tracker = SettledTracker()
    a, b = batch("a", 0, 2), batch("b", 0, 1)
    tracker.open(a)
    tracker.open(b)
    tracker.settle(b, 1)
    assert tracker.take_dirty() == {"b": 0}
    assert tracker.take_dirty() == {}
    tracker.settle(a, 2)
    assert tracker.take_dirty() == {"a": 1}


def test_fan_out_keeps_the_batch_open_until_every_child_settled() -> None:
    tracker = SettledTracker()
    b = batch("a", 0, 1)
    tracker.open(b)
    tracker.grow(b, 2)  # the one event became three
    tracker.settle(b, 2)
    assert tracker.positions() == {}
    tracker.settle(b, 1)
    assert tracker.positions() == {"a": 0}
    tracker.settle(b, 1)  # settling past the end changes nothing
    assert tracker.positions() == {"a": 0}


def test_forgotten_partitions_are_never_committed() -> None:
    done: list[Batch] = []
    tracker = SettledTracker(on_settled=done.append)
    b0, b1 = batch("a", 0, 1), batch("a", 1, 2)
    tracker.open(b0)
    tracker.open(b1)
    tracker.settle(b1, 1)
    assert tracker.forget(["a"]) == [b0, b1]  # what the runner releases from the in-flight bound
    tracker.settle(b0, 1)
    tracker.settle(b1, 1)
    assert tracker.positions() == {}
    assert done == []  # settling late does not free them a second time


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
