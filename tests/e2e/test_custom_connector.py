"""The docs' custom connector example, end to end: by module path and through an entry point."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from connectors.generator import cart_event
from pipes.checkpoints import MemoryCheckpointStore
from pipes.config import load_text
from pipes.registry import ENTRY_POINT_GROUP, Registry
from pipes.runner import PipeRunner

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "sqlite_target"
PIPES = str(Path(sys.executable).parent / "pipes")

pytestmark = pytest.mark.e2e

EXPECTED = sum(1 for i in range(1000) if cart_event(i, 7)["detail-type"] == "OrderPlaced")


def rows(db: Path) -> list[tuple[str, str]]:
    with closing(sqlite3.connect(db)) as conn:
        return list(conn.execute("SELECT position, payload FROM events ORDER BY CAST(position AS INTEGER)"))


def test_by_module_path_through_the_cli(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "SQLITE_PATH": str(tmp_path / "orders.db"),
    }  # pipes_sqlite.py is found beside the pipe
    done = subprocess.run(
        [PIPES, "run", "--once", "--state-dir", str(tmp_path / "state"), str(EXAMPLE / "pipe.yaml")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    found = rows(tmp_path / "orders.db")
    assert len(found) == EXPECTED
    assert found[0][1].startswith('{"order":"ord-')


async def test_through_an_entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The same entry point the example's pyproject declares, as an installed package would expose it.
    monkeypatch.syspath_prepend(str(EXAMPLE))
    registry = Registry(
        [
            *Registry().eps(),
            EntryPoint(name="sqlite", value="pipes_sqlite:connector", group=ENTRY_POINT_GROUP),
        ]
    )
    text = (EXAMPLE / "pipe.yaml").read_text().replace("type: pipes_sqlite:SqliteTarget", "type: sqlite")
    result = load_text(text, "pipe.yaml", env={"SQLITE_PATH": str(tmp_path / "ep.db")}, registry=registry)
    assert result.errors == []
    runner = PipeRunner(result.pipes[0], store=MemoryCheckpointStore(), once=True)
    await runner.run()
    assert len(rows(tmp_path / "ep.db")) == EXPECTED
    assert "sqlite" in [row.name for row in registry.listing()]


def test_the_example_writes_its_database_into_a_folder_git_ignores(tmp_path: Path) -> None:
    # Run as the docs show it, from a checkout: nothing may be left among the tracked files.
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (checkout / ".gitignore").write_text((ROOT / ".gitignore").read_text())
    subprocess.run(["git", "init", "-q", str(checkout)], check=True)
    env = dict(os.environ)
    env.pop("SQLITE_PATH", None)
    done = subprocess.run(
        [PIPES, "run", "--once", str(EXAMPLE / "pipe.yaml")],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    untracked = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=checkout,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    assert [line for line in untracked if line and not line.endswith(".gitignore")] == []
    assert len(rows(checkout / "out" / "orders.db")) == EXPECTED


async def test_the_example_connector_passes_the_conformance_suite(tmp_path: Path) -> None:
    import importlib.util

    from pipes.conformance import check_target

    spec = importlib.util.spec_from_file_location("pipes_sqlite_example", EXAMPLE / "pipes_sqlite.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    await check_target(lambda: module.SqliteTarget(module.SqliteOptions(path=str(tmp_path / "c.db"))))
