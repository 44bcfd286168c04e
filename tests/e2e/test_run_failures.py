"""``pipes run`` and ``pipes test`` when something is wrong: one clear line, the right exit status, no hang."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import wait_until_sync

PIPES = str(Path(sys.executable).parent / "pipes")

pytestmark = pytest.mark.e2e


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def unreachable_pipe(tmp_path: Path) -> Path:
    config = tmp_path / "down.yaml"
    config.write_text(
        f"""
name: down
source: {{type: generator, count: 10}}
target: {{type: redis_stream, url: "redis://127.0.0.1:{closed_port()}/0", stream: out, connect_timeout: 200ms}}
"""
    )
    return config


def test_once_gives_up_after_the_start_timeout_and_says_the_pipe_never_started(tmp_path: Path) -> None:
    config = unreachable_pipe(tmp_path)
    began = time.monotonic()
    done = subprocess.run(
        [PIPES, "run", "--once", "--start-timeout", "1s", str(config)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert time.monotonic() - began < 30
    summary = [line for line in done.stderr.splitlines() if line.startswith("down: ")]
    assert len(summary) == 1 and summary[0].startswith("down: never started; could not start within 1s")
    assert "127.0.0.1" in summary[0]  # names the system it could not reach
    assert "failed attempts" not in summary[0]


def test_a_sigterm_before_the_pipe_started_says_it_never_started(tmp_path: Path) -> None:
    config = unreachable_pipe(tmp_path)
    proc = subprocess.Popen(
        [PIPES, "run", "--admin", "off", str(config)],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    seen: list[str] = []
    try:
        wait_until_sync(lambda: "connect_failed" in (seen.append(proc.stderr.readline()) or seen[-1]))  # type: ignore[union-attr,func-returns-value]
    finally:
        proc.send_signal(signal.SIGTERM)  # also when the wait failed: never leave it running
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    assert proc.returncode == 0
    summary = [line for line in err.splitlines() if line.startswith("down: ")]
    assert len(summary) == 1 and summary[0].startswith("down: never started; "), err
    assert "connection" in summary[0].lower()


def test_a_corrupt_checkpoint_stops_the_pipe_and_reset_checkpoint_starts_it_over(tmp_path: Path) -> None:
    (tmp_path / "in.jsonl").write_text('{"n": 1}\n{"n": 2}\n')
    config = tmp_path / "copy.yaml"
    config.write_text(
        f"name: copy\nsource: {{type: file, path: {tmp_path / 'in.jsonl'}}}\n"
        f"target: {{type: file, path: {tmp_path / 'out.jsonl'}}}\n"
    )
    checkpoint = tmp_path / "state" / "checkpoints" / "copy.json"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_text('{"pipe": "copy", "positions": {')
    run = [PIPES, "run", "--once", "--state-dir", str(tmp_path / "state"), str(config)]
    done = subprocess.run(run, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert str(checkpoint) in done.stderr and "--reset-checkpoint copy" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "out.jsonl").exists()
    again = subprocess.run(
        [*run, "--reset-checkpoint", "copy"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "out.jsonl").read_text().splitlines() == ['{"n": 1}', '{"n": 2}']
    unknown = subprocess.run(
        [*run, "--reset-checkpoint", "nope"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert unknown.returncode == 2 and "no pipe named nope" in unknown.stderr


@pytest.mark.parametrize(
    ("event", "code", "last_stage"),
    [
        ({"body": {"n": [1, 2], "keep": True}}, 0, {"stage": "transform", "payloads": [{"count": 2}]}),
        ({"body": {"n": [1, 2], "keep": False}}, 0, {"stage": "filter", "matched": False}),
        ({"body": {"n": 5, "keep": True}}, 1, "error"),
    ],
)
def test_pipes_test_exits_1_only_when_a_stage_failed_the_event(
    tmp_path: Path, event: dict[str, object], code: int, last_stage: object
) -> None:
    config = tmp_path / "p.yaml"
    config.write_text(
        "name: p\nsource: {type: generator}\ntarget: {type: stdout}\n"
        "filter: [{body: {keep: [true]}}]\ntransform: {jmespath: '{count: length(body.n)}'}\n"
    )
    done = subprocess.run(
        [PIPES, "test", str(config), "--event", json.dumps(event)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == code, done.stdout + done.stderr
    steps = [json.loads(line) for line in done.stdout.splitlines()]
    if last_stage == "error":
        assert steps[-1]["stage"] == "transform" and "error" in steps[-1]
    else:
        assert steps[-1] == last_stage
