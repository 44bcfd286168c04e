"""Where positions are kept, and which position is safe to keep.

``SettledTracker`` owns the one rule of at-least-once delivery: per partition,
the checkpoint is the position of the last event of the *contiguous* settled
prefix. An event settled out of order (a later one delivered while an earlier
one retries) never moves the checkpoint past the earlier one.

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
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Protocol

import orjson

from pipes.events import Event, Position

__all__ = ["CheckpointStore", "FileCheckpointStore", "MemoryCheckpointStore", "SettledTracker"]


class CheckpointStore(Protocol):
    """Persists, per pipe, the last settled position of each partition.

    ``load`` returns what the last ``save`` stored (empty when nothing was).
    ``save`` replaces the pipe's positions atomically: after a crash at any point
    ``load`` returns either the previous or the new mapping, whole.
    Both may raise ``RetryableError`` when the store is unreachable.
    """

    async def load(self, pipe: str) -> dict[str, Position]: ...

    async def save(self, pipe: str, positions: Mapping[str, Position]) -> None: ...

    async def close(self) -> None: ...


class MemoryCheckpointStore:
    """Keeps checkpoints in a dict; for tests and embedded pipes."""

    def __init__(self) -> None:
        self.saved: dict[str, dict[str, Position]] = {}

    async def load(self, pipe: str) -> dict[str, Position]:
        return dict(self.saved.get(pipe, {}))

    async def save(self, pipe: str, positions: Mapping[str, Position]) -> None:
        self.saved[pipe] = dict(positions)

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
        try:
            data = orjson.loads(self.path(pipe).read_bytes())
        except FileNotFoundError:
            return {}
        return dict(data.get("positions", {}))

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


class SettledTracker:
    """Per partition, the events in flight in arrival order, and the settled prefix.

    ``track`` is called when the runner takes an event from the source, ``settle``
    when it is delivered, filtered out or dead-lettered. Both are O(1) amortised:
    the prefix only ever advances by popping settled events off the left.
    """

    def __init__(self) -> None:
        self._pending: dict[str, deque[Event]] = {}
        self._settled_at: dict[str, Position] = {}
        self._dirty: set[str] = set()
        self.in_flight = 0

    def track(self, event: Event) -> None:
        queue = self._pending.get(event.partition)
        if queue is None:
            queue = self._pending[event.partition] = deque()
        queue.append(event)
        self.in_flight += 1

    def settle(self, event: Event) -> None:
        """Mark ``event`` settled (a fan-out child settles its parent when it is the last)."""
        while event.parent is not None:
            if event.settled:
                return
            event.settled = True
            parent = event.parent
            parent.children -= 1
            if parent.children > 0:
                return
            event = parent
        if event.settled:
            return
        event.settled = True
        queue = self._pending.get(event.partition)
        if queue is None:
            return  # partition was forgotten (revoked); nothing to advance
        if queue and queue[0] is event:
            last = event
            queue.popleft()
            self.in_flight -= 1
            while queue and queue[0].settled:
                last = queue.popleft()
                self.in_flight -= 1
            self._settled_at[event.partition] = last.position
            self._dirty.add(event.partition)

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
        queue = self._pending.get(partition)
        return len(queue) if queue else 0

    def forget(self, partitions: Iterable[str]) -> None:
        """Drop revoked partitions: their in-flight events will never be committed."""
        for partition in partitions:
            queue = self._pending.pop(partition, None)
            if queue:
                self.in_flight -= len(queue)
            self._settled_at.pop(partition, None)
            self._dirty.discard(partition)
