"""In-process channels as source, target and enricher.

For tests and for pipes embedded in a Python program: a program puts records
into a channel and a pipe reads them, or a pipe writes into a channel and the
program reads the payloads. Channels live in a ``MemoryHub``; connectors find
theirs by name in the default hub, since options are plain data.

Test hooks on a channel make a target slow or failing on purpose:
``hold`` (an ``asyncio.Event`` the target waits for before each write),
``fail`` (called per event; returns an exception to fail it, or None) and
``enrich`` (called per record by the enricher; returns its records).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field

from pipes.aio import first
from pipes.clock import Clock, SystemClock
from pipes.connector import (
    Connector,
    ConnectorContext,
    ConnectorOptions,
    Enricher,
    Source,
    SourceContext,
    Target,
)
from pipes.dead_letters import DeadLetter, DeadLetterReader
from pipes.events import Event, Outcome, Position
from pipes.replay import PartitionMove, ReplayPoint, is_after

__all__ = ["HUB", "MemoryChannel", "MemoryHub", "connector"]


@dataclass
class MemoryChannel:
    """Records waiting to be read (per partition), and what was written."""

    name: str
    partitions: dict[str, list[Any]] = field(default_factory=dict)
    written: list[Any] = field(default_factory=list)
    written_events: list[Event] = field(default_factory=list)
    committed: dict[str, Position] = field(default_factory=dict)
    writes: int = 0
    batch_sizes: list[int] = field(default_factory=list)
    hold: asyncio.Event | None = None
    fail: Callable[[Event], Exception | None] | None = None
    enrich: Callable[[dict[str, Any]], list[Any] | Exception] | None = None
    _grew: asyncio.Event | None = None

    def put(self, *bodies: Any, partition: str = "p0") -> None:
        """Append bodies to a partition; a reading source picks them up."""
        self.partitions.setdefault(partition, []).extend(bodies)
        if self._grew is not None:
            self._grew.set()

    def grew(self) -> asyncio.Event:
        if self._grew is None:
            self._grew = asyncio.Event()
        return self._grew


class MemoryHub:
    """Named channels; ``channel(name)`` creates one on first use."""

    def __init__(self) -> None:
        self._channels: dict[str, MemoryChannel] = {}

    def channel(self, name: str) -> MemoryChannel:
        found = self._channels.get(name)
        if found is None:
            found = self._channels[name] = MemoryChannel(name)
        return found

    def drop(self, name: str) -> None:
        self._channels.pop(name, None)


#: The hub connectors use; tests may ``HUB.drop`` their channels when done.
HUB = MemoryHub()


class MemoryOptions(ConnectorOptions):
    channel: str = Field(description="Name of the in-process channel.")


class MemorySourceOptions(MemoryOptions):
    native_commit: bool = Field(
        default=False,
        description="Keep positions in the channel instead of the checkpoint store (like a consumer group).",
    )


class MemorySource(Source):
    """Reads each partition of a channel in order; position = index in the partition."""

    options_model = MemorySourceOptions
    options: MemorySourceOptions

    def __init__(self, options: MemorySourceOptions) -> None:
        super().__init__(options)
        self.channel = HUB.channel(options.channel)
        self.next_index: dict[str, int] = {}
        self.tracks_position = options.native_commit  # type: ignore[misc]
        self.once = False
        self.paused: set[str] = set()
        self.clock: Clock = SystemClock()

    async def start(self, context: SourceContext) -> None:
        start_at: Mapping[str, Position] = (
            self.channel.committed if self.tracks_position else context.checkpoint
        )
        self.next_index = {p: int(pos) + 1 for p, pos in start_at.items()}
        self.once = context.once
        self.clock = context.clock

    def _unread(self, readable_only: bool = False) -> int:
        # Never negative per partition: one checkpointed past its end must not hide the others.
        return sum(
            max(0, len(items) - self.next_index.get(p, 0))
            for p, items in self.channel.partitions.items()
            if not (readable_only and p in self.paused)
        )

    async def read(self, max_events: int, timeout_s: float) -> list[Event]:
        grew = self.channel.grew()
        if self._unread(readable_only=True) <= 0:
            if self.once and self._unread() <= 0:
                return []  # --once: the end is known, nothing to wait for
            grew.clear()  # wait for more, or for a paused partition to resume
            await first(grew.wait(), self.clock.sleep(timeout_s))
            if not grew.is_set():
                return []
        out: list[Event] = []
        for partition, items in self.channel.partitions.items():
            if partition in self.paused:
                continue
            start = self.next_index.get(partition, 0)
            end = min(len(items), start + max_events - len(out))
            for index in range(start, end):
                record = {"partition": partition, "index": index, "body": items[index]}
                out.append(Event(record=record, partition=partition, position=index))
            self.next_index[partition] = max(start, end)
            if len(out) >= max_events:
                break
        return out

    async def commit(self, positions: Mapping[str, Position]) -> None:
        self.channel.committed.update(positions)

    def pause(self, partitions: Collection[str]) -> None:
        self.paused.update(partitions)

    def resume(self, partitions: Collection[str]) -> None:
        self.paused.difference_update(partitions)
        self.channel.grew().set()

    def caught_up(self) -> bool:
        return self._unread() <= 0

    async def replay_plan(
        self, context: SourceContext, start: ReplayPoint, until: ReplayPoint | None
    ) -> list[PartitionMove]:
        """From an index per partition (``--from 3``, ``p0=3``) or the beginning; no times."""
        names = sorted(self.channel.partitions)
        for point in (start, until):
            if point is not None:
                point.no_times("memory", "beginning or an index")
                point.check_partitions(names)
        stored = self.channel.committed if self.tracks_position else context.checkpoint
        moves = []
        for name in names:
            first = 0 if start.kind == "beginning" else start.number_for(name, "an index")
            if first is None:
                continue
            old = stored.get(name)
            new = first - 1 if first > 0 else None
            move = PartitionMove(name, old, new, events=(-1 if old is None else int(old)) - (first - 1))
            move.forward = is_after(new, old)
            if until is not None:
                stop = until.number_for(name, "an index")
                move.until = None if stop is None else stop - 1
            moves.append(move)
        return moves

    async def replay_commit(self, context: SourceContext, moves: Sequence[PartitionMove]) -> None:
        for move in moves:
            if move.new is None:
                self.channel.committed.pop(move.partition, None)
            else:
                self.channel.committed[move.partition] = move.new

    def lag(self) -> Mapping[str, int] | None:
        return {p: len(items) - self.next_index.get(p, 0) for p, items in self.channel.partitions.items()}


class MemoryTarget(Target):
    """Appends payloads to ``channel.written``; honours the channel's ``hold`` and ``fail`` hooks."""

    options_model = MemoryOptions
    options: MemoryOptions

    def __init__(self, options: MemoryOptions) -> None:
        super().__init__(options)
        self.channel = HUB.channel(options.channel)

    async def start(self, context: ConnectorContext) -> None:
        return None

    async def write(self, events: Sequence[Event]) -> Sequence[Outcome]:
        channel = self.channel
        channel.writes += 1
        channel.batch_sizes.append(len(events))
        if channel.hold is not None:
            await channel.hold.wait()
        fail = channel.fail
        outcomes: list[Outcome] = []
        for event in events:
            error = fail(event) if fail is not None else None
            if error is None:
                channel.written.append(event.payload)
                channel.written_events.append(event)
            outcomes.append(error)
        return outcomes


class MemoryDeadLetterReader(DeadLetterReader):
    """Reads back what a memory dead letter wrote (``channel.written``); position = index there."""

    options: MemoryOptions

    def __init__(self, options: MemoryOptions) -> None:
        super().__init__(options)
        self.channel = HUB.channel(options.channel)

    async def scan(self, after: Mapping[str, Position]) -> AsyncGenerator[list[DeadLetter]]:
        name = self.options.channel
        written = self.channel.written
        end = len(written)
        start = int(after[name]) + 1 if name in after else 0
        for at in range(start, end, 100):
            yield [
                DeadLetter(name, i, item)
                if isinstance(item, dict)
                else DeadLetter(name, i, None, repr(item).encode())
                for i, item in enumerate(written[at : min(at + 100, end)], at)
            ]


class MemoryEnricher(Enricher):
    """Calls the channel's ``enrich`` hook per record (identity when unset)."""

    options_model = MemoryOptions
    options: MemoryOptions

    def __init__(self, options: MemoryOptions) -> None:
        super().__init__(options)
        self.channel = HUB.channel(options.channel)

    async def enrich(self, events: Sequence[Event]) -> Sequence[list[Any] | Exception]:
        hook = self.channel.enrich
        if hook is None:
            return [[event.record] for event in events]
        return [hook(event.record) for event in events]


connector = Connector(
    name="memory",
    description="In-process channels: source, target and enricher for tests and embedded pipes.",
    source=MemorySource,
    target=MemoryTarget,
    enricher=MemoryEnricher,
    dead_letter_reader=MemoryDeadLetterReader,
)
