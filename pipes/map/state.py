"""A run's progress on disk, so that ``pipes map`` resumes after a crash or Ctrl-C.

Under ``STATE_DIR/map/NAME/`` a run keeps ``items.pickle`` (its item list,
written once when it starts) and ``state.pickle`` (which items are done or
failed, the merged partial reduction of the done ones, and the counters). The
done set and the partial are written *together*, atomically (write, fsync,
rename), so after any crash the partial holds exactly the items the state
calls done: a resumed run redoes the others and counts none twice.

The files are pickles: they hold the partial reductions as they are in memory
(including values of a user's reduce function). Like every state folder, they
are trusted input; do not load one you did not write.
"""

from __future__ import annotations

import fcntl
import os
import pickle
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pipes.errors import PipesError
from pipes.map.items import Item
from pipes.map.reduce import Partial

__all__ = ["Failure", "RunState", "StateError", "StateStore"]

STATE_VERSION = 1

type Status = Literal["RUNNING", "SUCCEEDED", "FAILED"]


class StateError(PipesError):
    """The state folder cannot be used (locked by another run, unreadable): one line."""


@dataclass
class Failure:
    error: str
    attempts: int


@dataclass
class RunState:
    """Everything a run needs to go on where it stopped."""

    run_id: str
    name: str
    fingerprint: str
    items: list[Item]
    partial: Partial
    status: Status = "RUNNING"
    reason: str = ""
    done: set[int] = field(default_factory=set)
    failed: dict[int, Failure] = field(default_factory=dict)
    records: int = 0
    passed: int = 0
    mapped: int = 0
    bytes_done: int = 0
    cpu_s: float = 0.0
    elapsed_s: float = 0.0
    started_at: float = field(default_factory=time.time)
    redrives: int = 0

    @classmethod
    def new(cls, name: str, fingerprint: str, items: list[Item], partial: Partial) -> RunState:
        return cls(uuid.uuid4().hex[:12], name, fingerprint, items, partial)

    def pending(self) -> list[Item]:
        """Items neither done nor failed, in item order."""
        return [item for item in self.items if item.index not in self.done and item.index not in self.failed]


class StateStore:
    """The state folder of one map (by name); one run at a time holds its lock."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self._lock: int | None = None

    def lock(self) -> None:
        """Raises ``StateError`` when another ``pipes map`` of this map is running."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.folder / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StateError(f"cannot use the state folder {self.folder}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StateError(f"another pipes map is running with the state in {self.folder}") from None
        self._lock = fd

    def unlock(self) -> None:
        if self._lock is not None:
            os.close(self._lock)  # closing releases the lock
            self._lock = None

    def load(self) -> RunState | None:
        """The saved run, or None when there is none."""
        state_file = self.folder / "state.pickle"
        if not state_file.exists():
            return None
        try:
            saved = _read(state_file)
            items = _read(self.folder / "items.pickle")
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError) as exc:
            raise StateError(
                f"cannot read the state in {self.folder} ({exc}); use --restart to start over"
            ) from None
        if saved.get("version") != STATE_VERSION or items.get("run_id") != saved.get("run_id"):
            raise StateError(f"the state in {self.folder} is from another version or run; use --restart")
        fields = saved["state"]
        fields["items"] = [Item(i, path, size) for i, (path, size) in enumerate(items["items"])]
        fields["done"] = _from_ranges(fields["done"])
        fields["failed"] = {i: Failure(*f) for i, f in fields["failed"].items()}
        return RunState(**fields)

    def save_items(self, state: RunState) -> None:
        """Once per run, before the first ``save``."""
        _write(
            self.folder / "items.pickle",
            {"run_id": state.run_id, "items": [(item.path, item.size) for item in state.items]},
        )

    def save(self, state: RunState) -> None:
        fields: dict[str, Any] = {
            name: getattr(state, name) for name in RunState.__dataclass_fields__ if name != "items"
        }
        fields["done"] = _to_ranges(state.done)
        fields["failed"] = {i: (f.error, f.attempts) for i, f in state.failed.items()}
        _write(
            self.folder / "state.pickle", {"version": STATE_VERSION, "run_id": state.run_id, "state": fields}
        )


def _read(path: Path) -> Any:
    with path.open("rb") as handle:
        return pickle.load(handle)


def _write(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as handle:
        pickle.dump(value, handle, protocol=pickle.HIGHEST_PROTOCOL)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _to_ranges(indexes: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted, inclusive (first, last) runs: tasks finish out of order, but mostly in runs."""
    out: list[tuple[int, int]] = []
    for index in sorted(indexes):
        if out and out[-1][1] == index - 1:
            out[-1] = (out[-1][0], index)
        else:
            out.append((index, index))
    return out


def _from_ranges(ranges: Iterable[tuple[int, int]]) -> set[int]:
    return {index for first, last in ranges for index in range(first, last + 1)}
