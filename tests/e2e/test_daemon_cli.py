"""``pipes run`` as a long-lived daemon, driven from outside: signals, the admin API, its clients."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from helpers import wait_until_sync

from connectors.generator import cart_event

ROOT = Path(__file__).resolve().parents[2]
PIPES = str(ROOT / ".venv" / "bin" / "pipes")
TOKEN = "e2e-token"

SLOW_HANDLER = """
import json, time

def slow(batch, options):
    time.sleep(options["delay_s"])
    with open(options["path"], "a") as out:
        out.write("".join(json.dumps(p) + "\\n" for p in batch))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def lines(path: Path) -> list[Any]:
    try:
        return [json.loads(line) for line in path.read_text().splitlines()]
    except FileNotFoundError:
        return []


def count_lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def get(port: int, path: str, token: str | None = TOKEN) -> tuple[int, Any]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            body = answer.read()
            status = answer.status
    except urllib.error.HTTPError as exc:
        body, status = exc.read(), exc.code
    except (urllib.error.URLError, ConnectionError):
        return 0, None
    return status, json.loads(body) if body.startswith((b"{", b"[")) else body.decode()


def start(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with (cwd / "stdout.log").open("wb") as out, (cwd / "stderr.log").open("wb") as err:
        return subprocess.Popen(
            [PIPES, "run", "--no-progress", *args],
            cwd=cwd,
            stdout=out,
            stderr=err,
            env={**os.environ, **(env or {})},
        )


def finish(proc: subprocess.Popen[bytes], cwd: Path) -> str:
    try:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return (cwd / "stderr.log").read_text()


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PIPES, *args], capture_output=True, text=True, timeout=30, env={**os.environ, **(env or {})}
    )


def test_sigterm_with_a_slow_target_delivers_every_pulled_event_then_resumes(tmp_path: Path) -> None:
    (tmp_path / "handlers.py").write_text(SLOW_HANDLER)
    out = tmp_path / "out.jsonl"
    total = 3000
    config = tmp_path / "slow.yaml"
    config.write_text(
        f"""
name: slow
source: {{type: generator, count: {total}}}
target:
  type: python
  function: handlers:slow
  options: {{delay_s: 0.02, path: {out}}}
batch: {{size: 20, window: 10ms}}
"""
    )
    proc = start(["--state-dir", "state", str(config)], tmp_path)
    try:
        wait_until_sync(lambda: count_lines(out) >= 200, timeout=30, what="some output")
    finally:
        err = finish(proc, tmp_path)
    assert proc.returncode == 0, err
    assert "SIGTERM, draining" in err
    delivered = lines(out)
    assert len(delivered) < total, "the run finished before SIGTERM; make it slower"
    checkpoint = json.loads((tmp_path / "state" / "checkpoints" / "slow.json").read_text())["positions"]
    # Everything pulled was delivered and committed: the output is exactly 0..checkpoint.
    assert checkpoint["generator"] == len(delivered) - 1
    assert delivered == [cart_event(i) for i in range(len(delivered))]

    again = subprocess.run(
        [PIPES, "run", "--once", "--no-progress", "--state-dir", "state", str(config)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 0, again.stderr
    assert lines(out) == [cart_event(i) for i in range(total)]  # nothing missing, nothing twice


def test_admin_api_clients_and_sighup_reload(tmp_path: Path) -> None:
    folder = tmp_path / "pipes"
    folder.mkdir()
    (folder / "steady.yaml").write_text(
        f"name: steady\nsource: {{type: generator, count: null, rate: 500}}\n"
        f"target: {{type: file, path: {tmp_path / 'steady.jsonl'}}}\nbatch: {{size: 50, window: 20ms}}\n"
    )
    port = free_port()
    address = f"127.0.0.1:{port}"
    env = {"PIPES_ADMIN_TOKEN": TOKEN}
    proc = start(["--admin", address, "--state-dir", "state", str(folder)], tmp_path, env)
    try:
        wait_until_sync(lambda: get(port, "/readyz")[0] == 200, timeout=30, what="ready")
        assert get(port, "/healthz", token=None)[0] == 200
        status, body = get(port, "/pipes", token=None)
        assert status == 401 and "token" in body["error"]

        shown = cli("status", "--admin", address, env=env)
        assert shown.returncode == 0, shown.stderr
        header, row = shown.stdout.splitlines()[:2]
        assert header.split()[:3] == ["NAME", "STATE", "DESIRED"]
        assert row.split()[:3] == ["steady", "RUNNING", "RUNNING"]

        # A new file on SIGHUP: its pipe starts, the running one goes on.
        (folder / "added.yaml").write_text(
            f"name: added\nsource: {{type: generator, count: 50}}\n"
            f"target: {{type: file, path: {tmp_path / 'added.jsonl'}}}\n"
        )
        proc.send_signal(signal.SIGHUP)
        wait_until_sync(lambda: count_lines(tmp_path / "added.jsonl") == 50, timeout=30, what="added")
        # An invalid file is reported with its location and changes nothing.
        (folder / "broken.yaml").write_text("name: broken\nsource: {type: generator, cuont: 1}\n")
        before = get(port, "/pipes/steady")[1]["counters"]["delivered"]
        proc.send_signal(signal.SIGHUP)
        wait_until_sync(
            lambda: "broken.yaml:2:" in (tmp_path / "stderr.log").read_text(), timeout=30, what="error"
        )
        wait_until_sync(
            lambda: get(port, "/pipes/steady")[1]["counters"]["delivered"] > before + 100,
            timeout=30,
            what="steady still delivering",
        )
        names = {p["name"]: p for p in get(port, "/pipes")[1]["pipes"]}
        assert set(names) == {"steady", "added"}

        stopped = cli("stop", "steady", "--admin", address, env=env)
        assert stopped.returncode == 0, stopped.stderr
        assert stopped.stdout.startswith("steady: desired STOPPED")
        wait_until_sync(lambda: get(port, "/pipes/steady")[1]["state"] == "STOPPED", what="stopped")
        detail = get(port, "/pipes/steady")[1]
        assert detail["checkpoint"]["generator"] == count_lines(tmp_path / "steady.jsonl") - 1
        status, body = get(port, "/readyz")
        assert status == 200  # stopped on purpose is not "not ready"
        metrics = get(port, "/metrics")[1]
        assert 'pipes_pipe_state{pipe="steady",state="STOPPED"} 1.0' in metrics
        assert 'pipes_events_delivered_total{pipe="added"} 50.0' in metrics
        assert cli("start", "steady", "--admin", address, env=env).returncode == 0
        wait_until_sync(lambda: get(port, "/pipes/steady")[1]["state"] == "RUNNING", what="running")
    finally:
        err = finish(proc, tmp_path)
    assert proc.returncode == 0, err
    steady = lines(tmp_path / "steady.jsonl")
    assert steady == [cart_event(i) for i in range(len(steady))]  # no gap, no duplicate over stop/start


def test_watch_starts_a_new_file_without_a_signal(tmp_path: Path) -> None:
    folder = tmp_path / "pipes"
    folder.mkdir()
    (folder / "first.yaml").write_text(
        f"name: first\nsource: {{type: generator, count: 10}}\n"
        f"target: {{type: file, path: {tmp_path / 'first.jsonl'}}}\n"
    )
    proc = start(["--watch", "--admin", "off", "--state-dir", "state", str(folder)], tmp_path)
    try:
        wait_until_sync(lambda: count_lines(tmp_path / "first.jsonl") == 10, timeout=30, what="first")
        (folder / "second.yaml").write_text(
            f"name: second\nsource: {{type: generator, count: 20}}\n"
            f"target: {{type: file, path: {tmp_path / 'second.jsonl'}}}\n"
        )
        wait_until_sync(lambda: count_lines(tmp_path / "second.jsonl") == 20, timeout=30, what="second")
    finally:
        err = finish(proc, tmp_path)
    assert proc.returncode == 0, err
    assert count_lines(tmp_path / "first.jsonl") == 10


def test_clients_without_a_daemon_say_so_in_one_line() -> None:
    port = free_port()
    for args in (["status"], ["stop", "x"]):
        done = cli(*args, "--admin", f"127.0.0.1:{port}")
        assert done.returncode == 1
        verb = args[0]
        assert done.stderr == (
            f"pipes {verb}: no daemon at 127.0.0.1:{port} (is `pipes run` running with --admin?)\n"
        )


def test_explicit_admin_address_in_use_is_an_error(tmp_path: Path) -> None:
    config = tmp_path / "p.yaml"
    config.write_text("name: p\nsource: {type: generator, count: 1}\ntarget: {type: stdout}\n")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [PIPES, "run", "--admin", f"127.0.0.1:{port}", "--state-dir", str(tmp_path / "s"), str(config)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert done.returncode == 1
    assert f"cannot serve the admin API on 127.0.0.1:{port}" in done.stderr


def test_second_signal_exits_at_once_and_leaves_a_usable_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "handlers.py").write_text(SLOW_HANDLER)
    out = tmp_path / "out.jsonl"
    total = 600
    config = tmp_path / "slow.yaml"

    def write_config(delay_s: float) -> None:
        config.write_text(
            f"name: slow\nsource: {{type: generator, count: {total}}}\n"
            f"target: {{type: python, function: 'handlers:slow', options: {{delay_s: {delay_s}, path: {out}}}}}\n"
            "batch: {size: 20, window: 10ms}\ncheckpoint_interval: 50ms\n"
        )

    write_config(0.3)
    proc = start(["--state-dir", "state", str(config)], tmp_path)
    try:
        wait_until_sync(lambda: count_lines(out) >= 40, timeout=30, what="some output")
        proc.send_signal(signal.SIGTERM)
        wait_until_sync(lambda: "draining" in (tmp_path / "stderr.log").read_text(), what="draining")
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + signal.SIGTERM
    assert "again, exiting at once" in (tmp_path / "stderr.log").read_text()
    checkpoint = json.loads((tmp_path / "state" / "checkpoints" / "slow.json").read_text())
    committed = checkpoint["positions"]["generator"]
    before = lines(out)
    assert committed < len(before) <= total  # committed only what was delivered
    assert before == [cart_event(i) for i in range(len(before))]

    write_config(0)
    again = subprocess.run(
        [PIPES, "run", "--once", "--no-progress", "--state-dir", "state", str(config)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 0, again.stderr
    after = lines(out)
    # Nothing lost; only what was delivered after the last commit comes twice.
    assert after[len(before) :] == [cart_event(i) for i in range(committed + 1, total)]
