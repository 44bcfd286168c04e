"""What the composer asks of the server: try a filter, render a transform, check and save YAML.

Everything here uses the modules a running pipe uses (``pipes.config``,
``pipes.stages``), so what the composer accepts is exactly what ``pipes
validate`` and the daemon accept, and what it shows for a sample event is what
the pipe would do with it.

Secrets never land in a pipe file: a value at a secret option (its schema says
``format: password`` or ``writeOnly``, see ``pipes.console.forms``) or a
password inside a URL must be a ``${VAR}`` reference, else the YAML does not
save. ``variables`` lists every ``${VAR}`` the YAML names and whether the
daemon's environment has it, so the page can say what must be set.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from pipes.config import FileResult, PipeDefinition, load_text
from pipes.console.forms import CREDENTIAL_HEADERS, secret_paths
from pipes.models import FilterConfig, TransformConfig
from pipes.registry import Registry, Role
from pipes.stages import FilterStage, StageError, TransformStage
from pipes.yamlload import load_located

__all__ = [
    "Checked",
    "Problem",
    "check_text",
    "render_transform",
    "try_filter",
    "write_atomically",
]

_LOCATED = re.compile(r"^(?P<file>.*?):(?P<line>\d+):(?P<column>\d+): (?P<rest>.*)$")
_PATH = re.compile(r"^[A-Za-z0-9_\-.\[\]]+$")
_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-[^}]*)?\}")
_URL_PASSWORD = re.compile(r"^[a-z][a-z0-9+.-]*://[^/@:\s]*:(?P<password>[^/@\s]+)@", re.I)
_CONNECTOR_KEYS: tuple[tuple[str, Role], ...] = (
    ("source", "source"),
    ("target", "target"),
    ("enrichment", "enricher"),
    ("dead_letter", "target"),
)


@dataclass(frozen=True)
class Problem:
    """One error in the YAML: where (line, column, dotted path) and what; ``text`` is the whole line."""

    line: int
    column: int
    path: str
    message: str
    text: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "line": self.line,
            "column": self.column,
            "path": self.path,
            "message": self.message,
            "text": self.text,
        }

    @classmethod
    def parse(cls, text: str) -> Problem:
        """A ``FILE:LINE:COL: path: message`` line of ``pipes.config`` as its parts."""
        located = _LOCATED.match(text)
        if located is None:
            return cls(1, 1, "", text, text)
        rest = located["rest"]
        path, sep, message = rest.partition(": ")
        if not sep or not _PATH.match(path):
            path, message = "", rest
        return cls(int(located["line"]), int(located["column"]), path, message, text)


@dataclass
class Checked:
    """The YAML checked: its pipes when valid, else its problems; the variables it names."""

    definitions: list[PipeDefinition] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    variables: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "pipes": [d.name for d in self.definitions],
            "errors": [p.as_dict() for p in self.problems],
            "variables": self.variables,
        }


class _Verbatim(Mapping[str, str]):
    """An environment in which every ``${VAR}`` stays written as it is (to read values as written)."""

    def __getitem__(self, key: str) -> str:
        return "${" + key + "}"

    def __contains__(self, key: object) -> bool:
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def check_text(
    text: str,
    file: str,
    *,
    registry: Registry | None = None,
    env: Mapping[str, str] | None = None,
    pipe_dir: Path | None = None,
    taken: Mapping[str, str] | None = None,
) -> Checked:
    """Validate ``text`` as the pipe file ``file`` would be, plus the rule that secrets are ``${VAR}``.

    ``taken`` maps the names of the pipes the daemon runs to their files: a
    pipe of ``text`` may not take a name another file holds.
    """
    registry = registry or Registry()
    env = os.environ if env is None else env
    result: FileResult = load_text(text, file, env=env, registry=registry, pipe_dir=pipe_dir)
    checked = Checked(
        definitions=list(result.pipes), problems=[Problem.parse(line) for line in result.errors]
    )
    written = load_located(text, _Verbatim())
    if written.value is None or not isinstance(written.value, dict):
        return checked
    items: list[tuple[tuple[str | int, ...], Any]] = (
        [(("pipes", i), item) for i, item in enumerate(written.value["pipes"])]
        if isinstance(written.value.get("pipes"), list)
        else [((), written.value)]
    )
    for definition, (prefix, _) in zip(checked.definitions, items, strict=False):
        other = (taken or {}).get(definition.name)
        if other is not None and Path(other).resolve() != Path(file).resolve():
            where = (*prefix, "name")
            line, column = written.position(where)
            dotted = _dotted(where)
            message = f"a pipe named {definition.name!r} exists already (in {other}); choose another name"
            checked.problems.append(
                Problem(line, column, dotted, message, f"{file}:{line}:{column}: {dotted}: {message}")
            )
    if checked.problems:
        checked.definitions = []
    plain: list[Problem] = []
    secret_fields: set[str] = set()
    for prefix, item in items:
        if not isinstance(item, dict):
            continue
        for key, role in _CONNECTOR_KEYS:
            spec = item.get(key)
            if not isinstance(spec, dict) or not isinstance(spec.get("type"), str):
                continue
            for path, why in _plain_secrets(spec, role, registry, pipe_dir):
                where = (*prefix, key, *path)
                dotted = _dotted(where)
                secret_fields.add(dotted)
                if why is None:
                    continue
                line, column = written.position(where)
                message = f"{why}: write ${{VAR}} here and set VAR in the daemon's environment"
                plain.append(
                    Problem(line, column, dotted, message, f"{file}:{line}:{column}: {dotted}: {message}")
                )
    if plain:
        # What pipes.config said about those values (if anything) is beside the point now.
        hidden = {p.path for p in plain}
        checked.problems = sorted(
            [p for p in checked.problems if p.path not in hidden] + plain, key=lambda p: (p.line, p.column)
        )
        checked.definitions = []
    checked.variables = _variables(written.value, env, secret_fields)
    return checked


def _plain_secrets(
    spec: dict[str, Any], role: Role, registry: Registry, pipe_dir: Path | None
) -> Iterator[tuple[tuple[str | int, ...], str | None]]:
    """(path inside the connector, why it is refused or None) for each secret value written.

    A secret is a value at a secret option (each item of a list of secrets), a
    credential header's value under ``headers`` (``Authorization: Bearer ...``),
    or a password inside a URL.
    """
    try:
        cls = registry.resolve(spec["type"], role, pipe_dir)
    except Exception:
        return  # an unknown type is pipes.config's error to report
    for path in secret_paths(cls.options_model):
        value: Any = spec
        for part in path:
            value = value.get(part) if isinstance(value, dict) else None
        items = list(enumerate(value)) if isinstance(value, list) else [(None, value)]
        for index, item in items:
            if item is None or item == "":
                continue
            where: tuple[str | int, ...] = path if index is None else (*path, index)
            plain = not (isinstance(item, str) and _REFERENCE.fullmatch(item.strip()))
            yield where, "a secret is written as a plain value" if plain else None
    for key, value in spec.items():
        if isinstance(value, str):
            found = _URL_PASSWORD.match(value)
            if found and not _REFERENCE.search(found["password"]):
                yield (key,), "a password is written in this URL"
    headers = spec.get("headers")
    if isinstance(headers, dict):
        for name, value in headers.items():
            if not (isinstance(name, str) and name.lower() in CREDENTIAL_HEADERS) or value in (None, ""):
                continue
            plain = not (isinstance(value, str) and _REFERENCE.search(value))
            why = f"the {name} header is a credential written as a plain value"
            yield ("headers", name), why if plain else None


def _variables(value: Any, env: Mapping[str, str], secret_fields: set[str]) -> list[dict[str, Any]]:
    """Every ``${VAR}`` written, with where, whether it holds a secret, and whether it is set."""
    found: dict[str, dict[str, Any]] = {}

    def walk(node: Any, path: tuple[str | int, ...]) -> None:
        if isinstance(node, dict):
            for key, child in node.items():
                walk(child, (*path, key))
        elif isinstance(node, list):
            for index, child in enumerate(node):
                walk(child, (*path, index))
        elif isinstance(node, str):
            for match in _REFERENCE.finditer(node):
                name = match.group(1)
                entry = found.setdefault(
                    name, {"name": name, "paths": [], "secret": False, "set": bool(env.get(name))}
                )
                dotted = _dotted(path)
                entry["paths"].append(dotted)
                entry["secret"] = entry["secret"] or dotted in secret_fields
                entry["has_default"] = entry.get("has_default", True) and ":-" in match.group(0)

    walk(value, ())
    return sorted(found.values(), key=lambda v: v["name"])


def _dotted(path: tuple[str | int, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def try_filter(filter_value: Any, record: Any) -> dict[str, Any]:
    """``{"match": bool}`` for ``record`` under the filter as written in YAML, or ``{"error", "path"}``."""
    if isinstance(filter_value, list):
        filter_value = {"patterns": filter_value}
    try:
        config = FilterConfig.model_validate(filter_value)
        stage = FilterStage(config)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return {"error": f"{where}: {first['msg']}" if where else first["msg"], "path": where}
    except StageError as exc:
        where = ".".join(str(p) for p in exc.path) + exc.suffix
        return {"error": f"{where}: {exc}", "path": where}
    if not isinstance(record, dict):
        return {"error": "the sample event must be a JSON object (the source record)", "path": ""}
    try:
        return {"match": bool(stage.matches(record))}
    except Exception as exc:  # a JMESPath condition that fails on this record
        return {"error": str(exc), "path": "jmespath"}


def render_transform(transform_value: Any, record: Any, variables: Mapping[str, Any]) -> dict[str, Any]:
    """``{"output": ..., "text": bool}`` for ``record`` under the transform as written, or ``{"error"}``."""
    try:
        stage = TransformStage(TransformConfig.model_validate(transform_value))
    except ValidationError as exc:
        first = exc.errors()[0]
        return {"error": str(first["msg"]).removeprefix("Value error, ")}
    except StageError as exc:
        return {"error": f"{'.'.join(str(p) for p in exc.path)}: {' '.join(str(exc).split())}"}
    if not isinstance(record, dict):
        return {"error": "the sample event must be a JSON object (the source record)"}
    try:
        output = stage.apply(record, variables)
    except Exception as exc:
        return {"error": " ".join(str(exc).split())}
    return {"output": output, "text": isinstance(output, str)}


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a reader (a reload) sees the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
