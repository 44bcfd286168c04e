"""The README's way to the ``pipes`` command: ``make shell`` puts ``.venv/bin`` on the PATH."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.e2e


def test_make_shell_finds_the_pipes_command() -> None:
    env = {**os.environ, "SHELL": "/bin/sh", "PATH": "/usr/bin:/bin"}
    # -o: take the installed .venv as it is (the test must not reinstall it).
    done = subprocess.run(
        ["make", "-s", "-o", ".venv/.installed", "shell"],
        cwd=ROOT,
        env=env,
        input="command -v pipes\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(ROOT / ".venv" / "bin" / "pipes")
    assert "make shell" in (ROOT / "README.md").read_text()
