"""Reads back a ``file`` dead letter: its JSON lines, oldest first (``pipes dlq``).

A line's position is the byte offset just after it, as for the file source,
so a position stays the same however much is appended. Only complete lines up
to the size seen when a scan begins are read: a line still being written, and
lines appended during the scan, wait for the next one.
"""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator, Mapping
from typing import TYPE_CHECKING, BinaryIO

from pipes.dead_letters import DeadLetter, DeadLetterReader
from pipes.errors import FatalError
from pipes.events import Position

if TYPE_CHECKING:
    from connectors.file import FileTargetOptions

__all__ = ["FileDeadLetterReader"]

#: Bytes per read while scanning.
CHUNK_BYTES = 1 << 20
#: Records per batch handed out.
BATCH = 500


class FileDeadLetterReader(DeadLetterReader):
    """The lines of the dead-letter file; the partition is its path."""

    options: FileTargetOptions

    def _open(self) -> BinaryIO | None:
        try:
            return open(self.options.path, "rb")  # closed by the caller
        except FileNotFoundError:
            return None  # nothing was dead-lettered yet
        except OSError as exc:
            raise FatalError(f"file: cannot read {self.options.path}: {exc.strerror}") from exc

    async def scan(self, after: Mapping[str, Position]) -> AsyncGenerator[list[DeadLetter]]:
        path = self.options.path
        handle = self._open()
        if handle is None:
            return
        with handle:
            end = os.fstat(handle.fileno()).st_size
            pos = int(after.get(path, 0))
            if pos > end:
                raise FatalError(
                    f"file: {path} is shorter than position {pos}: was it truncated or replaced?"
                )
            handle.seek(pos)
            buffer = b""
            out: list[DeadLetter] = []
            while pos + len(buffer) < end:
                chunk = handle.read(min(CHUNK_BYTES, end - pos - len(buffer)))
                if not chunk:
                    break
                buffer += chunk
                start = 0
                while (nl := buffer.find(b"\n", start)) >= 0:
                    line = buffer[start:nl].strip()
                    start = nl + 1
                    if line:
                        out.append(DeadLetter.decode(path, pos + start, line))
                        if len(out) >= BATCH:
                            yield out
                            out = []
                pos += start
                buffer = buffer[start:]
            if out:
                yield out
