"""``--log-format json``: every line ``pipes run`` writes to stderr is one JSON object, whoever wrote it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import wait_until_sync

PIPES = str(Path(sys.executable).parent / "pipes")

pytestmark = pytest.mark.e2e

HANDLERS = """\
import logging, warnings

def noisy(payloads):
    logging.getLogger("handlers").warning("a library warns about %d payloads", len(payloads))
    warnings.warn("something is deprecated", UserWarning, stacklevel=1)
"""

PIPES_FILE = """\
pipes:
  - name: noisy
    source: {type: generator, count: 3}
    target: {type: python, function: 'handlers:noisy'}
    batch: {size: 3, window: 0}
  - name: kafka-down                      # aiokafka logs its connection errors through logging
    source: {type: kafka, bootstrap_servers: '127.0.0.1:1', topics: [t], group_id: g}
    target: {type: stdout}
"""


def json_lines(text: str) -> list[dict[str, Any]]:
    records = [json.loads(line) for line in text.splitlines()]  # raises on a line that is not JSON
    assert all(isinstance(record, dict) for record in records)
    return records


def test_library_records_signals_the_admin_address_and_the_summary_are_json(tmp_path: Path) -> None:
    (tmp_path / "handlers.py").write_text(HANDLERS)
    (tmp_path / "p.yaml").write_text(PIPES_FILE)
    log = tmp_path / "stderr.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [PIPES, "run", "--log-format", "json", "--admin", "127.0.0.1:0", "p.yaml"],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        wait_until_sync(
            lambda: (
                '"logger": "aiokafka"' in log.read_text() and '"logger": "py.warnings"' in log.read_text()
            ),
            timeout=30,
            what="library records",
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert proc.returncode == 0, log.read_text()
    records = json_lines(log.read_text())
    events = {record["event"] for record in records}
    assert {"admin_started", "signal_received", "pipe_started", "pipe_stopped"} <= events
    [admin] = [r for r in records if r["event"] == "admin_started"]
    assert admin["url"].startswith("http://127.0.0.1:")
    [signalled] = [r for r in records if r["event"] == "signal_received"]
    assert signalled["signal"] == "SIGTERM" and signalled["action"] == "drain"
    summaries = {r["pipe"]: r for r in records if r["event"] == "pipe_summary"}
    assert summaries["noisy"]["received"] == 3 and summaries["noisy"]["delivered"] == 3
    assert summaries["kafka-down"]["state"] == "STOPPED"
    by_logger = {r["logger"]: r for r in records if "logger" in r}
    assert by_logger["handlers"]["event"] == "a library warns about 3 payloads"
    assert by_logger["handlers"]["level"] == "warning"
    assert "something is deprecated" in by_logger["py.warnings"]["event"]
    assert by_logger["aiokafka"]["level"] == "error"
    assert all("timestamp" in r and "level" in r for r in records)


def test_usage_and_config_errors_are_json_too(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(
        "name: b\nsource: {type: generator}\ntarget: {type: stdout}\nbatch: {window: x}\n"
    )
    usage = subprocess.run(
        [PIPES, "run", "--log-format", "json", "--drain-timeout", "soon", "bad.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert usage.returncode == 2
    [record] = json_lines(usage.stderr)
    assert record["event"] == "usage_error" and record["error"].startswith("pipes run: --drain-timeout: ")
    invalid = subprocess.run(
        [PIPES, "run", "--once", "--log-format", "json", "bad.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert invalid.returncode == 1
    [record] = json_lines(invalid.stderr)
    assert record["event"] == "config_invalid" and record["error"].startswith(
        "bad.yaml:4:9: batch.window: invalid duration"
    )
