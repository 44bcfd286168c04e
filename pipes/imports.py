"""Where code named in a pipe file is imported from: one rule for every ``module:name``.

A pipe file can name Python code in two places: ``type: package.module:Class``
(a connector class) and the ``python`` connector's ``function:``. Both are
imported by ``import_object`` under one rule, so that a ``handlers.py`` beside
the pipe file works whatever the current directory is:

1. the folder of the pipe file,
2. the current directory,
3. the installed packages (``sys.path``).

A module found in 1 or 2 is imported with that folder first on the import
path; the folder then stays on the path, last, so that what the module imports
later (inside a function) is found too. Python keeps one module per name, so a
module that is already loaded from somewhere else is an error naming both
places, never a silent use of the other file.

Importing runs the module's top-level code: a pipe file is code to be trusted
as such, and ``pipes validate`` imports what it names.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from importlib.machinery import PathFinder
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = ["PIPE_DIR", "ImportFailed", "import_module", "import_object", "pipe_dir_of"]

#: Key of the pydantic validation context that holds the pipe file's folder, so that
#: connector options that name code (the ``python`` connector's ``function:``) can
#: resolve it by the same rule: ``model_validate(raw, context={PIPE_DIR: folder})``.
PIPE_DIR = "pipe_dir"


class ImportFailed(ImportError):
    """The code cannot be had; ``str()`` is one line that says why."""


def pipe_dir_of(context: Mapping[str, Any] | None) -> Path | None:
    """The pipe file's folder from a validation context (None for a pipe not read from a file)."""
    if not context:
        return None
    folder = context.get(PIPE_DIR)
    return Path(folder) if folder is not None else None


def import_object(spec: str, pipe_dir: Path | None = None) -> object:
    """The object named ``package.module:name`` (``:Class.attr`` follows attributes)."""
    module_name, sep, attr_path = spec.partition(":")
    if not sep or not module_name or not attr_path:
        raise ImportFailed(f"{spec!r} must be written 'package.module:name'")
    obj: object = import_module(module_name, pipe_dir)
    for attr in attr_path.split("."):
        try:
            obj = getattr(obj, attr)
        except AttributeError:
            raise ImportFailed(f"module {module_name!r} has no attribute {attr!r}") from None
    return obj


def import_module(name: str, pipe_dir: Path | None = None) -> ModuleType:
    """Import ``name`` by the rule of this module; ``ImportFailed`` (one line) when it cannot be.

    Anything the module raises while it is imported (a syntax error, a failing
    top-level statement) is reported the same way: here it is a user's
    configuration problem, not a crash.
    """
    top = name.partition(".")[0]
    importlib.invalidate_caches()  # a file written since the last import must be seen
    try:
        for folder in _search_folders(pipe_dir):
            origin = _origin_in(top, folder)
            if origin is None:
                continue
            loaded = sys.modules.get(top)
            if loaded is not None and not _same_file(getattr(loaded, "__file__", None), origin):
                where = getattr(loaded, "__file__", None) or "a built-in module"
                raise ImportFailed(
                    f"module {top!r} is already loaded from {where}, so {origin} cannot be "
                    "imported under the same name (rename one of them)"
                )
            with _first_on_path(folder):
                return importlib.import_module(name)
        return importlib.import_module(name)
    except ImportFailed:
        raise
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ImportFailed(reason) from exc


def _search_folders(pipe_dir: Path | None) -> list[Path]:
    folders: list[Path] = []
    for folder in (pipe_dir, Path.cwd()):
        if folder is not None:
            resolved = folder.resolve()
            if resolved not in folders:
                folders.append(resolved)
    return folders


def _origin_in(top: str, folder: Path) -> str | None:
    """The file ``top`` would be imported from in ``folder`` (a module or a regular package)."""
    spec = PathFinder.find_spec(top, [str(folder)])
    # Namespace packages (any folder of that name) do not count: only real code does.
    return spec.origin if spec is not None and spec.origin is not None else None


def _same_file(a: str | None, b: str) -> bool:
    if a is None:
        return False
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


@contextmanager
def _first_on_path(folder: Path) -> Iterator[None]:
    entry = str(folder)
    sys.path.insert(0, entry)
    try:
        yield
    finally:
        sys.path.remove(entry)  # the first occurrence: the one inserted above
        if entry not in sys.path:
            sys.path.append(entry)
