"""``pipes run`` on a real terminal: log lines and the progress block never overwrite each other.

The run happens under a pseudo-terminal and its output is replayed through a
terminal emulator (pyte), so the test sees what a person would see.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pyte
import pytest

PIPES = str(Path(sys.executable).parent / "pipes")
COLUMNS, ROWS = 200, 120

pytestmark = pytest.mark.e2e

HANDLERS = """\
from pipes.errors import FatalError

def refuse(payloads):
    return [FatalError("refused") for _ in payloads]
"""


def run_on_a_terminal(args: list[str], cwd: Path) -> tuple[int, list[str]]:
    """Run ``pipes`` with a pseudo-terminal as stdin, stdout and stderr; the screen it leaves."""
    code, output = raw_run_on_a_terminal(args, cwd)
    screen = pyte.Screen(COLUMNS, ROWS)
    pyte.ByteStream(screen).feed(output)
    return code, [line.rstrip() for line in screen.display if line.strip()]


def raw_run_on_a_terminal(args: list[str], cwd: Path) -> tuple[int, bytes]:
    """Run ``pipes`` with a pseudo-terminal as stdin, stdout and stderr; all it wrote."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
    proc = subprocess.Popen([PIPES, *args], cwd=cwd, stdin=follower, stdout=follower, stderr=follower)
    os.close(follower)
    output = bytearray()
    try:
        while True:
            try:
                data = os.read(leader, 65536)
            except OSError:  # EIO: every holder of the terminal is gone
                break
            if not data:
                break
            output += data
    finally:
        os.close(leader)
        code = proc.wait(timeout=60)
    return code, bytes(output)


def test_every_log_line_stays_on_screen_and_the_progress_block_leaves_no_copies(tmp_path: Path) -> None:
    (tmp_path / "handlers.py").write_text(HANDLERS)
    (tmp_path / "refuse.yaml").write_text(
        "name: refuse\n"
        "source: {type: generator, count: 20, rate: 10}\n"  # two seconds: several progress redraws
        "target: {type: python, function: 'handlers:refuse'}\n"
        "dead_letter: {type: file, path: dlq.jsonl}\n"
        "batch: {size: 1, window: 0}\n"
    )
    code, screen = run_on_a_terminal(["run", "--once", "refuse.yaml"], tmp_path)
    assert code == 0, "\n".join(screen)
    dead = [line for line in screen if "event_dead_lettered" in line]
    assert sorted(int(line.split("position=")[1].split()[0]) for line in dead) == list(range(20))
    assert any("pipe_started" in line for line in screen)
    assert any("pipe_stopped" in line for line in screen)
    assert screen[-1].startswith("refuse: stopped; received 20, filtered 0, delivered 0, dead-lettered 20")
    assert not [line for line in screen if line.startswith("refuse [")], "a progress line was left behind"


def test_lines_on_stdout_are_not_erased_by_the_progress_block(tmp_path: Path) -> None:
    (tmp_path / "tick.yaml").write_text(
        "name: tick\n"
        "source: {type: generator, count: 12, rate: 6}\n"
        "transform: {jmespath: 'body.detail.order_id'}\n"
        "target: {type: stdout}\n"
        "batch: {size: 1, window: 0}\n"
    )
    code, screen = run_on_a_terminal(["run", "--once", "tick.yaml"], tmp_path)
    assert code == 0, "\n".join(screen)
    assert [line for line in screen if line.startswith("ord-")] == [f"ord-{i:09d}" for i in range(12)]
    assert not [line for line in screen if line.startswith("tick [")], "a progress line was left behind"


def test_json_logs_on_a_terminal_have_no_progress_lines(tmp_path: Path) -> None:
    (tmp_path / "few.yaml").write_text(
        "name: few\nsource: {type: generator, count: 6, rate: 4}\n"
        "target: {type: file, path: out.jsonl}\nbatch: {size: 1, window: 0}\n"
    )
    code, output = raw_run_on_a_terminal(["run", "--once", "--log-format", "json", "few.yaml"], tmp_path)
    assert code == 0, output
    lines = output.decode().splitlines()
    assert lines and all(json.loads(line)["event"] for line in lines)
