"""One rule for code named in a pipe file: the file's folder, the working directory, the installed packages."""

from __future__ import annotations

import re
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipes.config import load_file
from pipes.imports import ImportFailed, import_object


@pytest.fixture
def module_name(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh module name, forgotten (with the folders put on sys.path) after the test."""
    name = f"pipes_test_mod_{uuid.uuid4().hex[:8]}"
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield name
    for loaded in [m for m in sys.modules if m == name or m.startswith(f"{name}.")]:
        del sys.modules[loaded]


def write_module(folder: Path, name: str, value: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.py").write_text(f"VALUE = {value!r}\ndef handle(batch):\n    return None\n")


def test_the_pipe_files_folder_wins_over_the_working_directory(
    tmp_path: Path, module_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_module(tmp_path / "pipes", module_name, "beside")
    write_module(tmp_path / "cwd", module_name, "cwd")
    monkeypatch.chdir(tmp_path / "cwd")
    assert import_object(f"{module_name}:VALUE", tmp_path / "pipes") == "beside"


def test_the_working_directory_is_searched_next(
    tmp_path: Path, module_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_module(tmp_path / "cwd", module_name, "cwd")
    (tmp_path / "pipes").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    assert import_object(f"{module_name}:VALUE", tmp_path / "pipes") == "cwd"


def test_installed_packages_come_last() -> None:
    assert import_object("json:dumps", Path("/nonexistent")) is __import__("json").dumps


def test_the_folder_stays_importable_for_later_imports(
    tmp_path: Path, module_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_module(tmp_path / "pipes", module_name, "beside")
    write_module(tmp_path / "pipes", f"{module_name}_helper", "helper")
    monkeypatch.chdir(tmp_path)
    import_object(f"{module_name}:VALUE", tmp_path / "pipes")
    assert str(tmp_path / "pipes") == sys.path[-1]
    try:
        assert __import__(f"{module_name}_helper").VALUE == "helper"
    finally:
        sys.modules.pop(f"{module_name}_helper", None)


def test_one_name_from_two_folders_is_an_error_naming_both(
    tmp_path: Path, module_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for team in ("a", "b"):
        write_module(tmp_path / team, module_name, team)
        (tmp_path / team / "pipe.yaml").write_text(
            f"name: {team}\nsource: {{type: generator}}\n"
            f"target: {{type: python, function: '{module_name}:handle'}}\n"
        )
    assert load_file(tmp_path / "a" / "pipe.yaml").errors == []
    [error] = load_file(tmp_path / "b" / "pipe.yaml").errors
    assert error.startswith(f"{tmp_path / 'b' / 'pipe.yaml'}:3:24: target.function: python: cannot import ")
    assert f"module {module_name!r} is already loaded from {tmp_path / 'a' / module_name}.py" in error
    assert f"{tmp_path / 'b' / module_name}.py cannot be imported under the same name" in error


def test_failures_are_one_line(tmp_path: Path, module_name: str) -> None:
    (tmp_path / f"{module_name}.py").write_text("raise RuntimeError('no database\\nsecond line')\n")
    with pytest.raises(ImportFailed, match=r"^no database$"):
        import_object(f"{module_name}:x", tmp_path)
    with pytest.raises(ImportFailed, match=re.escape("must be written 'package.module:name'")):
        import_object("just_a_module", tmp_path)
    with pytest.raises(ImportFailed, match="has no attribute 'nope'"):
        import_object("json:nope", tmp_path)
