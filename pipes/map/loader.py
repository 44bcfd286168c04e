"""Map files to validated definitions, with every error as one located line.

The same discipline as pipe files (``pipes.config``): YAML read with the
position of every key (``pipes.yamlload``), ``${VAR}`` interpolated there,
the frozen models of ``pipes.map.model`` for the schema, and every stage
compiled on the spot (patterns, templates, JMESPath, ``module:function``) so
that a mistake is a ``FILE:LINE:COL: path.to.key: message`` line from
``pipes validate``, never a failure half way through a run. All errors of a
file are reported at once.

A file is a map file when its top level is a mapping with an ``items:`` key.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import yaml
from pydantic import ValidationError

from pipes.config import BoundConnector, _bind, _clean_loc, _Errors, _message, _raw_at
from pipes.map.model import MapConfig
from pipes.map.stages import StageError
from pipes.registry import Registry
from pipes.yamlload import load_located

__all__ = ["MapDefinition", "MapFileResult", "is_map_file", "load_map_file", "load_map_text"]


@dataclass(frozen=True)
class MapDefinition:
    """A checked map file: its config, its name, and its result target resolved."""

    config: MapConfig
    name: str
    file: str
    result_target: BoundConnector | None
    #: Canonical form of the config; a resumed run must have the same.
    fingerprint: str


@dataclass(frozen=True)
class MapFileResult:
    path: str
    definition: MapDefinition | None
    errors: list[str]


def is_map_file(path: str | os.PathLike[str]) -> bool:
    """True when the file's top level is a mapping with ``items:`` (cheap: reads the YAML events only)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    try:
        depth = 0
        expecting_key = False
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
                if depth == 0 and not isinstance(event, yaml.MappingStartEvent):
                    return False
                depth += 1
                expecting_key = depth == 1 and isinstance(event, yaml.MappingStartEvent)
                continue
            if isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
                depth -= 1
                expecting_key = depth == 1
                continue
            if isinstance(event, yaml.ScalarEvent) and depth == 1:
                if expecting_key and event.value == "items":
                    return True
                expecting_key = not expecting_key
    except yaml.YAMLError:
        return False
    return False


def load_map_file(
    path: str | os.PathLike[str],
    env: Mapping[str, str] | None = None,
    registry: Registry | None = None,
    cwd: str | None = None,
) -> MapFileResult:
    """Load one map file; never raises for a user's mistake (errors are in the result)."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return MapFileResult(name, None, [f"{name}:1:1: cannot read file: {exc}"])
    return load_map_text(text, name, env=env, registry=registry, cwd=cwd)


def load_map_text(
    text: str,
    name: str = "<memory>",
    env: Mapping[str, str] | None = None,
    registry: Registry | None = None,
    cwd: str | None = None,
) -> MapFileResult:
    located = load_located(text, os.environ if env is None else env)
    errors = _Errors(name, located)
    for err in located.errors:
        errors.add_at(err.line, err.column, err.path, err.message)
    value = located.value
    if located.errors and value is None:
        return MapFileResult(name, None, errors.lines)
    if not isinstance(value, dict):
        errors.add((), "a map file holds a mapping with items, item_reader and reduce")
        return MapFileResult(name, None, errors.lines)
    config: MapConfig | None = None
    try:
        config = MapConfig.model_validate(value)
    except ValidationError as exc:
        for detail in exc.errors():
            where = _clean_loc(detail["loc"], value)
            errors.add(where, _message(detail, _raw_at(value, where)))
    folder = cwd or os.getcwd()
    target = _result_target(value, errors, registry or Registry(), Path(folder))
    if config is not None:
        _compile(config, value, errors, folder)
    if errors.lines or config is None:
        return MapFileResult(name, None, errors.lines)
    map_name = config.name or _name_from(name)
    definition = MapDefinition(
        config=config,
        name=map_name,
        file=name,
        result_target=target,
        fingerprint=orjson.dumps(config.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS).decode(),
    )
    return MapFileResult(name, definition, [])


def _name_from(file: str) -> str:
    import re

    stem = Path(file).name.split(".")[0].lower()
    cleaned = re.sub(r"[^a-z0-9_-]+", "-", stem).strip("-_") or "map"
    return cleaned[:64]


def _result_target(
    value: dict[str, Any], errors: _Errors, registry: Registry, folder: Path
) -> BoundConnector | None:
    spec = value.get("result_target")
    if not isinstance(spec, dict) or not isinstance(spec.get("type"), str):
        return None
    raw = {k: v for k, v in spec.items() if k != "type"}
    bound, _ = _bind(spec["type"], "target", raw, None, ("result_target",), errors, registry, folder)
    return bound


def _compile(config: MapConfig, value: dict[str, Any], errors: _Errors, cwd: str) -> None:
    """Compiles every stage once, reporting each failure at its key."""
    from pipes.map.stages import compile_filter, compile_getter, compile_value, load_function

    if config.filter is not None:
        try:
            compile_filter(config.filter)
        except StageError as exc:
            path = exc.path
            if isinstance(value.get("filter"), list) and path and path[0] == "patterns":
                path = path[1:]  # a filter written as a bare list has no `patterns` key
            errors.add(("filter", *path), str(exc), suffix=exc.suffix)
    if config.transform is not None:
        try:
            compile_value(config.transform)
        except StageError as exc:
            errors.add(("transform", *exc.path), str(exc))
    if config.map is not None:
        try:
            load_function(config.map.function, cwd)
        except ValueError as exc:
            errors.add(("map", "function"), str(exc))
    reduce = config.reduce
    single_key = isinstance(value.get("reduce", {}).get("group_by"), dict)
    for i, group_key in enumerate(reduce.group_by or []):
        try:
            compile_value(group_key)
        except StageError as exc:
            where = ("group_by", *exc.path) if single_key else ("group_by", i, *exc.path)
            errors.add(("reduce", *where), str(exc))
    for name, aggregation in reduce.aggregations.items():
        try:
            compile_getter(aggregation.expression, ())
        except StageError as exc:
            errors.add(("reduce", "aggregations", name, aggregation.kind), str(exc))
    for field_name in ("function", "finalize"):
        spec: str | None = getattr(reduce, field_name)
        if spec is not None:
            try:
                load_function(spec, cwd)
            except ValueError as exc:
                errors.add(("reduce", field_name), str(exc))
