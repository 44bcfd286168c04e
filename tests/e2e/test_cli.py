"""The installed ``pipes`` command, end to end, in subprocesses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from helpers import wait_until_sync

from connectors.generator import cart_event

ROOT = Path(__file__).resolve().parents[2]
PIPES = str(Path(sys.executable).parent / "pipes")

pytestmark = pytest.mark.e2e


def pipes(
    *args: str, cwd: Path | None = None, stdin: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PIPES, *args], cwd=cwd, input=stdin, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_demo_runs_once_and_a_second_run_adds_nothing(tmp_path: Path) -> None:
    done = pipes("run", "--once", str(ROOT / "configs" / "demo.yaml"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    expected = [
        e["detail"]["order_id"]
        for e in (cart_event(i, 42) for i in range(100_000))
        if e["detail-type"] == "OrderPlaced" and e["detail"]["total"] > 100
    ]
    lines = (tmp_path / "out" / "demo.jsonl").read_text().splitlines()
    assert [json.loads(line)["order"] for line in lines] == expected
    assert "demo-orders: stopped; received 100,000" in done.stderr
    again = pipes("run", "--once", str(ROOT / "configs" / "demo.yaml"), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert len((tmp_path / "out" / "demo.jsonl").read_text().splitlines()) == len(expected)
    assert "received 0" in again.stderr


def write_file_pipe(tmp_path: Path, batch: int = 200) -> Path:
    config = tmp_path / "copy.yaml"
    config.write_text(
        f"""
name: copy
source: {{type: file, path: {tmp_path / "in.jsonl"}}}
target: {{type: file, path: {tmp_path / "out.jsonl"}}}
batch: {{size: {batch}, window: 10ms}}
checkpoint_interval: 100ms
"""
    )
    return config


def count_lines(path: Path) -> int:
    try:
        with path.open("rb") as handle:
            return sum(1 for _ in handle)
    except FileNotFoundError:
        return 0


def test_kill_9_in_the_middle_loses_nothing_and_repeats_only_the_uncommitted_tail(tmp_path: Path) -> None:
    total = 150_000
    with (tmp_path / "in.jsonl").open("wb") as handle:
        handle.write(b"".join(orjson.dumps({"n": i}) + b"\n" for i in range(total)))
    config = write_file_pipe(tmp_path)
    state = tmp_path / "state"
    proc = subprocess.Popen(
        [PIPES, "run", "--state-dir", str(state), "--no-progress", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until_sync(lambda: count_lines(tmp_path / "out.jsonl") >= 20_000, timeout=60, what="some output")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    delivered_at_kill = count_lines(tmp_path / "out.jsonl")
    assert delivered_at_kill < total, "the pipe finished before the kill; make the input larger"
    checkpoint = json.loads((state / "checkpoints" / "copy.json").read_text())["positions"]
    offset = checkpoint[str(tmp_path / "in.jsonl")]
    with (tmp_path / "in.jsonl").open("rb") as handle:
        settled = handle.read(offset).count(b"\n")
    tail = delivered_at_kill - settled
    assert tail >= 0

    done = pipes("run", "--once", "--state-dir", str(state), str(config))
    assert done.returncode == 0, done.stderr
    seen = [json.loads(line)["n"] for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert set(seen) == set(range(total))  # nothing lost
    duplicates = len(seen) - total
    assert duplicates <= tail


def test_validate_exit_codes_and_located_errors(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("name: g\nsource: {type: generator, count: 1}\ntarget: {type: stdout}\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: b\nsource: {type: generator, cuont: 1}\ntarget: {type: stdout}\n")
    ok = pipes("validate", str(good))
    assert ok.returncode == 0 and "g: ok" in ok.stdout
    failed = pipes("validate", str(good), str(bad))
    assert failed.returncode == 1
    assert (
        failed.stderr.strip()
        == f"{bad}:2:27: source.cuont: unknown key (check the spelling; see the docs for the accepted keys)"
    )


def test_run_refuses_an_invalid_file_with_its_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: b\nsource: {type: generator}\ntarget: {type: stdout}\nbatch: {window: later}\n")
    done = pipes("run", "--once", str(bad))
    assert done.returncode == 1
    assert done.stderr.strip().startswith(f"{bad}:4:9: batch.window: invalid duration 'later'")
    assert "Traceback" not in done.stderr


def test_test_event_pattern_contract(tmp_path: Path) -> None:
    pattern = '{"detail-type": ["OrderPlaced"], "detail": {"total": [{"numeric": [">", 100]}]}}'
    event = '{"detail-type": "OrderPlaced", "detail": {"total": 150}}'
    match = pipes("test-event-pattern", "--event-pattern", pattern, "--event", event)
    assert (match.returncode, match.stdout.strip()) == (0, '{"Result":true}')
    (tmp_path / "event.json").write_text('{"detail-type": "OrderPlaced", "detail": {"total": 50}}')
    miss = pipes(
        "test-event-pattern",
        "--event-pattern",
        "-",
        "--event",
        f"file://{tmp_path / 'event.json'}",
        stdin=pattern,
    )
    assert (miss.returncode, miss.stdout.strip()) == (0, '{"Result":false}')
    invalid = pipes(
        "test-event-pattern", "--event-pattern", '{"a": [{"numeric": ["~", 1]}]}', "--event", event
    )
    assert invalid.returncode == 2
    assert len(invalid.stderr.strip().splitlines()) == 1
    assert invalid.stdout == ""


def test_render_template_contract() -> None:
    done = pipes(
        "render-template",
        "--template",
        '{"order": <$.detail.id>, "note": "total <$.detail.total>"}',
        "--event",
        '{"detail": {"id": "o-1", "total": 12.5}}',
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"order": "o-1", "note": "total 12.5"}
    bad = pipes("render-template", "--template", "<$.a..b>", "--event", "{}")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


def test_pipe_test_shows_each_stage(tmp_path: Path) -> None:
    config = tmp_path / "p.yaml"
    config.write_text(
        """
name: p
source: {type: generator}
filter: [{body: {kind: [order]}}]
transform: {jmespath: "{id: body.id}"}
target: {type: stdout}
"""
    )
    passed = pipes("test", str(config), "--event", '{"body": {"kind": "order", "id": 7}}')
    assert passed.returncode == 0, passed.stderr
    assert [json.loads(line) for line in passed.stdout.splitlines()] == [
        {"stage": "filter", "matched": True},
        {"stage": "transform", "payloads": [{"id": 7}]},
    ]
    stopped = pipes("test", str(config), "--event", '{"body": {"kind": "other"}}')
    assert [json.loads(line) for line in stopped.stdout.splitlines()] == [
        {"stage": "filter", "matched": False}
    ]
    bad_json = pipes("test", str(config), "--event", "{not json")
    assert bad_json.returncode == 2 and "--event is not valid JSON" in bad_json.stderr


def test_connectors_lists_every_builtin_with_roles() -> None:
    done = pipes("connectors")
    assert done.returncode == 0
    rows = {line.split()[0]: line for line in done.stdout.splitlines()}
    for name in ("generator", "file", "stdout", "memory", "python", "kafka", "redis_stream"):
        assert name in rows, done.stdout
    assert "source, target, enricher" in rows["memory"]
    assert "failed to load" not in done.stdout


def test_sigterm_drains_and_exits_zero(tmp_path: Path) -> None:
    config = tmp_path / "gen.yaml"
    config.write_text(
        f"""
name: gen
source: {{type: generator, rate: 2000}}
target: {{type: file, path: {tmp_path / "out.jsonl"}}}
batch: {{size: 50, window: 50ms}}
"""
    )
    state = tmp_path / "state"
    proc = subprocess.Popen(
        [PIPES, "run", "--state-dir", str(state), str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ},
    )
    wait_until_sync(lambda: count_lines(tmp_path / "out.jsonl") >= 200, timeout=30, what="output")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    delivered = count_lines(tmp_path / "out.jsonl")
    checkpoint = json.loads((state / "checkpoints" / "gen.json").read_text())["positions"]["generator"]
    assert checkpoint == delivered - 1  # everything pulled was delivered and committed


def test_pipe_tests_of_the_examples_pass_as_ci_runs_them() -> None:
    done = pipes("test", "configs/", cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert " 0 failed (" in done.stdout.splitlines()[-1] and "FAIL" not in done.stdout


def test_a_failing_pipe_test_shows_the_diff_and_exits_1(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(
        "name: p\nsource: {type: generator}\ntransform: {jmespath: '{id: body.id}'}\ntarget: {type: stdout}\n"
        "tests:\n  - name: the id is kept\n    event: {body: {id: 7}}\n    expect: {payload: {id: 8}}\n"
    )
    done = pipes("test", str(tmp_path / "p.yaml"))
    assert done.returncode == 1
    assert done.stdout.splitlines() == [
        f"FAIL {tmp_path / 'p.yaml'}: p: the id is kept",
        "    the payload differs:",
        "    --- expected",
        "    +++ got",
        "    @@ -1,3 +1,3 @@",
        "     {",
        '    -  "id": 8',
        '    +  "id": 7',
        "     }",
        "0 passed, 1 failed (1 case in 1 pipe)",
    ]
