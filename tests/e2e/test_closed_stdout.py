"""``pipes run ... | head``: when the reader of stdout goes away, the run ends at once, quietly, as a Unix tool does."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

PIPES = str(Path(sys.executable).parent / "pipes")

pytestmark = pytest.mark.e2e


def test_a_closed_stdout_ends_the_run_with_the_sigpipe_status_and_no_noise(tmp_path: Path) -> None:
    (tmp_path / "big.yaml").write_text(
        "name: big\nsource: {type: generator, count: 200000}\ntarget: {type: stdout}\n"
    )
    proc = subprocess.Popen(
        [PIPES, "run", "--once", "big.yaml"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stderr is not None
    head = proc.stdout.read(300)  # what `head -c 300` does, then it exits
    proc.stdout.close()
    with proc.stderr:
        err = proc.stderr.read().decode()
    code = proc.wait(timeout=60)
    assert len(head) == 300
    assert code == 141, err  # 128 + SIGPIPE, what a shell shows for `yes | head`
    assert "Traceback" not in err and "Exception ignored" not in err
    assert "event_stuck" not in err
    assert "[error" not in err and "[warning" not in err, err
    assert "retried=0" in err  # the write was not tried again
    assert "big: stopped; received" in err
