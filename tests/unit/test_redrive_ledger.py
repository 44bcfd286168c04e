"""The redrive ledger: runs of redriven records, exact membership, saved in the checkpoint store."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipes.checkpoints import CheckpointCorrupt, FileCheckpointStore, MemoryCheckpointStore
from pipes.redrive_ledger import RedriveLedger, ledger_key


def _mark(ledger: RedriveLedger, partition: str, log: list[int], chosen: set[int]) -> None:
    """Redrive the ``chosen`` positions of ``log`` in log order, as a scan does."""
    previous = None
    for position in log:
        if position in chosen:
            ledger.add(partition, position, previous)
        previous = position


def test_a_whole_log_is_one_run_and_a_prefix_to_skip() -> None:
    ledger = RedriveLedger(MemoryCheckpointStore(), "orders")
    log = [10, 25, 31, 40]
    _mark(ledger, "dlq", log, set(log))
    assert ledger.runs() == {"dlq": [[None, 40]]}
    assert ledger.covered_prefix() == {"dlq": 40}
    assert all(ledger.contains("dlq", p) for p in log)
    assert not ledger.contains("dlq", 41)
    assert not ledger.contains("other", 10)


def test_records_passed_over_stay_out_and_runs_join_when_the_gap_is_filled() -> None:
    ledger = RedriveLedger(MemoryCheckpointStore(), "orders")
    log = [1, 2, 3, 4, 5, 6]
    _mark(ledger, "p", log, {1, 2, 5})
    assert ledger.runs() == {"p": [[None, 2], [4, 5]]}
    assert [p for p in log if ledger.contains("p", p)] == [1, 2, 5]
    _mark(ledger, "p", log, {3, 4})
    assert ledger.runs() == {"p": [[None, 5]]}
    assert ledger.covered_prefix() == {"p": 5}


def test_stream_ids_order_as_times() -> None:
    ledger = RedriveLedger(MemoryCheckpointStore(), "orders")
    log = ["1700000000000-0", "1700000000000-1", "1700000000005-0", "1700000000010-0"]
    _mark(ledger, "s", log, {log[1], log[2]})
    assert not ledger.contains("s", log[0])
    assert ledger.contains("s", log[1]) and ledger.contains("s", log[2])
    assert not ledger.contains("s", log[3])


async def test_saved_and_loaded_through_the_checkpoint_store(tmp_path) -> None:
    store = FileCheckpointStore(tmp_path)
    ledger = RedriveLedger(store, "orders")
    _mark(ledger, "dlq.jsonl", [100, 200, 300], {100, 300})
    await ledger.save()
    assert (tmp_path / "orders.redrive.json").exists()
    assert ledger_key("orders") == "orders.redrive"
    again = await RedriveLedger(store, "orders").load()
    assert again.runs() == ledger.runs()
    assert again.contains("dlq.jsonl", 300) and not again.contains("dlq.jsonl", 200)
    # Loaded runs are extended as fresh ones are.
    again.add("dlq.jsonl", 200, 100)
    assert again.runs() == {"dlq.jsonl": [[None, 300]]}


async def test_an_unreadable_ledger_says_how_to_recover() -> None:
    store = MemoryCheckpointStore()
    await store.save("orders.redrive", {"dlq": "not json"})
    with pytest.raises(CheckpointCorrupt, match="remove it"):
        await RedriveLedger(store, "orders").load()


@settings(max_examples=200, deadline=None)
@given(
    size=st.integers(1, 60),
    rounds=st.lists(st.sets(st.integers(0, 59)), min_size=1, max_size=4),
)
def test_membership_is_exactly_what_was_redriven(size: int, rounds: list[set[int]]) -> None:
    log = [3 * i + 1 for i in range(size)]  # gaps between positions, as file offsets have
    store = MemoryCheckpointStore()
    redriven: set[int] = set()

    async def go() -> None:
        ledger = RedriveLedger(store, "p")
        for chosen in rounds:
            ledger = await RedriveLedger(store, "p").load()  # each round a new process
            picked = {log[i] for i in chosen if i < size}
            _mark(ledger, "x", log, picked - redriven)
            redriven.update(picked)
            await ledger.save()
        final = await RedriveLedger(store, "p").load()
        assert {p for p in log if final.contains("x", p)} == redriven
        covered = final.covered_prefix().get("x")
        prefix = [p for p in log if covered is not None and p <= covered]
        assert set(prefix) <= redriven

    asyncio.run(go())
