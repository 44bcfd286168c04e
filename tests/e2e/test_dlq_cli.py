"""``pipes dlq`` and ``pipes replay`` against a running ``pipes run`` daemon, and their plain errors."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyte
import pytest
from helpers import wait_until_sync
from test_terminal import COLUMNS, ROWS, raw_run_on_a_terminal

pytestmark = pytest.mark.e2e

PIPES = str(Path(sys.executable).parent / "pipes")
EVENTS = 60

SINK = """
import json, os

def write(batch, options):
    if os.path.exists(options["broken"]):
        raise RuntimeError("reporting db is down")
    with open(options["out"], "a") as out:
        out.write("".join(json.dumps(p) + "\\n" for p in batch))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pipe_file(directory: Path, count: int = EVENTS, **extra: Any) -> Path:
    (directory / "dlq_sink.py").write_text(SINK)
    definition = {
        "name": "reporting",
        "source": {"type": "generator", "count": count},
        "transform": {"template": "<$.index>"},
        "target": {
            "type": "python",
            "function": "dlq_sink:write",
            "options": {"out": str(directory / "out.jsonl"), "broken": str(directory / "broken")},
        },
        "retry": {"max_attempts": 1},
        "dead_letter": {"type": "file", "path": str(directory / "dlq.jsonl")},
        "batch": {"size": 10, "window": 0},
        "checkpoint_interval": "50ms",
        **extra,
    }
    path = directory / "reporting.yaml"
    path.write_text(json.dumps(definition))
    return path


def delivered(directory: Path) -> Counter[int]:
    out = directory / "out.jsonl"
    if not out.exists():
        return Counter()
    text = out.read_text()
    complete = text[: text.rfind("\n") + 1]  # a line being written is not read yet
    return Counter(int(json.loads(line)) for line in complete.splitlines())


def pipes(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PIPES, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[str]:
    """A daemon whose pipe dead-lettered every event (its target was down); yields its admin address."""
    (tmp_path / "broken").touch()
    path = pipe_file(tmp_path)
    address = f"127.0.0.1:{free_port()}"
    log = (tmp_path / "daemon.log").open("wb")
    process = subprocess.Popen(
        [
            PIPES,
            "run",
            "--no-progress",
            "--admin",
            address,
            "--state-dir",
            str(tmp_path / "state"),
            str(path),
        ],
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        dlq = tmp_path / "dlq.jsonl"
        wait_until_sync(
            lambda: dlq.exists() and dlq.read_bytes().count(b"\n") == EVENTS, timeout=60, what="dead letters"
        )
        yield address
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
        log.close()


def test_inspect_fix_redrive_and_replay_through_the_daemon(daemon: str, tmp_path: Path) -> None:
    listed = pipes("dlq", "ls", "reporting", "--admin", daemon, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[0] == (
        f"reporting: {EVENTS} dead letters waiting (file; 0 redriven before, 0 unreadable)"
    )
    assert "by error: RetryableError 60" in listed.stdout

    where = '{"record": {"index": [{"numeric": [">=", 55]}]}}'
    shown = pipes("dlq", "show", "reporting", "--admin", daemon, "--where", where, cwd=tmp_path)
    assert [json.loads(line)["record"]["index"] for line in shown.stdout.splitlines()] == [55, 56, 57, 58, 59]

    (tmp_path / "broken").unlink()  # the cause is fixed
    redriven = pipes("dlq", "redrive", "reporting", "--admin", daemon, cwd=tmp_path)
    assert redriven.returncode == 0, redriven.stderr
    assert redriven.stderr.startswith("reporting: delivered 60, filtered 0, dropped 0, failed again 0 of 60")
    assert delivered(tmp_path) == Counter(range(EVENTS))

    # The reporting service lost what it got from index 50 on: replay it from there.
    replayed = pipes("replay", "reporting", "--from", "50", "--admin", daemon, cwd=tmp_path)
    assert replayed.returncode == 0, replayed.stderr
    assert replayed.stdout.splitlines()[1:3] == ["PARTITION  OLD  NEW  EVENTS", "generator   59   49      10"]
    wait_until_sync(lambda: sum(delivered(tmp_path).values()) == EVENTS + 10, what="10 delivered again")
    assert delivered(tmp_path) == Counter([*range(EVENTS), *range(50, EVENTS)])

    forward = pipes("replay", "reporting", "--from", "100", "--admin", daemon, cwd=tmp_path)
    assert forward.returncode == 1
    assert forward.stderr.count("\n") == 1 and "--force" in forward.stderr


def test_plain_errors(tmp_path: Path) -> None:
    path = pipe_file(tmp_path)
    nobody = f"127.0.0.1:{free_port()}"
    cases = [
        (["dlq", "ls", "reporting", "--admin", nobody], 1, "no daemon at"),
        (["dlq", "show", "reporting", "--admin", "off"], 2, "give the pipe's files with --config"),
        (
            ["dlq", "show", "reporting", "--config", str(path), "--where", "{nope"],
            2,
            "--where: invalid pattern",
        ),
        (["dlq", "redrive", "reporting", "--config", str(path), "--since", "soon"], 2, "--since"),
        (["dlq", "ls", "other", "--config", str(path), "--admin", "off"], 2, "no pipe named 'other'"),
        (
            ["replay", "reporting", "--config", str(path), "--admin", "off", "--from", "now-1h"],
            1,
            "from a time",
        ),
        (
            ["replay", "reporting", "--config", str(path), "--admin", "off", "--from", "p=", "--force"],
            2,
            "--from",
        ),
        (
            ["replay", "reporting", "--config", str(path), "--admin", "off", "--from", "3", "--to", "9"],
            2,
            "--to",
        ),
    ]
    for args, code, message in cases:
        done = pipes(*args, cwd=tmp_path)
        assert done.returncode == code, (args, done.stderr)
        assert message in done.stderr and done.stderr.count("\n") == 1, (args, done.stderr)
        assert "Traceback" not in done.stderr


def test_the_progress_bar_on_a_terminal_gives_way_to_the_summary(tmp_path: Path) -> None:
    (tmp_path / "broken").touch()
    path = pipe_file(tmp_path, count=400)
    state = str(tmp_path / "state")
    ran = pipes("run", "--once", "--no-progress", "--state-dir", state, str(path), cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    (tmp_path / "broken").unlink()
    args = ["dlq", "redrive", "reporting", "--config", str(path), "--admin", "off", "--state-dir", state]
    code, output = raw_run_on_a_terminal(args, tmp_path)
    terminal = pyte.Screen(COLUMNS, ROWS)
    pyte.ByteStream(terminal).feed(output)
    screen = [line.rstrip() for line in terminal.display if line.strip()]
    assert code == 0, "\n".join(screen)
    assert b"redrive \x1b[1mreporting" in output, "a progress bar was drawn"
    assert screen[-1].startswith("reporting: delivered 400, filtered 0, dropped 0, failed again 0 of 400")
    assert not any("redrive reporting" in line for line in screen), "the bar is gone at the end"
    assert delivered(tmp_path) == Counter(range(400))
    assert os.path.exists(tmp_path / "state" / "checkpoints" / "reporting.redrive.json")
