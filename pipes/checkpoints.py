"""Where positions are kept, and which position is safe to keep.

``SettledTracker`` owns the one rule of at-least-once delivery: per partition,
the checkpoint is the position of the last event of the *contiguous* settled
prefix. It counts whole batches, not events: a batch is a run of consecutive
events of one partition, and it is settled when every event of it (and every
event an enrichment fanned it out into) is delivered, filtered out, dropped or
dead-lettered. A batch settled out of order (a later one delivered while an
earlier one retries) never moves the checkpoint past the earlier one.

``CheckpointStore`` persists those positions for sources that cannot
(files, the generator). The file store writes a temporary file, fsyncs it and
renames it over the old one, so a crash leaves either the old or the new
checkpoint, never a torn one.
"""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Protocol

import orjson

from pipes.errors import PipeFailed
from pipes.events import Event, Position

__all__ = [
    "Batch",
    "CheckpointCorrupt",
    "CheckpointStore",
    "FileCheckpointStore",
    "MemoryCheckpointStore",
    "SettledTracker",
    "parse_checkpoint",
]


class CheckpointCorrupt(PipeFailed):
    """A stored checkpoint cannot be read: the pipe must not guess where to resume."""


def parse_checkpoint(data: bytes | str, where: str, pipe: str) -> dict[str, Position]:
    """The positions in a stored checkpoint; ``CheckpointCorrupt`` saying how to recover when unreadable."""
    try:
        document = orjson.loads(data)
        positions = document.get("positions", {}) if isinstance(document, dict) else None
        if not isinstance(positions, dict) or not all(
            isinstance(v, int | str) and not isinstance(v, bool) for v in positions.values()
        ):
            raise ValueError("no positions mapping in it")
    except (orjson.JSONDecodeError, ValueError) as exc:
        raise CheckpointCorrupt(
            f"checkpoint {where} of pipe {pipe!r} is unreadable ({exc}); move it aside to start "
            f"from the source's starting position, or run `pipes run --reset-checkpoint {pipe} ...`"
        ) from None
    return dict(positions)


class CheckpointStore(Protocol):
    """Persists, per pipe, the last settled position of each partition.

    ``load`` returns what the last ``save`` stored (empty when nothing was).
    ``save`` replaces the pipe's positions atomically: after a crash at any point
    ``load`` returns either the previous or the new mapping, whole.
    Both may raise ``RetryableError`` when the store is unreachable.
    """

    async def load(self, pipe: str) -> dict[str, Position]: ...

    async def save(self, pipe: str, positions: Mapping[str, Position]) -> None: ...

    async def reset(self, pipe: str) -> bool:
        """Forget the pipe's positions (it starts over); False when there were none."""
        ...

    async def close(self) -> None: ...


class MemoryCheckpointStore:
    """Keeps checkpoints in a dict; for tests and embedded pipes."""

    def __init__(self) -> None:
        self.saved: dict[str, dict[str, Position]] = {}

    async def load(self, pipe: str) -> dict[str, Position]:
        return dict(self.saved.get(pipe, {}))

    async def save(self, pipe: str, positions: Mapping[str, Position]) -> None:
        self.saved[pipe] = dict(positions)

    async def reset(self, pipe: str) -> bool:
        return self.saved.pop(pipe, None) is not None

    async def close(self) -> None:
        return None


_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


class FileCheckpointStore:
    """One JSON file per pipe under ``directory`` (``STATE_DIR/checkpoints/PIPE.json``)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def path(self, pipe: str) -> Path:
        return self.directory / f"{_UNSAFE.sub('_', pipe)}.json"

    async def load(self, pipe: str) -> dict[str, Position]:
        path = self.path(pipe)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return {}
        return parse_checkpoint(data, str(path), pipe)

    async def reset(self, pipe: str) -> bool:
        try:
            self.path(pipe).unlink()
        except FileNotFoundError:
            return False
        return True

    async def save(self, pipe: str, positions: Mapping[str, Position]) -> None:
        # fsync takes milliseconds: done in a thread so the event loop keeps
        # moving events meanwhile (the runner never has two saves in flight).
        await asyncio.to_thread(self._save, pipe, dict(positions))

    def _save(self, pipe: str, positions: dict[str, Position]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        target = self.path(pipe)
        data = orjson.dumps({"pipe": pipe, "positions": positions})
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            os.unlink(tmp)
            raise
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    async def close(self) -> None:
        return None


class Batch:
    """A run of consecutive events of one partition that goes through the stages as one unit.

    ``pending`` counts what is still to settle: the batch's events, plus the
    extra events an enrichment fanned some of them out into. ``count`` is the
    number of source events (what the in-flight bound counts).
    """

    __slots__ = (
        "count",
        "events",
        "ingested_at",
        "last_position",
        "partition",
        "pending",
        "received_at",
        "settled_through",
    )

    def __init__(self, partition: str, events: list[Event], received_at: float, ingested_at: float) -> None:
        self.partition = partition
        self.events = events
        self.count = len(events)
        self.pending = len(events)
        self.last_position: Position = events[-1].position
        #: Monotonic time the oldest event of the batch was taken from the source.
        self.received_at = received_at
        #: Wall-clock time the same (what ``aws.pipes.event.ingestion-time`` says).
        self.ingested_at = ingested_at
        #: Index of the last event of a settled prefix of this batch (-1: none known).
        self.settled_through = -1

    @property
    def settled(self) -> bool:
        return self.pending <= 0

    def __repr__(self) -> str:
        return (
            f"Batch({self.partition}, {self.count} events up to {self.last_position}, {self.pending} pending)"
        )


class SettledTracker:
    """Per partition, the batches in flight in the order they were cut, and the settled prefix.

    ``open`` is called when a lane cuts a batch, ``settle`` as its events are
    delivered, filtered out, dropped or dead-lettered, ``grow`` when an
    enrichment turns one event into several. The prefix advances by popping
    settled batches off the left: O(1) per batch, nothing per event.
    ``on_settled(batch)`` is called once for each batch that settles,
    ``on_moved()`` whenever a checkpoint position moved.
    """

    def __init__(
        self,
        on_settled: Callable[[Batch], None] | None = None,
        on_moved: Callable[[], None] | None = None,
    ) -> None:
        self._open: dict[str, deque[Batch]] = {}
        self._settled_at: dict[str, Position] = {}
        self._dirty: set[str] = set()
        self._on_settled = on_settled
        self._on_moved = on_moved

    def _moved(self, partition: str, position: Position) -> None:
        self._settled_at[partition] = position
        self._dirty.add(partition)
        if self._on_moved is not None:
            self._on_moved()

    def open(self, batch: Batch) -> None:
        queue = self._open.get(batch.partition)
        if queue is None:
            queue = self._open[batch.partition] = deque()
        queue.append(batch)

    def grow(self, batch: Batch, extra: int) -> None:
        """``extra`` more events to settle in ``batch`` (a fan-out)."""
        batch.pending += extra

    def settle(self, batch: Batch, count: int = 1) -> None:
        """``count`` events of ``batch`` settled; the checkpoint moves when a prefix of batches is done."""
        if count <= 0 or batch.pending <= 0:
            return
        batch.pending -= count
        if batch.pending > 0:
            return
        if self._on_settled is not None:
            self._on_settled(batch)
        queue = self._open.get(batch.partition)
        if not queue or queue[0] is not batch:
            return  # a later batch, or a partition forgotten (revoked) meanwhile
        last = queue.popleft()
        while queue and queue[0].pending <= 0:
            last = queue.popleft()
        position = last.last_position
        if queue and queue[0].settled_through >= 0:  # the new head is partly settled already
            head = queue[0]
            position = head.events[head.settled_through].position
        self._moved(batch.partition, position)

    def settled_through(self, batch: Batch, index: int) -> None:
        """Every event of ``batch`` up to ``index`` is settled (the rest waits on a retry).

        Moves the checkpoint into the batch when it is the oldest open one, so
        that a long retry of one event does not hold back those before it.
        """
        if index <= batch.settled_through or batch.pending <= 0:
            return
        batch.settled_through = index
        queue = self._open.get(batch.partition)
        if queue and queue[0] is batch:
            self._moved(batch.partition, batch.events[index].position)

    def positions(self) -> dict[str, Position]:
        """Every partition's last settled position (what a store saves)."""
        return dict(self._settled_at)

    def take_dirty(self) -> dict[str, Position]:
        """Positions that moved since the last call (what a native commit sends)."""
        dirty = {p: self._settled_at[p] for p in self._dirty if p in self._settled_at}
        self._dirty.clear()
        return dirty

    def restore_dirty(self, positions: Mapping[str, Position]) -> None:
        """Mark positions dirty again after a failed commit, unless they moved on since."""
        for partition in positions:
            if partition in self._settled_at:
                self._dirty.add(partition)

    def restore(self, positions: Mapping[str, Position]) -> None:
        """Start from a loaded checkpoint, so a save keeps partitions not seen this run."""
        self._settled_at.update(positions)

    def unsettled(self, partition: str) -> int:
        """Events of cut batches of ``partition`` not settled yet."""
        queue = self._open.get(partition)
        return sum(b.pending for b in queue) if queue else 0

    def forget(self, partitions: Iterable[str]) -> list[Batch]:
        """Drop revoked partitions: their batches will never be committed; returns the unsettled ones."""
        dropped: list[Batch] = []
        for partition in partitions:
            queue = self._open.pop(partition, None)
            for batch in queue or ():
                if batch.pending > 0:
                    batch.pending = 0  # whatever settles late must not count twice
                    dropped.append(batch)
            self._settled_at.pop(partition, None)
            self._dirty.discard(partition)
        return dropped
