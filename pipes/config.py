"""Pipe files to validated definitions, with every error as one located line.

``load_file`` reports *all* the errors of a file at once, each as
``FILE:LINE:COL: path.to.key: message``: schema errors from the pipe model,
connector options checked against the connector's own model, and filter /
transform expressions compiled on the spot so that a bad pattern is a config
error, never a runtime surprise.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from pipes.connector import ConnectorOptions, Enricher, Source, Target
from pipes.errors import ConfigError
from pipes.imports import PIPE_DIR
from pipes.models import PipeConfig
from pipes.registry import Registry, Role, RoleClass, UnknownConnector
from pipes.stages import FilterStage, StageError, TransformStage
from pipes.yamlload import Located, load_located

__all__ = [
    "BoundConnector",
    "FileResult",
    "PipeDefinition",
    "find_files",
    "load_file",
    "load_paths",
]

type KeyPath = tuple[str | int, ...]


@dataclass(frozen=True)
class BoundConnector:
    """A connector use resolved to its class and validated options."""

    type: str
    role: Role
    cls: RoleClass
    options: ConnectorOptions
    raw: Mapping[str, Any] = field(default_factory=dict)

    def _build(self) -> object:
        factory: Any = self.cls
        return factory(self.options)

    def build_source(self) -> Source:
        built = self._build()
        assert isinstance(built, Source)
        return built

    def build_target(self) -> Target:
        built = self._build()
        assert isinstance(built, Target)
        return built

    def build_enricher(self) -> Enricher:
        built = self._build()
        assert isinstance(built, Enricher)
        return built


@dataclass
class PipeDefinition:
    """Everything needed to run one pipe, checked and compiled."""

    config: PipeConfig
    source: BoundConnector
    target: BoundConnector
    enrichment: BoundConnector | None
    enrichment_into: str | None
    dead_letter: BoundConnector | None
    filter: FilterStage | None
    transform: TransformStage | None
    file: str = "<memory>"
    #: Canonical form of the definition; two loads compare equal iff nothing changed.
    fingerprint: str = ""

    @property
    def name(self) -> str:
        return self.config.name

    def template_variables(self) -> dict[str, Any]:
        """The reserved ``<aws.pipes.*>`` values of this pipe that do not change per event."""
        from pipes.templates import reserved_variables

        enrichment = self.enrichment.type if self.enrichment else None
        return dict(reserved_variables(self.name, self.source.type, self.target.type, enrichment))


@dataclass
class FileResult:
    path: str
    pipes: list[PipeDefinition]
    errors: list[str]
    #: The file is a map file (``pipes map``), not a pipe file.
    is_map: bool = False


def find_files(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """YAML files named directly, or found (recursively, sorted) in named folders."""
    found: list[Path] = []
    for entry in paths:
        path = Path(entry)
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()))
        else:
            found.append(path)
    return found


def load_paths(
    paths: Iterable[str | os.PathLike[str]],
    env: Mapping[str, str] | None = None,
    registry: Registry | None = None,
) -> list[FileResult]:
    registry = registry or Registry()
    named = {str(Path(p)) for p in paths if not Path(p).is_dir()}
    results = [load_file(p, env=env, registry=registry) for p in find_files(paths)]
    # A map file found in a folder of pipes is another command's business; named, it is an error.
    return [r for r in results if not r.is_map or str(Path(r.path)) in named]


def load_file(
    path: str | os.PathLike[str],
    env: Mapping[str, str] | None = None,
    registry: Registry | None = None,
) -> FileResult:
    """Load one file; never raises for a user's mistake (errors are in the result).

    Code the file names (``type: module:Class``, ``function:``) is looked up in
    the file's folder first (see ``pipes.imports``).
    """
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return FileResult(name, [], [f"{name}:1:1: cannot read file: {exc}"])
    return load_text(text, name, env=env, registry=registry, pipe_dir=Path(path).resolve().parent)


def load_text(
    text: str,
    name: str = "<memory>",
    env: Mapping[str, str] | None = None,
    registry: Registry | None = None,
    pipe_dir: Path | None = None,
) -> FileResult:
    """Load pipe text; ``pipe_dir`` is the folder searched first for code it names."""
    located = load_located(text, os.environ if env is None else env)
    errors = _Errors(name, located)
    for err in located.errors:
        errors.add_at(err.line, err.column, err.path, err.message)
    if located.errors and located.value is None:
        return FileResult(name, [], errors.lines)
    return _load_value(located.value, name, located, errors, registry or Registry(), pipe_dir)


def load_definition(definition: Mapping[str, Any], registry: Registry | None = None) -> PipeDefinition:
    """One pipe from a dict (embedding, tests); raises ``ConfigError`` listing every problem."""
    located = Located(dict(definition))
    errors = _Errors("<definition>", located)
    result = _load_value(located.value, "<definition>", located, errors, registry or Registry(), None)
    if result.errors or not result.pipes:
        raise ConfigError("\n".join(result.errors) or "no pipe in definition")
    return result.pipes[0]


class _Errors:
    def __init__(self, file: str, located: Located) -> None:
        self.file = file
        self.located = located
        self._found: list[tuple[int, int, str]] = []
        #: Where reading already failed (a missing ``${VAR}``, a bad scalar): the value
        #: there is a stand-in, so what validation says about it would only hide the cause.
        self._unread = [err.path for err in located.errors if err.path]
        self._hidden = 0

    def add(self, path: KeyPath, message: str, suffix: str = "") -> None:
        if any(path[: len(unread)] == unread for unread in self._unread):
            self._hidden += 1  # still an error: the pipe must not load
            return
        line, col = self.located.position(path)
        self.add_at(line, col, path, message, suffix)

    def add_at(self, line: int, col: int, path: KeyPath, message: str, suffix: str = "") -> None:
        dotted = _dotted(path) + suffix
        where = f"{dotted}: " if dotted else ""
        self._found.append((line, col, f"{self.file}:{line}:{col}: {where}{_one_line(message)}"))

    @property
    def count(self) -> int:
        return len(self._found) + self._hidden

    @property
    def lines(self) -> list[str]:
        """In file order, so a reader can fix them top to bottom."""
        return [text for _, _, text in sorted(self._found, key=lambda f: (f[0], f[1]))]


def _dotted(path: KeyPath) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _one_line(message: str) -> str:
    return " ".join(message.split())


def _load_value(
    value: Any, name: str, located: Located, errors: _Errors, registry: Registry, pipe_dir: Path | None
) -> FileResult:
    if value is None:
        errors.add((), "the file is empty: write one pipe, or `pipes:` with a list of pipes")
        return FileResult(name, [], errors.lines)
    if not isinstance(value, dict):
        errors.add((), "a pipe file holds a mapping (one pipe) or `pipes:` with a list")
        return FileResult(name, [], errors.lines)
    if "items" in value and "source" not in value and "pipes" not in value:
        line = f"{name}:1:1: this is a map file (it has `items:`); run it with `pipes map {name}`"
        return FileResult(name, [], [line], is_map=True)
    items: list[tuple[KeyPath, Any]]
    if "pipes" in value:
        extra = [k for k in value if k != "pipes"]
        for key in extra:
            errors.add((key,), "unknown key beside `pipes:` (each pipe's keys go inside the list)")
        if not isinstance(value["pipes"], list):
            errors.add(("pipes",), "`pipes:` must be a list of pipes")
            return FileResult(name, [], errors.lines)
        items = [(("pipes", i), item) for i, item in enumerate(value["pipes"])]
    else:
        items = [((), value)]
    pipes: list[PipeDefinition] = []
    seen: dict[str, KeyPath] = {}
    for prefix, item in items:
        definition = _load_pipe(item, prefix, errors, registry, pipe_dir)
        if definition is None:
            continue
        if definition.name in seen:
            errors.add((*prefix, "name"), f"pipe name {definition.name!r} is used twice in this file")
            continue
        seen[definition.name] = prefix
        definition.file = name
        pipes.append(definition)
    if errors.lines:
        return FileResult(name, [], errors.lines)
    return FileResult(name, pipes, [])


def _load_pipe(
    item: Any, prefix: KeyPath, errors: _Errors, registry: Registry, pipe_dir: Path | None
) -> PipeDefinition | None:
    if not isinstance(item, dict):
        errors.add(prefix, "a pipe must be a mapping with at least name, source and target")
        return None
    before = errors.count
    config: PipeConfig | None = None
    try:
        config = PipeConfig.model_validate(item)
    except ValidationError as exc:
        for err in exc.errors():
            path = _clean_loc(err["loc"], item)
            errors.add((*prefix, *path), _message(err, _raw_at(item, path)))
    bound: dict[str, BoundConnector | None] = {}
    into: str | None = None
    roles: tuple[tuple[str, Role], ...] = (
        ("source", "source"),
        ("target", "target"),
        ("enrichment", "enricher"),
        ("dead_letter", "target"),
    )
    for key, role in roles:
        spec = item.get(key)
        if spec is None or not isinstance(spec, dict) or not isinstance(spec.get("type"), str):
            bound[key] = None
            continue
        raw = {k: v for k, v in spec.items() if k != "type"}
        connector_into = None
        if key == "enrichment" and "into" in raw:
            connector_into = raw.pop("into")
        bound[key], keep_into = _bind(
            spec["type"], role, raw, connector_into, (*prefix, key), errors, registry, pipe_dir
        )
        if key == "enrichment" and connector_into is not None and not keep_into:
            into = connector_into if isinstance(connector_into, str) else None
            if into is None:
                errors.add((*prefix, key, "into"), "into must be a key name (text)")
    filter_stage = transform_stage = None
    if config is not None and config.filter is not None:
        try:
            filter_stage = FilterStage(config.filter)
        except StageError as exc:
            errors.add((*prefix, "filter", *_filter_path(item, exc.path)), str(exc), suffix=exc.suffix)
    if config is not None and config.transform is not None:
        try:
            transform_stage = TransformStage(config.transform)
        except StageError as exc:
            errors.add((*prefix, "transform", *exc.path), str(exc))
    if config is not None:
        _check_log(config, prefix, errors)
    if errors.count > before or config is None:
        return None
    source, target = bound["source"], bound["target"]
    assert source is not None and target is not None
    return PipeDefinition(
        config=config,
        source=source,
        target=target,
        enrichment=bound["enrichment"],
        enrichment_into=into,
        dead_letter=bound["dead_letter"],
        filter=filter_stage,
        transform=transform_stage,
        # Its tests do not change how a pipe runs: editing them restarts nothing.
        fingerprint=_fingerprint({key: value for key, value in item.items() if key != "tests"}),
    )


def _check_log(config: PipeConfig, prefix: KeyPath, errors: _Errors) -> None:
    """``log`` beside its shorthand ``log_level``: reported at ``log_level``."""
    if config.log is not None and "log_level" in config.model_fields_set:
        errors.add(
            (*prefix, "log_level"),
            "log_level is short for log: {level: ...}; give one of them (e.g. log: {level: TRACE, "
            "include_execution_data: false})",
        )


def _filter_path(item: Mapping[str, Any], path: KeyPath) -> KeyPath:
    # A filter written as a bare list has no `patterns` key in the file.
    if isinstance(item.get("filter"), list) and path and path[0] == "patterns":
        return path[1:]
    return path


def _bind(
    type_name: str,
    role: Role,
    raw: dict[str, Any],
    into: Any,
    path: KeyPath,
    errors: _Errors,
    registry: Registry,
    pipe_dir: Path | None,
) -> tuple[BoundConnector | None, bool]:
    """Resolve and validate one connector use; returns it and whether it takes ``into`` itself."""
    try:
        cls = registry.resolve(type_name, role, pipe_dir)
    except UnknownConnector as exc:
        errors.add((*path, "type"), str(exc))
        return None, False
    except Exception as exc:  # a plug-in that fails to import is the user's config problem here
        errors.add((*path, "type"), f"cannot load connector {type_name!r}: {type(exc).__name__}: {exc}")
        return None, False
    model = cls.options_model
    takes_into = into is not None and "into" in model.model_fields
    if takes_into:
        raw = {**raw, "into": into}
    try:
        options = model.model_validate(raw, context={PIPE_DIR: pipe_dir})
    except ValidationError as exc:
        for err in exc.errors():
            inner = _clean_loc(err["loc"], raw)
            errors.add((*path, *inner), _message(err, _raw_at(raw, inner)))
        return None, takes_into
    return BoundConnector(type_name, role, cls, options, raw), takes_into


def _clean_loc(loc: tuple[int | str, ...], data: Any) -> KeyPath:
    """Pydantic's loc without its union/validator tags, following only real keys."""
    out: list[str | int] = []
    node = data
    for part in loc:
        if (isinstance(node, dict) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        ):
            out.append(part)
            node = node[part] if isinstance(node, dict) else node[int(part)]
        elif isinstance(part, str) and (
            part.startswith(("function-", "list[", "dict[", "union[")) or "[" in part
        ):
            continue
        elif isinstance(node, dict) and isinstance(part, str):
            out.append(part)  # a missing key: report it by name at its parent's position
            node = None
        else:
            continue
    return tuple(out)


def _raw_at(data: Any, path: KeyPath) -> Any:
    """The value as written in the file at ``path`` (None where there is none)."""
    for part in path:
        if isinstance(data, dict) and part in data:
            data = data[part]
            continue
        if isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
            continue
        return None
    return data


def _message(err: Any, written: Any = None) -> str:
    kind = err.get("type")
    if kind == "extra_forbidden":
        return "unknown key (check the spelling; see the docs for the accepted keys)"
    if kind == "missing":
        return "required key is missing"
    msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
    if kind in _BOUNDS and isinstance(written, str):
        # A duration written as text ("10m") was compared in seconds: say so.
        return f"{msg} seconds (got {written!r})"
    return msg


_BOUNDS = frozenset({"less_than", "less_than_equal", "greater_than", "greater_than_equal"})


def _fingerprint(item: Mapping[str, Any]) -> str:
    import orjson

    try:
        return orjson.dumps(item, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS, default=str).decode()
    except TypeError:  # an integer beyond 64 bits: still the same text for the same file
        return repr(item)
