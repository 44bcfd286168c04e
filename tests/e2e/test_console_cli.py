"""``pipes run --ui-write``: the console may write pipe files only into a folder the daemon reads."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PIPES = str(ROOT / ".venv" / "bin" / "pipes")

pytestmark = pytest.mark.e2e


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PIPES, "run", "--no-progress", *args], capture_output=True, text=True, timeout=30)


def test_ui_write_needs_a_folder_among_the_paths_and_the_admin_api(tmp_path: Path) -> None:
    pipe = tmp_path / "p.yaml"
    pipe.write_text("name: p\nsource: {type: generator}\ntarget: {type: stdout}\n")
    alone = run("--ui-write", "--admin", "127.0.0.1:0", str(pipe))
    assert alone.returncode == 2
    assert alone.stderr.strip() == (
        "pipes run: --ui-write: no folder among the PATHs (the console writes new pipe files into one)"
    )
    off = run("--ui-write", "--admin", "off", str(tmp_path))
    assert off.returncode == 2
    assert "--ui-write: the console is served by the admin API, which is off (give --admin)" in off.stderr
