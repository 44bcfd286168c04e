"""The terminal of ``pipes run``: log lines and the live progress block share it.

On a terminal, the progress block (one line per pipe) sits below the log and is
rewritten in place. Anything else written to the terminal must not land inside
it, or the next redraw erases it: so every log line goes through
``TerminalLines``, which erases the block, writes the lines, and draws the
block again below them, in one write.
"""

from __future__ import annotations

import os
import threading
from typing import Any, TextIO

__all__ = ["TerminalLines"]

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
