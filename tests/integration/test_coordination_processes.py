"""Two daemons with ``--coordination``: a file pipe runs on exactly one, and moves when that one is killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from helpers import wait_until_sync
from redis_server import free_port

PIPES = str(Path(sys.executable).parent / "pipes")

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

LEASE_S = 2.0


def daemon(config: Path, redis_url: str, state_dir: Path) -> tuple[subprocess.Popen[str], int]:
    port = free_port()
    with (state_dir.parent / f"{state_dir.name}.log").open("w") as log:  # the child keeps its own copy
        process = subprocess.Popen(
            [
                PIPES,
                "run",
                str(config),
                "--no-progress",
                "--admin",
                f"127.0.0.1:{port}",
                "--coordination",
                redis_url,
                "--state",
                redis_url,
                "--lease-time",
                f"{LEASE_S}s",
                "--state-dir",
                str(state_dir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=log,
            text=True,
        )
    return process, port


def state(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/pipes", timeout=2) as response:
            pipes: list[dict[str, Any]] = json.loads(response.read())["pipes"]
    except OSError:
        return None
    return pipes[0]["state"] if pipes else None


def test_a_file_pipe_runs_on_one_daemon_and_the_other_takes_over_after_a_kill(
    tmp_path: Path, redis_url: str, unique_key: Any
) -> None:
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text("".join(f'{{"n": {n}}}\n' for n in range(500)))
    config = tmp_path / "copy.yaml"
    config.write_text(
        f"name: {unique_key('copy')}\nsource: {{type: file, path: {source}}}\n"
        f"target: {{type: file, path: {out}}}\ncheckpoint_interval: 100ms\n"
    )
    a, port_a = daemon(config, redis_url, tmp_path / "a")
    b, port_b = daemon(config, redis_url, tmp_path / "b")
    try:
        wait_until_sync(lambda: {state(port_a), state(port_b)} == {"RUNNING", "STANDBY"}, 30, "one runs")
        for _ in range(10):  # and it stays that way
            assert {state(port_a), state(port_b)} == {"RUNNING", "STANDBY"}
            time.sleep(LEASE_S / 5)
        wait_until_sync(lambda: out.exists() and len(out.read_text().splitlines()) >= 500, 30, "first 500")
        running, other_port = (a, port_b) if state(port_a) == "RUNNING" else (b, port_a)
        other = b if running is a else a
        with source.open("a") as handle:
            handle.write("".join(f'{{"n": {n}}}\n' for n in range(500, 1000)))
        os.kill(running.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        running.wait(timeout=10)
        assert running.stderr is None
        wait_until_sync(lambda: state(other_port) == "RUNNING", 30, "the other takes over")
        assert time.monotonic() - killed_at < LEASE_S + LEASE_S / 3 + 2  # within the lease time (+ a tick)
        wait_until_sync(lambda: len(out.read_text().splitlines()) >= 1000, 30, "the rest delivered")
        seen = [json.loads(line)["n"] for line in out.read_text().splitlines()]
        assert set(seen) == set(range(1000))
        assert len(seen) - 1000 < 500  # resumed from the shared checkpoint, not from the start
    finally:
        for process in (a, b):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=30)
    assert other.returncode == 0
