"""The JSON path subset AWS Pipes accepts, compiled once into a getter.

AWS documents dot notation from ``$`` with names of letters, digits, ``_``,
``-`` and ``/``, array indexes ``[3]`` and the wildcard ``*``; nothing else
(no filters, slices, recursive descent, quoted names). A path with a wildcard
is *indefinite* and yields the list of every match, as JSONPath does; a
definite path yields the value or ``MISSING``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["MISSING", "WILDCARD", "JsonPath", "PathError", "compile_path"]

_NAME = re.compile(r"[\w/-]+")
_INDEX = re.compile(r"\[(\d+|\*)\]")


class _Missing:
    """What a path that does not exist yields (distinct from a JSON ``null``)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()


class _Wildcard:
    __slots__ = ()

    def __repr__(self) -> str:
        return "*"


#: The step ``[*]`` (or ``.*``): every element of an array, every value of an object.
WILDCARD: Final = _Wildcard()

type Step = str | int | _Wildcard


class PathError(ValueError):
    """A malformed path; ``offset`` is the character of ``path`` where it goes wrong."""

    def __init__(self, offset: int, message: str) -> None:
        super().__init__(message)
        self.offset = offset


@dataclass(frozen=True, slots=True)
class JsonPath:
    """A compiled path: ``get(document)`` returns the value, a list of matches, or ``MISSING``."""

    text: str
    steps: tuple[Step, ...]
    #: The steps when they are all field names (the common case, which callers
    #: may inline on hot paths); ``None`` otherwise.
    keys: tuple[str, ...] | None
    get: Callable[[Any], Any]


def compile_path(text: str) -> JsonPath:
    """Compile ``$.a.b[3][*]``; raises ``PathError`` for anything outside AWS's subset."""
    steps = _parse(text)
    keys = tuple(step for step in steps if isinstance(step, str))
    if len(keys) != len(steps):
        return JsonPath(text, steps, None, _getter(steps))
    return JsonPath(text, steps, keys, _keys_getter(keys))


def _parse(text: str) -> tuple[Step, ...]:
    if not text.startswith("$"):
        raise PathError(0, f"{text} must start with $")
    steps: list[Step] = []
    pos = 1
    while pos < len(text):
        char = text[pos]
        if char == ".":
            pos += 1
            if text.startswith("*", pos):
                steps.append(WILDCARD)
                pos += 1
                continue
            match = _NAME.match(text, pos)
            if match is None:
                raise PathError(pos, f"expected a field name after '.' in {text} (letters, digits, _, -, /)")
            steps.append(match.group())
            pos = match.end()
        elif char == "[":
            if not steps:
                raise PathError(pos, f"{text} must start with $.name, not $[")
            match = _INDEX.match(text, pos)
            if match is None:
                raise PathError(pos, f"array index in {text} must be [number] or [*]")
            index = match.group(1)
            steps.append(WILDCARD if index == "*" else int(index))
            pos = match.end()
        else:
            raise PathError(pos, f"unexpected {char!r} in {text}; paths use .name, [number], [*]")
    return tuple(steps)


def _keys_getter(keys: tuple[str, ...]) -> Callable[[Any], Any]:
    def get(document: Any) -> Any:
        value = document
        # Indexing a str, list, number or None with a str key raises TypeError,
        # so one try covers every way the path can be absent.
        try:
            for key in keys:
                value = value[key]
        except (KeyError, TypeError):
            return MISSING
        return value

    return get


def _getter(steps: tuple[Step, ...]) -> Callable[[Any], Any]:
    def step_into(value: Any, step: Step) -> Any:
        if isinstance(step, str):
            if isinstance(value, dict) and step in value:
                return value[step]
        elif isinstance(step, int) and isinstance(value, list) and step < len(value):
            return value[step]
        return MISSING

    if WILDCARD not in steps:

        def get(document: Any) -> Any:
            value = document
            for step in steps:
                value = step_into(value, step)
                if value is MISSING:
                    break
            return value

        return get

    def collect(value: Any, at: int, out: list[Any]) -> None:
        if at == len(steps):
            out.append(value)
            return
        step = steps[at]
        if step is WILDCARD:
            children = value.values() if isinstance(value, dict) else value
            if isinstance(value, dict | list):
                for child in children:
                    collect(child, at + 1, out)
            return
        child = step_into(value, step)
        if child is not MISSING:
            collect(child, at + 1, out)

    def get_all(document: Any) -> Any:
        out: list[Any] = []
        collect(document, 0, out)
        return out

    return get_all
