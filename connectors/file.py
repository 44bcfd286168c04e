"""The ``file`` connector: follow a JSON-lines file as a source, append to one as a target.

Files are local, so reads and writes are plain blocking calls on big chunks (the
page cache answers in well under a millisecond); only the target's ``fsync``,
which can take milliseconds, runs in a thread. A line's position is the byte
offset just after it, so a checkpoint is exactly where the next read seeks.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO, Literal

import structlog
from pydantic import Field

from connectors.file_dead_letter_reader import FileDeadLetterReader
from pipes.clock import Clock, SystemClock
from pipes.connector import (
    Connector,
    ConnectorContext,
    ConnectorOptions,
    Source,
    SourceContext,
    Target,
    encode_each,
    payload_bytes,
)
from pipes.errors import FatalError, RetryableError
from pipes.events import UNSET, Event, Outcome
from pipes.replay import CannotReplay, PartitionMove, ReplayPoint
from pipes.units import Duration

__all__ = ["FileSource", "FileSourceOptions", "FileTarget", "FileTargetOptions", "connector"]

#: Bytes per read: thousands of typical lines per syscall.
CHUNK_BYTES = 1 << 20

#: Errors that mean the definition is wrong, not that the disk is busy.
_REFUSED = (
    FileNotFoundError,
    PermissionError,
    IsADirectoryError,
    NotADirectoryError,
)


class FileSourceOptions(ConnectorOptions):
    path: str = Field(description="The JSON-lines file to follow; one event per line.")
    start_at: Literal["beginning", "end"] = Field(
        default="beginning",
        description=(
            "Where a pipe without a checkpoint starts: the first line, or after the "
            "lines already in the file."
        ),
    )
    poll_interval: Duration = Field(
        default=0.2,
        description="How often to look for new lines (or for the file to appear) at its end.",
    )


class FileLayout:
    """The record of a line: ``{"path", "offset", "body"}``; ``meta`` is the line's byte offset."""

    body_field = "body"

    def __init__(self, path: str) -> None:
        self.path = path

    def record(self, event: Event, body: Any) -> dict[str, Any]:
        return {"path": self.path, "offset": event.meta, "body": body}


class FileSource(Source):
    """Emits each complete line as ``{"path", "offset", "body"}``; partition = the path.

    A line without its ``\\n`` yet is held back until it is complete (a writer may be
    half-way through it), except in ``--once`` mode at the end seen at start, where
    nothing more is coming. A file that shrinks below the read offset was truncated
    or replaced in place: reading restarts at 0. A path that now names another file
    (rotation) is switched to once the old file is drained.
    """

    options_model = FileSourceOptions

    def __init__(self, options: FileSourceOptions) -> None:
        super().__init__(options)
        self.options: FileSourceOptions = options
        self._clock: Clock = SystemClock()
        self._log: Any = structlog.get_logger()
        self._once = False
        self._file: BinaryIO | None = None
        self._inode = 0
        self._buf = b""
        self._i = 0  # index in _buf of the first byte not yet emitted
        self._pos = 0  # file offset of _buf[_i]: just after the last emitted line
        self._resume_at: int | None = None  # checkpoint, until the file is opened
        self._end_at_start: int | None = None  # --once: the size to reach
        self._warned_missing = False
        self._layout = FileLayout(options.path)

    async def start(self, context: SourceContext) -> None:
        self._clock = context.clock
        self._log = context.log
        self._once = context.once
        checkpoint = context.checkpoint.get(self.options.path)
        self._resume_at = None if checkpoint is None else int(checkpoint)
        if not self._open() and self._once:
            raise FatalError(f"file: {self.options.path}: no such file")

    # -- opening and seeking --------------------------------------------------

    def _open(self) -> bool:
        """Open the file and seek to where reading starts; False while it is missing."""
        path = self.options.path
        first = self._end_at_start is None
        try:
            handle = open(path, "rb")  # noqa: SIM115 - kept open across reads, closed in stop
        except FileNotFoundError:
            if not self._warned_missing:
                self._log.warning("file_missing", path=path)
                self._warned_missing = True
            if first:
                self._end_at_start = 0  # a file that appears later is read from its start
            return False
        except OSError as exc:
            raise FatalError(f"file: cannot open {path}: {exc.strerror}") from exc
        stat = os.fstat(handle.fileno())
        self._file = handle
        self._inode = stat.st_ino
        size = stat.st_size
        start = 0
        if self._resume_at is not None:
            start, self._resume_at = self._resume_at, None
            if start > size:
                self._log.warning("file_truncated", path=path, position=start, size=size)
                start = 0
        elif first and self.options.start_at == "end":
            start = self._last_line_start(handle, size)
        if first:
            self._end_at_start = size
        handle.seek(start)
        self._buf, self._i, self._pos = b"", 0, start
        return True

    @staticmethod
    def _last_line_start(handle: BinaryIO, size: int) -> int:
        """Offset after the last ``\\n``: a line still being written is read whole later."""
        end = size
        while end > 0:
            begin = max(0, end - 65536)
            handle.seek(begin)
            found = handle.read(end - begin).rfind(b"\n")
            if found >= 0:
                return begin + found + 1
            end = begin
        return 0

    def _restart(self, handle: BinaryIO) -> None:
        handle.seek(0)
        self._buf, self._i, self._pos = b"", 0, 0

    def _check_replaced(self, handle: BinaryIO) -> bool:
        """At the end of the data: was the file truncated or rotated? True if we moved."""
        read_end = self._pos + len(self._buf) - self._i
        size = os.fstat(handle.fileno()).st_size
        path = self.options.path
        if size < read_end:
            self._log.warning("file_truncated", path=path, position=read_end, size=size)
            self._restart(handle)
            # --once must still end: the end seen at start may no longer exist.
            self._end_at_start = min(self._end_at_start or 0, size)
            return True
        try:
            inode = os.stat(path).st_ino
        except FileNotFoundError:
            return False  # rotated away, not yet replaced: keep the old one
        if inode != self._inode:
            self._log.info("file_rotated", path=path)
            handle.close()
            self._file = None
            # The old file is drained, so the end seen at start is behind us.
            self._end_at_start = 0
            return self._open()
        return False

    # -- reading ----------------------------------------------------------------

    def _take_lines(self, max_events: int, out: list[Event]) -> None:
        buf, i, pos = self._buf, self._i, self._pos
        path, layout, unset = self.options.path, self._layout, UNSET
        append = out.append
        while len(out) < max_events:
            nl = buf.find(b"\n", i)
            if nl < 0:
                break
            end = nl - 1 if nl > i and buf[nl - 1] == 0x0D else nl  # tolerate CRLF
            after = pos + (nl + 1 - i)
            # Blank lines (only whitespace) carry no event; the position still moves past them.
            if end > i and (buf[i] > 0x20 or buf[i:end].strip()):
                append(Event(None, path, after, "body", unset, None, buf[i:end], pos, layout))
            i, pos = nl + 1, after
        self._i, self._pos = i, pos

    def _fill(self, handle: BinaryIO) -> bool:
        """Append the next chunk to the buffer; False at the end of the file."""
        data = handle.read(CHUNK_BYTES)
        if not data:
            return False
        self._buf = self._buf[self._i :] + data
        self._i = 0
        return True

    def _take_final_partial(self, out: list[Event]) -> None:
        """``--once``: a last line without ``\\n`` at the end seen at start is complete."""
        rest = self._buf[self._i :]
        end_at_start = self._end_at_start or 0
        if not rest or self._pos >= end_at_start:
            return  # nothing pending, or it began after the end seen at start
        after = self._pos + len(rest)
        line = rest.removesuffix(b"\r")
        if line.strip():
            out.append(
                Event(None, self.options.path, after, "body", UNSET, None, line, self._pos, self._layout)
            )
        self._buf, self._i, self._pos = b"", 0, after

    def _read_now(self, max_events: int) -> list[Event]:
        out: list[Event] = []
        if self._file is None and not self._open():
            return out
        handle = self._file
        while handle is not None:
            self._take_lines(max_events, out)
            if len(out) >= max_events:
                break
            if self._fill(handle):
                continue
            if out:  # at the end: hand over what we have before looking further
                break
            if not self._check_replaced(handle):
                if self._once:
                    self._take_final_partial(out)
                break
            handle = self._file
        return out

    async def read(self, max_events: int, timeout_s: float) -> list[Event]:
        deadline = self._clock.monotonic() + timeout_s
        while True:
            events = self._read_now(max_events)
            if events or (self._once and self.caught_up()):
                return events
            remaining = deadline - self._clock.monotonic()
            if remaining <= 0:
                return events
            await self._clock.sleep(min(self.options.poll_interval, remaining))

    def caught_up(self) -> bool:
        return self._end_at_start is not None and self._pos >= self._end_at_start

    async def replay_plan(
        self, context: SourceContext, start: ReplayPoint, until: ReplayPoint | None
    ) -> list[PartitionMove]:
        """From the start (``beginning``) or a byte offset, snapped to the next line start; lines have no times."""
        path = self.options.path
        for point in (start, until):
            if point is not None:
                point.no_times("file", "beginning or a byte offset (--from 1024)")
                point.check_partitions([path])
        new = self._line_start(start)
        if new is None:
            return []
        old = context.checkpoint.get(path)
        at = 0 if old is None else int(old)
        move = PartitionMove(path, old, new, events=self._lines_between(new, at))
        move.forward = new > at
        if move.forward:
            move.events = -self._lines_between(at, new)
        if until is not None:
            move.until = self._line_start(until)
        return [move]

    def _line_start(self, point: ReplayPoint) -> int | None:
        """Where reading starts for ``point``: 0, or the first line starting at or after the offset."""
        if point.kind == "beginning":
            return 0
        offset = point.number_for(self.options.path, "a byte offset")
        if offset is None:
            return None
        try:
            with open(self.options.path, "rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                if not 0 <= offset <= size:
                    raise CannotReplay(f"{point.text!r}: {self.options.path} has {size:,} bytes")
                if offset == 0:
                    return 0
                handle.seek(offset - 1)
                while chunk := handle.read(CHUNK_BYTES):
                    nl = chunk.find(b"\n")
                    if nl >= 0:
                        return offset + nl
                    offset += len(chunk)
                return size
        except FileNotFoundError:
            raise CannotReplay(f"{point.text!r}: {self.options.path}: no such file") from None

    def _lines_between(self, begin: int, end: int) -> int:
        """Complete lines from byte ``begin`` up to ``end`` (what a replay delivers again)."""
        if end <= begin:
            return 0
        lines = 0
        try:
            with open(self.options.path, "rb") as handle:
                handle.seek(begin)
                left = end - begin
                while left > 0 and (chunk := handle.read(min(CHUNK_BYTES, left))):
                    lines += chunk.count(b"\n")
                    left -= len(chunk)
        except FileNotFoundError:
            return 0
        return lines

    async def stop(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class FileTargetOptions(ConnectorOptions):
    path: str = Field(description="The file to append to, one line per event.")
    fsync: bool = Field(
        default=True,
        description="fsync after each batch, so delivered means on disk (slower; safer).",
    )
    mkdir: bool = Field(default=True, description="Create missing parent directories at start.")


class FileTarget(Target):
    """Appends one line per payload: text verbatim, anything else as compact JSON.

    A batch is one ``write`` and, with ``fsync`` (the default), one ``fsync``;
    both then run in a thread, as fsync blocks for milliseconds, while a bare
    write to the page cache runs inline. If either fails,
    every event of the batch is retried: some lines may then be written twice,
    which at-least-once delivery allows.
    """

    options_model = FileTargetOptions
    reads_record = False

    def __init__(self, options: FileTargetOptions) -> None:
        super().__init__(options)
        self.options: FileTargetOptions = options
        self._fd: int | None = None

    async def start(self, context: ConnectorContext) -> None:
        path = Path(self.options.path)
        try:
            if self.options.mkdir:
                path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except _REFUSED as exc:
            raise FatalError(f"file: cannot open {path} for appending: {exc.strerror}") from exc
        except OSError as exc:
            raise RetryableError(f"file: cannot open {path}: {exc.strerror}") from exc

    def _write(self, fd: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        if self.options.fsync:
            os.fsync(fd)

    async def write(self, events: Sequence[Event]) -> Sequence[Outcome]:
        fd = self._fd
        if fd is None:
            raise RetryableError("file: target not started")
        lines, outcomes = encode_each(events, payload_bytes)
        written = [line for line in lines if line is not None]
        if not written:
            return outcomes
        data = b"\n".join(written) + b"\n"
        try:
            if self.options.fsync:  # fsync takes milliseconds: off the event loop
                await asyncio.to_thread(self._write, fd, data)
            else:  # a write to the page cache is quicker than a thread hand-off
                self._write(fd, data)
        except OSError as exc:
            reason = exc.strerror or errno.errorcode.get(exc.errno or 0, str(exc))
            error = RetryableError(f"file: cannot write {self.options.path}: {reason}")
            return [error if outcome is None else outcome for outcome in outcomes]
        return outcomes

    async def stop(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):  # stop must not raise
                os.close(self._fd)
            self._fd = None


connector = Connector(
    name="file",
    description="Follows a JSON-lines file as a source; appends one line per event as a target.",
    source=FileSource,
    target=FileTarget,
    dead_letter_reader=FileDeadLetterReader,
)
