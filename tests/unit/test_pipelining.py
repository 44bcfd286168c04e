"""A partition's next batch goes through the stages while the previous one is written; order and checkpoints hold."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Sequence
from typing import Any

from helpers import wait_until
from runner_kit import pipe, run_to_end, runner_for

from pipes.checkpoints import MemoryCheckpointStore
from pipes.clock import ManualClock
from pipes.connector import ConnectorOptions, Target
from pipes.events import Event, Outcome, Position
from pipes.testing import channel


async def test_the_next_batch_is_prepared_while_the_previous_write_waits_and_written_after_it(
    channels: dict[str, str],
) -> None:
    src, out, enrich = channel(channels["in"]), channel(channels["out"]), channel(channels["enrich"])
    enriched: list[int] = []
    enrich.enrich = lambda record: enriched.append(record["body"]) or [record["body"]]  # type: ignore[func-returns-value]
    out.hold = asyncio.Event()  # every write waits for this
    src.put(*range(30))
    store = MemoryCheckpointStore()
    clock = ManualClock()
    definition = pipe(channels, enrichment={"type": "memory", "channel": channels["enrich"]})
    runner = runner_for(definition, clock, store=store, once=False)
    task = asyncio.create_task(runner.run())
    await wait_until(lambda: out.writes == 1, what="the first write, held")
    # The second batch went through its stages (the enrichment saw it) while the first is written...
    await wait_until(lambda: enriched == list(range(20)), what="the second batch enriched")
    # ...but its write waits for the first to finish: one write at a time per partition.
    assert out.writes == 1 and out.written == []
    assert store.saved.get("t", {}) == {}  # nothing acknowledged: nothing committed
    out.hold.set()
    await wait_until(lambda: len(out.written) == 30, what="everything written")
    await wait_until(lambda: store.saved.get("t") == {"p0": 29}, what="checkpoint at the end")
    assert out.written == list(range(30))
    runner.request_stop()
    await task


class _OutOfOrderOptions(ConnectorOptions):
    pass


class OutOfOrderTarget(Target):
    """Acknowledges writes after random delays, so writes of different partitions finish out of order."""

    options_model = _OutOfOrderOptions
    log: list[tuple[str, str, int]] = []  # (event, partition, position)
    acked: set[tuple[str, Position]] = set()
    rng = random.Random(5)

    async def write(self, events: Sequence[Event]) -> Sequence[Outcome]:
        partition = events[0].partition
        self.log.append(("start", partition, int(events[0].position)))
        for _ in range(self.rng.randint(0, 8)):
            await asyncio.sleep(0)
        for event in events:
            self.log.append(("written", event.partition, int(event.position)))
            self.acked.add((event.partition, event.position))
        self.log.append(("end", partition, int(events[-1].position)))
        return [None] * len(events)


async def test_out_of_order_acknowledgements_never_move_a_checkpoint_past_an_unacknowledged_event(
    channels: dict[str, str],
) -> None:
    OutOfOrderTarget.log, OutOfOrderTarget.acked = [], set()
    src = channel(channels["in"])
    for partition in ("a", "b", "c"):
        src.put(*range(200), partition=partition)
    saved: list[dict[str, Position]] = []
    ahead: list[tuple[str, Position]] = []  # committed past an unacknowledged event

    class CheckingStore(MemoryCheckpointStore):
        async def save(self, pipe: str, positions: Any) -> None:
            # Every position committed has been acknowledged, and so has everything before it.
            # (Recorded, not asserted here: the committer would take an AssertionError for a
            # failed save, log it and go on, and the test would not see it.)
            for partition, position in positions.items():
                if not all((partition, p) in OutOfOrderTarget.acked for p in range(int(position) + 1)):
                    ahead.append((partition, position))
            saved.append(dict(positions))
            await super().save(pipe, positions)

    clock = ManualClock()
    definition = pipe(channels, batch={"size": 7, "window": "0ms"}, concurrency=3)
    definition["target"] = {"type": f"{__name__}:OutOfOrderTarget"}
    runner = runner_for(definition, clock, store=CheckingStore())
    await run_to_end(runner, clock)
    for partition in ("a", "b", "c"):
        written = [pos for kind, p, pos in OutOfOrderTarget.log if kind == "written" and p == partition]
        assert written == list(range(200))  # output order per partition is the input order
        # A partition's writes never overlap: each starts after the previous one ended.
        ends = [(kind, pos) for kind, p, pos in OutOfOrderTarget.log if p == partition and kind != "written"]
        assert all(a[0] != b[0] for a, b in itertools.pairwise(ends))
    assert ahead == []
    assert len(saved) > 1 and saved[-1] == {"a": 199, "b": 199, "c": 199}  # commits along the way too
