"""``StdoutGuard``: a reader that went away is noticed once, and nothing is written after it."""

from __future__ import annotations

import io

import pytest

from pipes.terminal import StdoutGuard


class ClosedPipe(io.BytesIO):
    """A binary stdout whose reader has gone: every write fails with EPIPE."""

    writes = 0

    def write(self, data: object) -> int:
        self.writes += 1
        raise BrokenPipeError(32, "Broken pipe")


def test_a_broken_pipe_is_reported_once_and_later_writes_do_not_try_again() -> None:
    binary = ClosedPipe()
    stdout = io.TextIOWrapper(binary)
    closed: list[bool] = []
    guard = StdoutGuard(stdout, None, on_closed=lambda: closed.append(True))
    assert guard.buffer is not None
    with pytest.raises(BrokenPipeError):
        guard.buffer.write(b"line\n")
    assert guard.closed_by_reader and closed == [True]
    with pytest.raises(BrokenPipeError, match="closed by its reader"):
        guard.buffer.write(b"more\n")
    with pytest.raises(BrokenPipeError):
        guard.write("text\n")
    assert binary.writes == 1 and closed == [True]


def test_writes_pass_through_while_the_reader_is_there() -> None:
    stdout = io.TextIOWrapper(io.BytesIO())
    guard = StdoutGuard(stdout, None, on_closed=lambda: None)
    assert guard.buffer is not None
    guard.buffer.write(b"one\n")
    guard.write("two\n")
    guard.flush()
    assert guard.original is stdout and not guard.closed_by_reader
