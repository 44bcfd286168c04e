"""Code a pipe file names is found beside the file, whatever the working directory (docs/pipe-format.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

PIPES = str(Path(sys.executable).parent / "pipes")

pytestmark = pytest.mark.e2e

PIPE = """\
name: beside
source: {type: generator, count: 5}
enrichment:
  type: python
  function: handlers:tag          # handlers.py beside this file
target:
  type: sinks:ListTarget          # sinks.py beside this file
  path: OUT
"""

HANDLERS = """\
def tag(records):
    return [{"tag": "WHO-" + str(r["index"])} for r in records]
"""

SINKS = """\
import json
from pydantic import Field
from pipes.connector import ConnectorOptions, Target

class Options(ConnectorOptions):
    path: str = Field(description="where the payloads go")

class ListTarget(Target):
    options_model = Options

    async def write(self, events):
        with open(self.options.path, "a") as out:
            out.writelines(json.dumps(e.payload) + "\\n" for e in events)
        return [None] * len(events)
"""


def test_function_and_type_come_from_the_pipe_files_folder_first(tmp_path: Path) -> None:
    folder = tmp_path / "pipes"
    folder.mkdir()
    out = tmp_path / "out.jsonl"
    (folder / "pipe.yaml").write_text(PIPE.replace("OUT", str(out)))
    (folder / "handlers.py").write_text(HANDLERS.replace("WHO", "beside"))
    (folder / "sinks.py").write_text(SINKS)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # A module of the same name in the working directory loses to the one beside the pipe.
    (elsewhere / "handlers.py").write_text(HANDLERS.replace("WHO", "cwd"))

    checked = subprocess.run(
        [PIPES, "validate", str(folder / "pipe.yaml")],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr
    done = subprocess.run(
        [PIPES, "run", "--once", "--state-dir", str(tmp_path / "state"), str(folder / "pipe.yaml")],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert [json.loads(line) for line in out.read_text().splitlines()] == [
        {"tag": f"beside-{i}"} for i in range(5)
    ]


def test_the_working_directory_is_searched_after_the_pipe_files_folder(tmp_path: Path) -> None:
    folder = tmp_path / "pipes"
    folder.mkdir()
    out = tmp_path / "out.jsonl"
    (folder / "pipe.yaml").write_text(PIPE.replace("OUT", str(out)))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "handlers.py").write_text(HANDLERS.replace("WHO", "cwd"))
    (elsewhere / "sinks.py").write_text(SINKS)
    done = subprocess.run(
        [PIPES, "run", "--once", "--state-dir", str(tmp_path / "state"), str(folder / "pipe.yaml")],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert [json.loads(line) for line in out.read_text().splitlines()] == [
        {"tag": f"cwd-{i}"} for i in range(5)
    ]
