"""The terminal of ``pipes run``: log lines and the live progress block share it.

On a terminal, the progress block (one line per pipe) sits below the log and is
rewritten in place. Anything else written to the terminal must not land inside
it, or the next redraw erases it: so every log line goes through
``TerminalLines``, which erases the block, writes the lines, and draws the
block again below them, in one write. Standard output, when it is the same
terminal, goes through ``StdoutGuard``, which erases the block first too (it
comes back at the next progress tick rather than after every write).

``StdoutGuard`` also notices when the reader of standard output has gone away
(``pipes run ... | head``: EPIPE), so that ``pipes run`` can stop as a Unix
tool does instead of retrying writes into a closed pipe.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any, TextIO

__all__ = ["StdoutGuard", "TerminalLines"]

_ERASE_BLOCK = "\x1b[{n}F\x1b[J"  # to the start of the block's first line, then erase to the end


class TerminalLines:
    """A text stream for stderr that keeps a live block of lines below what is written.

    ``write`` takes any text; complete lines are written at once (erasing the
    block before them and drawing it after), a partial line waits for its end.
    ``show(lines)`` replaces the block. Off a terminal there is no block and
    lines pass straight through. Safe to call from several threads.
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.live = _isatty(stream)
        self._block: list[str] = []
        self._drawn = False
        self._partial = ""
        self._lock = threading.RLock()

    # -- the stream interface (structlog, logging and print write here) ------------

    def write(self, text: str) -> int:
        with self._lock:
            pending = self._partial + text
            complete, newline, self._partial = pending.rpartition("\n")
            if newline:
                self._out(self._erase() + complete + "\n" + self._draw())
        return len(text)

    def flush(self) -> None:
        with self._lock:
            self.stream.flush()

    def isatty(self) -> bool:
        return self.live

    def fileno(self) -> int:
        return self.stream.fileno()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)  # encoding, errors, ...: as the terminal's

    # -- the live block -------------------------------------------------------------

    def show(self, lines: list[str]) -> None:
        """Replace the block with ``lines`` (cut to the terminal's width); ``[]`` removes it."""
        if not self.live:
            return
        width = _columns(self.stream)
        with self._lock:
            erase = self._erase()
            self._block = [line[: width - 1] for line in lines]
            self._out(erase + self._draw())

    def hide(self) -> None:
        """Erase the block until the next ``show`` (something else is about to write to the terminal)."""
        with self._lock:
            erase = self._erase()
            if erase:
                self._out(erase)

    def close(self) -> None:
        """Remove the block and write out a last partial line."""
        with self._lock:
            self.show([])
            if self._partial:
                self._out(self._partial + "\n")
                self._partial = ""

    def _erase(self) -> str:
        if not self._drawn:
            return ""
        self._drawn = False
        return _ERASE_BLOCK.format(n=len(self._block))

    def _draw(self) -> str:
        if not self._block:
            return ""
        self._drawn = True
        return "".join(line + "\n" for line in self._block)

    def _out(self, text: str) -> None:
        if text:
            self.stream.write(text)
            self.stream.flush()


class StdoutGuard:
    """Stands in for ``sys.stdout`` during ``pipes run``.

    - When standard output is the terminal the progress block is drawn on, the
      block is erased before each write.
    - When the reader of standard output has gone away (EPIPE), ``on_closed``
      is called once and this and every later write raises ``BrokenPipeError``,
      so that nothing is counted as written. ``on_closed`` may be called from a
      worker thread (a ``python`` target that prints).
    """

    def __init__(self, stream: TextIO, terminal: TerminalLines | None, on_closed: Callable[[], None]) -> None:
        self._stream = stream
        #: The stream this stands in for (to put back when the run is over).
        self.original = stream
        shares_terminal = terminal is not None and terminal.live and _isatty(stream)
        self._terminal = terminal if shares_terminal else None
        self._on_closed = on_closed
        self.closed_by_reader = False
        binary = getattr(stream, "buffer", None)
        self.buffer = _GuardedBinary(self, binary) if binary is not None else None

    def write(self, text: str) -> int:
        return int(self._guarded(lambda: self._stream.write(text)))

    def flush(self) -> None:
        self._guarded(self._stream.flush)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    def _guarded(self, call: Callable[[], Any]) -> Any:
        if self.closed_by_reader:
            raise BrokenPipeError(32, "standard output was closed by its reader")
        if self._terminal is not None:
            self._terminal.hide()
        try:
            return call()
        except BrokenPipeError:
            self.closed_by_reader = True
            self._on_closed()
            raise

    def silence(self) -> None:
        """After a closed stdout: point file descriptor 1 at /dev/null, so that Python's last flush
        at exit does not complain about the data nobody will read (nothing is delivered by then)."""
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, self._stream.fileno())
        finally:
            os.close(devnull)


class _GuardedBinary:
    """``sys.stdout.buffer`` seen through a ``StdoutGuard`` (the stdout target writes bytes)."""

    def __init__(self, guard: StdoutGuard, stream: Any) -> None:
        self._guard = guard
        self._stream = stream

    def write(self, data: bytes) -> int:
        return int(self._guard._guarded(lambda: self._stream.write(data)))

    def flush(self) -> None:
        self._guard._guarded(self._stream.flush)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def _columns(stream: TextIO) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, ValueError, OSError):
        return 80
