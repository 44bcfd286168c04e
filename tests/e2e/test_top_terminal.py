"""``pipes top`` on a real terminal: every pipe on screen, keys stop and start one, q and Ctrl-C leave cleanly.

A daemon runs in a subprocess; ``pipes top`` runs under a pseudo-terminal and
its output is replayed through a terminal emulator (pyte), so the test sees
what a person would see.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import signal
import socket
import struct
import subprocess
import sys
import termios
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pyte
import pytest
from helpers import wait_until_sync

PIPES = str(Path(sys.executable).parent / "pipes")
COLUMNS, ROWS = 140, 30

pytestmark = pytest.mark.e2e


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pipes_list(address: str) -> list[dict[str, object]]:
    with urllib.request.urlopen(f"http://{address}/pipes", timeout=5) as answer:
        return list(json.load(answer)["pipes"])


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[str]:
    """``pipes run`` with two slow generator pipes; its admin address."""
    for name in ("orders", "audit"):
        (tmp_path / f"{name}.yaml").write_text(
            f"name: {name}\nsource: {{type: generator, count: 1000000, rate: 20}}\n"
            f"target: {{type: file, path: {name}.jsonl}}\nbatch: {{size: 5, window: 50ms}}\n"
        )
    address = f"127.0.0.1:{free_port()}"
    proc = subprocess.Popen(
        [PIPES, "run", "--admin", address, "--no-progress", "--state-dir", "state", str(tmp_path)],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def running() -> bool:
        try:
            return {p["state"] for p in pipes_list(address)} == {"RUNNING"}
        except OSError:
            return False

    try:
        wait_until_sync(running, timeout=30, what="the daemon's pipes running")
        yield address
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def _controlling_terminal() -> None:
    """In the child: a session of its own whose controlling terminal is its stdin, as a shell sets up.

    So Ctrl-C typed on the terminal is a SIGINT to it, as for a person.
    """
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Terminal:
    """``pipes ARGS`` with a pseudo-terminal as stdin, stdout and stderr, seen through pyte."""

    def __init__(self, args: list[str]) -> None:
        self.leader, follower = pty.openpty()
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
        # The terminal's own size, as a person's shell has it (COLUMNS would override it).
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
        self.proc = subprocess.Popen(
            [PIPES, *args],
            stdin=follower,
            stdout=follower,
            stderr=follower,
            env=env,
            preexec_fn=_controlling_terminal,
        )
        os.close(follower)
        self.screen = pyte.Screen(COLUMNS, ROWS)
        self.stream = pyte.ByteStream(self.screen)

    def lines(self) -> list[str]:
        return [line.rstrip() for line in self.screen.display if line.strip()]

    def read_until(self, seen: Callable[[list[str]], bool], timeout: float = 20.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while not seen(self.lines()):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("timed out; the screen shows:\n" + "\n".join(self.lines()))
            ready, _, _ = select.select([self.leader], [], [], left)
            if ready:
                try:
                    self.stream.feed(os.read(self.leader, 65536))
                except OSError:  # EIO: the program is gone
                    raise AssertionError("pipes top ended early:\n" + "\n".join(self.lines())) from None
        return self.lines()

    def press(self, keys: bytes) -> None:
        os.write(self.leader, keys)

    def exit_code(self, timeout: float = 20.0) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()  # our own child, by its id
            self.proc.wait()
            raise
        finally:
            os.close(self.leader)


def row(lines: list[str], name: str) -> str:
    return next(line for line in lines if line.split()[:1] == [name])


def test_top_shows_every_pipe_and_keys_stop_and_start_the_selected_one(daemon: str) -> None:
    terminal = Terminal(["top", "--admin", daemon, "--interval", "300ms"])
    try:
        lines = terminal.read_until(lambda lines: any(line.startswith("pipes top") for line in lines))
        lines = terminal.read_until(
            lambda lines: all(any(n in line for line in lines) for n in ("orders", "audit"))
        )
        assert "RUNNING" in row(lines, "audit") and "RUNNING" in row(lines, "orders")
        assert any("NAME" in line and "IN/S" in line and "DELIVERED/S" in line for line in lines)
        assert any("LETTERED" in line and "FLIGHT" in line for line in lines)
        # Rates appear once two polls were made: about 20 events/s in.
        terminal.read_until(lambda lines: row(lines, "orders").split()[2].isdigit())
        # Sorted by name, the first row (audit) is selected: x stops it, s starts it again.
        terminal.press(b"x")
        terminal.read_until(lambda lines: any("stop audit: desired STOPPED" in line for line in lines))
        wait_until_sync(
            lambda: {p["name"]: p["state"] for p in pipes_list(daemon)}["audit"] == "STOPPED",
            what="audit stopped",
        )
        assert {p["name"]: p["state"] for p in pipes_list(daemon)}["orders"] == "RUNNING"
        terminal.read_until(lambda lines: "STOPPED" in row(lines, "audit"))
        terminal.press(b"s")
        terminal.read_until(lambda lines: any("start audit: desired RUNNING" in line for line in lines))
        terminal.press(b"q")
    finally:
        code = terminal.exit_code()
    assert code == 0


def test_ctrl_c_leaves_top_cleanly(daemon: str) -> None:
    terminal = Terminal(["top", "--admin", daemon])
    try:
        terminal.read_until(lambda lines: any("orders" in line for line in lines))
        terminal.press(b"\x03")
    finally:
        code = terminal.exit_code()
    assert code == 0
