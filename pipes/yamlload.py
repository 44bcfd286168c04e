"""YAML to plain values, remembering where every key and value came from.

Validation errors must say ``FILE:LINE:COL``; pydantic only knows paths like
``("source", "topics", 0)``. So the loader walks PyYAML's node tree and keeps a
map from each path to the position of its node. ``${VAR}`` and
``${VAR:-default}`` are interpolated in scalar strings here, where the
position is still known; ``$${`` writes a literal ``${``.

Aliases are references in PyYAML's node tree but become copies here, so a few
hundred bytes of nested aliases (a "billion laughs") would expand into billions
of values. What aliases add is counted on the node tree first, in linear time,
and a file whose aliases would add more than ``MAX_ALIAS_VALUES`` values is
refused with the position of the alias that crossed the limit.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

__all__ = ["MAX_ALIAS_VALUES", "Located", "YamlError", "load_located"]

type Path = tuple[str | int, ...]

#: Most values that aliases may add to a file (a real pipe file adds a few hundred).
MAX_ALIAS_VALUES = 100_000

_VAR = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-((?:[^}])*))?\}")


@dataclass
class YamlError:
    """One problem found while reading: position (1-based) and message."""

    line: int
    column: int
    path: Path
    message: str


@dataclass
class Located:
    """The loaded value and the position of every path in it."""

    value: Any
    marks: dict[Path, tuple[int, int]] = field(default_factory=dict)
    errors: list[YamlError] = field(default_factory=list)

    def position(self, path: Path) -> tuple[int, int]:
        """Position of ``path`` or of its nearest ancestor that exists."""
        for end in range(len(path), -1, -1):
            mark = self.marks.get(path[:end])
            if mark is not None:
                return mark
        return (1, 1)


def load_located(text: str, env: Mapping[str, str]) -> Located:
    """Parse ``text``; syntax errors come back in ``errors`` rather than raising."""
    composer = _Composer(text)
    try:
        node = composer.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = exc.problem or str(exc)
        return Located(None, errors=[YamlError(line, col, (), f"YAML syntax error: {problem}")])
    finally:
        composer.dispose()
    result = Located(None)
    if node is None:
        return result
    too_many = _alias_overflow(composer.aliases)
    if too_many is not None:
        result.errors.append(
            YamlError(
                too_many.line + 1,
                too_many.column + 1,
                (),
                f"YAML: aliases expand this file to more than {MAX_ALIAS_VALUES:,} values "
                "(nested aliases?); write the values out instead",
            )
        )
        return result
    result.value = _build(node, (), result, env, yaml.SafeLoader(""))
    return result


class _Composer(yaml.SafeLoader):
    """PyYAML's composer, noting each alias with the position where it is written.

    A composed alias is the anchored node itself, so its own position is lost
    unless it is taken from the event here.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.aliases: list[tuple[yaml.Node, yaml.Mark]] = []

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
            node: yaml.Node | None = super().compose_node(parent, index)
            if node is not None:
                self.aliases.append((node, mark))
            return node
        return super().compose_node(parent, index)


def _alias_overflow(aliases: list[tuple[yaml.Node, yaml.Mark]]) -> yaml.Mark | None:
    """Where, in file order, the values added by aliases pass ``MAX_ALIAS_VALUES``; None if never.

    Each alias adds a copy of its node with everything below it, aliases
    included; sizes are computed once per node, so this is linear in the file.
    """
    sizes: dict[int, int] = {}
    added = 0
    for node, mark in aliases:
        added += _expanded_size(node, sizes, set())
        if added > MAX_ALIAS_VALUES:
            return mark
    return None


def _expanded_size(node: yaml.Node, sizes: dict[int, int], inside: set[int]) -> int:
    """Values ``node`` becomes once every alias below it is copied (a recursive alias counts once)."""
    key = id(node)
    known = sizes.get(key)
    if known is not None:
        return known
    if key in inside:  # recursive: reported as an error while building
        return 1
    size = 1
    if isinstance(node, yaml.MappingNode | yaml.SequenceNode):
        inside.add(key)
        children: list[yaml.Node] = (
            [part for pair in node.value for part in pair]
            if isinstance(node, yaml.MappingNode)
            else list(node.value)
        )
        for child in children:
            size += _expanded_size(child, sizes, inside)
            if size > MAX_ALIAS_VALUES:
                break  # enough to know; keeps the numbers small
        inside.discard(key)
    sizes[key] = size
    return size


def _build(
    node: yaml.Node,
    path: Path,
    out: Located,
    env: Mapping[str, str],
    ctor: yaml.SafeLoader,
    inside: frozenset[int] = frozenset(),
) -> Any:
    out.marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode | yaml.SequenceNode):
        if id(node) in inside:  # an alias to a node that contains it
            _error(out, node, path, "YAML: recursive alias")
            return None
        inside = inside | {id(node)}
    if isinstance(node, yaml.MappingNode):
        mapping: dict[Any, Any] = {}
        first_line: dict[Any, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                _error(out, key_node, path, "YAML: merge keys (<<) are not supported")
                continue
            key = _build(key_node, (*path, "<key>"), out, env, ctor, inside)
            out.marks.pop((*path, "<key>"), None)
            if not isinstance(key, str | int):
                key = str(key)
            child = (*path, key)
            if key in mapping:
                line = first_line[key]
                _error(out, key_node, child, f"key given twice in this mapping (first at line {line})")
                continue
            value = _build(value_node, child, out, env, ctor, inside)
            # Point a key's errors at the key itself, where a reader looks first.
            out.marks[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            first_line[key] = key_node.start_mark.line + 1
            mapping[key] = value
        return mapping
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, (*path, i), out, env, ctor, inside) for i, item in enumerate(node.value)]
    try:
        value = ctor.construct_object(node, deep=True)
    except (yaml.YAMLError, ValueError, TypeError, OverflowError) as exc:
        problem = exc.problem if isinstance(exc, yaml.MarkedYAMLError) and exc.problem else str(exc)
        _error(out, node, path, f"YAML: {problem}")
        return None
    if isinstance(value, str) and "$" in value:
        value = _interpolate(value, node, path, out, env)
    return value


def _error(out: Located, node: yaml.Node, path: Path, message: str) -> None:
    out.errors.append(YamlError(node.start_mark.line + 1, node.start_mark.column + 1, path, message))


def _interpolate(text: str, node: yaml.Node, path: Path, out: Located, env: Mapping[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$${":
            return "${"
        name, default = match.group(1), match.group(2)
        if name in env and (default is None or env[name] != ""):
            return env[name]
        if default is not None:
            return default
        out.errors.append(
            YamlError(
                node.start_mark.line + 1,
                node.start_mark.column + 1,
                path,
                f"environment variable {name} is not set (write ${{{name}:-default}} to give a default)",
            )
        )
        return ""

    return _VAR.sub(replace, text)
