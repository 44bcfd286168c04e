"""Which dead letters a redrive already sent again, kept in the checkpoint store.

A dead letter is a log that pipes never deletes from (a Kafka topic cannot be
deleted from at all), so "redriven" is remembered beside it. A plain
checkpoint (one position per partition) would not do: a redrive may take only
some records (``--where``, ``--since``), and the ones it passed over must stay
there for a later redrive. So the ledger keeps, per partition, *runs* of
consecutive redriven records, each written ``(after, last)``: every record
after position ``after`` up to and including ``last`` (``after`` None: from
the start of the log). A redrive of everything is one run however long the
log; a selective one costs a run per stretch it took.

It is saved under ``PIPE.redrive`` in the pipe's checkpoint store (a file in
``STATE_DIR/checkpoints/``, or Redis with ``--state``), each partition's runs
as JSON text, so a store needs nothing new to keep it. A redrive saves it
after each batch that settled: killed half way, it resumes without sending
again more than the batch it was in.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from typing import Any

import orjson

from pipes.checkpoints import CheckpointCorrupt, CheckpointStore
from pipes.dead_letters import position_key
from pipes.events import Position

__all__ = ["RedriveLedger", "ledger_key"]

type Run = list[Position | None]  # [after (exclusive, None: the log's start), last (inclusive)]


def ledger_key(pipe: str) -> str:
    """The checkpoint-store name the ledger of ``pipe`` is saved under (pipe names hold no dot)."""
    return f"{pipe}.redrive"


def _start_key(position: Position | None) -> tuple[int, int]:
    return (-1, -1) if position is None else position_key(position)


class RedriveLedger:
    """Per partition of a dead letter, the runs of records already sent again."""

    def __init__(self, store: CheckpointStore, pipe: str) -> None:
        self.store = store
        self.pipe = pipe
        self.key = ledger_key(pipe)
        self._runs: dict[str, list[Run]] = {}
        #: Per partition, each run by its last and by its start position (to extend and join runs).
        self._ends: dict[str, dict[Position | None, Run]] = {}
        self._starts: dict[str, dict[Position | None, Run]] = {}

    async def load(self) -> RedriveLedger:
        stored = await self.store.load(self.key)
        runs: dict[str, list[Run]] = {}
        for partition, text in stored.items():
            try:
                value = orjson.loads(text) if isinstance(text, str) else None
                if not isinstance(value, list) or not all(
                    isinstance(run, list) and len(run) == 2 and run[1] is not None for run in value
                ):
                    raise ValueError("not a list of [after, last] runs")
            except (orjson.JSONDecodeError, ValueError) as exc:
                raise CheckpointCorrupt(
                    f"redrive ledger {self.key!r}, partition {partition!r}, is unreadable ({exc}); "
                    f"remove it to treat every dead letter of pipe {self.pipe!r} as not redriven"
                ) from None
            runs[partition] = sorted(value, key=lambda run: _start_key(run[0]))
        self._runs = runs
        self._ends = {p: {run[1]: run for run in rs} for p, rs in runs.items()}
        self._starts = {p: {run[0]: run for run in rs if run[0] is not None} for p, rs in runs.items()}
        return self

    async def save(self) -> None:
        await self.store.save(
            self.key, {partition: orjson.dumps(runs).decode() for partition, runs in self._runs.items()}
        )

    def contains(self, partition: str, position: Position) -> bool:
        runs = self._runs.get(partition)
        if not runs:
            return False
        key = position_key(position)
        # The last run that starts before the position; it holds it if it reaches that far.
        index = bisect.bisect_left(runs, key, key=lambda run: _start_key(run[0])) - 1
        if index < 0:
            return False
        last = runs[index][1]
        assert last is not None
        return key <= position_key(last)

    def add(self, partition: str, position: Position, previous: Position | None) -> None:
        """Mark the record at ``position`` redriven; ``previous`` is the record before it in the log."""
        runs = self._runs.setdefault(partition, [])
        ends = self._ends.setdefault(partition, {})
        starts = self._starts.setdefault(partition, {})
        run = ends.pop(previous, None) if previous is not None else None
        if run is None:
            run = [previous, position]
            bisect.insort(runs, run, key=lambda r: _start_key(r[0]))
            if previous is not None:
                starts[previous] = run
        else:
            run[1] = position
        # A run that now ends where another starts becomes one run with it.
        following = starts.pop(position, None)
        if following is not None and following is not run:
            run[1] = following[1]
            runs.remove(following)
            ends.pop(following[1], None)
        ends[run[1]] = run

    def covered_prefix(self) -> dict[str, Position]:
        """Per partition, the last position of a run from the log's start: a scan may begin after it."""
        covered: dict[str, Position] = {}
        for partition, runs in self._runs.items():
            if runs and runs[0][0] is None and runs[0][1] is not None:
                covered[partition] = runs[0][1]
        return covered

    def runs(self) -> Mapping[str, Any]:
        """The runs as saved (for tests and ``pipes dlq ls --json``)."""
        return {p: [list(run) for run in runs] for p, runs in self._runs.items()}
