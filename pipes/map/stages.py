"""The pipes languages as the map job uses them: the one door to patterns, templates and JMESPath.

Everything the map side and the reduce side evaluate per record is compiled
here, once, from the same config models a pipe uses: event patterns
(``pipes.patterns``), input templates (``pipes.templates``), JMESPath
(``pipes.stages.compile_jmespath``) and ``module:function`` names. Keeping
the calls in this module lets the stage implementations change underneath
without touching the rest of ``pipes.map``.

Two things are added for speed, both exact: JMESPath expressions that are
plain field chains (``body.value``) and objects of them become direct
``dict.get`` chains with JMESPath's null semantics, and a filter reports which
body fields it reads, so a CSV reader can test a row before it builds the
record (see ``RecordFilter.body_fields``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path as FilePath
from typing import Any

import jmespath.exceptions
import orjson

from pipes.models import FilterConfig, TransformConfig
from pipes.stages import StageError, compile_jmespath

__all__ = [
    "Getter",
    "RecordFilter",
    "StageError",
    "accepts_options",
    "compile_filter",
    "compile_getter",
    "compile_value",
    "load_function",
]

type Getter = Callable[[Any], Any]
type Path = tuple[str | int, ...]


@dataclass(frozen=True)
class RecordFilter:
    """A compiled filter: patterns (OR) and/or JMESPath, both must pass.

    ``body_fields`` names every field of ``body`` the filter can read, or is
    None when it may read the body as a whole; ``reads_line`` and
    ``reads_file`` say whether it reads ``line`` and ``file``. A record that
    has those fields as the full record has them matches exactly as the full
    record does, and the outcome is a pure function of them.
    """

    matches: Callable[[Any], bool]
    body_fields: frozenset[str] | None
    reads_line: bool
    reads_file: bool = False
    #: When the filter is one pattern over body fields only (no ``$or`` across fields, no
    #: JMESPath): per field, a test of that field alone. The filter matches exactly when every
    #: test passes on a record whose body is an object, so a reader may test field by field.
    field_tests: tuple[tuple[str, Callable[[Any], bool]], ...] | None = None


def compile_filter(config: FilterConfig) -> RecordFilter:
    """Raises ``StageError`` (path inside the filter config) for an invalid pattern or expression."""
    from pipes.patterns import EventFilter, PatternError

    pattern_match: Callable[[Any], bool] | None = None
    fields: set[str] | None = set()
    top: set[str] = set()
    if config.patterns:
        try:
            compiled = EventFilter.compile(config.patterns)
        except PatternError as exc:
            index, _, inner = exc.path.partition("]")
            where: Path = (
                ("patterns", int(index.removeprefix("pattern[")))
                if index.startswith("pattern[")
                else ("patterns",)
            )
            raise StageError(where, exc.reason, suffix=inner) from None
        except ValueError as exc:
            raise StageError(("patterns",), str(exc)) from None
        pattern_match = compiled.matches
        for pattern in compiled.patterns:
            fields = _pattern_fields(pattern, fields, top)
    search: Getter | None = None
    if config.jmespath:
        parsed = compile_jmespath(config.jmespath, ("jmespath",))
        search = _searcher(parsed)
        fields = _jmespath_fields(parsed.parsed, fields, top)

    def both(record: Any) -> bool:
        assert pattern_match is not None and search is not None
        return pattern_match(record) and _truthy(search(record))

    def jmespath_only(record: Any) -> bool:
        assert search is not None
        return _truthy(search(record))

    matches: Callable[[Any], bool]
    if pattern_match is not None and search is not None:
        matches = both
    elif pattern_match is not None:
        matches = pattern_match
    elif search is not None:
        matches = jmespath_only
    else:
        matches = _always
    body_fields = None if fields is None else frozenset(fields)
    tests = _field_tests(config) if search is None else None
    return RecordFilter(matches, body_fields, "line" in top, "file" in top, tests)


def _field_tests(config: FilterConfig) -> tuple[tuple[str, Callable[[Any], bool]], ...] | None:
    """One pattern ``{"body": {f1: ..., f2: ...}}`` as one test per field (fields are ANDed)."""
    from pipes.patterns import EventFilter

    if len(config.patterns) != 1:
        return None
    pattern = config.patterns[0]
    if isinstance(pattern, str):
        pattern = orjson.loads(pattern)
    if not isinstance(pattern, dict) or set(pattern) != {"body"} or not isinstance(pattern["body"], dict):
        return None
    body = pattern["body"]
    if not body or any(key.startswith("$") for key in body):
        return None
    return tuple((key, EventFilter.compile([{"body": {key: value}}]).matches) for key, value in body.items())


def _always(record: Any) -> bool:
    return True


def _truthy(value: Any) -> bool:
    # JMESPath truthiness: false, null, "", [], {} are false; 0 is true.
    if value is None or value is False:
        return False
    if isinstance(value, str | list | dict):
        return len(value) > 0
    return True


def _pattern_fields(pattern: Mapping[str, Any], fields: set[str] | None, top: set[str]) -> set[str] | None:
    """Add the body fields one pattern reads; None once it reads the body as a whole."""
    for key, value in pattern.items():
        if key == "$or" and isinstance(value, list):
            for branch in value:
                if isinstance(branch, dict):
                    fields = _pattern_fields(branch, fields, top)
            continue
        top.add(key)
        if key != "body":
            continue
        if not isinstance(value, dict):
            return None  # a pattern on the body's own value (text or a number)
        fields = _body_keys(value, fields)
    return fields


def _body_keys(body: Mapping[str, Any], fields: set[str] | None) -> set[str] | None:
    for key, value in body.items():
        if key == "$or" and isinstance(value, list):
            for branch in value:
                if isinstance(branch, dict) and fields is not None:
                    fields = _body_keys(branch, fields)
        elif fields is not None:
            fields.add(key)
    return fields


def _jmespath_fields(node: Mapping[str, Any], fields: set[str] | None, top: set[str]) -> set[str] | None:
    """Body fields a JMESPath AST reads; None when it could see the body (or the record) whole."""
    if fields is None:
        return None
    kind = node.get("type")
    children = node.get("children", [])
    if (
        kind == "subexpression"
        and children
        and children[0] == {"type": "field", "children": [], "value": "body"}
    ):
        following = children[1] if len(children) > 1 else None
        if following is not None and following.get("type") == "index_expression":
            following = following["children"][0]
        if following is None or following.get("type") != "field":
            return None
        fields.add(str(following["value"]))
        return fields
    if kind == "field":
        name = str(node["value"])
        if name == "body":
            return None
        top.add(name)
        return fields
    if kind in ("current", "identity", "value_projection", "projection", "flatten", "filter_projection"):
        return None
    for child in children:
        fields = _jmespath_fields(child, fields, top)
        if fields is None:
            return None
    return fields


def compile_getter(expression: str, path: Path) -> Getter:
    """A JMESPath expression as a function of one value; ``StageError`` if it does not compile."""
    parsed = compile_jmespath(expression, path)
    return _fast(parsed.parsed) or _searcher(parsed)


def _searcher(parsed: Any) -> Getter:
    search = parsed.search

    def get(value: Any) -> Any:
        try:
            return search(value)
        except jmespath.exceptions.JMESPathError as exc:
            raise ValueError(f"JMESPath failed: {' '.join(str(exc).split())}") from None

    return get


def _fast(node: Mapping[str, Any]) -> Getter | None:
    """Field chains, literals, ``@`` and objects/lists of those, as plain Python; else None."""
    kind = node.get("type")
    children = node.get("children", [])
    if kind == "current":
        return _identity
    if kind == "literal":
        constant = node["value"]
        return lambda value: constant
    names: list[str] = []
    if kind == "field":
        names = [str(node["value"])]
    elif kind == "subexpression" and all(c.get("type") == "field" for c in children):
        names = [str(c["value"]) for c in children]
    if names:
        return _chain(names)
    if kind == "multi_select_dict":
        parts = [(str(pair["value"]), _fast(pair["children"][0])) for pair in children]
        if any(get is None for _, get in parts):
            return None
        pairs = [(key, get) for key, get in parts if get is not None]

        def as_object(value: Any) -> Any:
            if value is None:
                return None
            return {key: get(value) for key, get in pairs}

        return as_object
    if kind == "multi_select_list":
        getters = [_fast(child) for child in children]
        if any(get is None for get in getters):
            return None
        items = [get for get in getters if get is not None]

        def as_list(value: Any) -> Any:
            if value is None:
                return None
            return [get(value) for get in items]

        return as_list
    return None


def _identity(value: Any) -> Any:
    return value


def _chain(names: list[str]) -> Getter:
    # JMESPath reads a field with .get and yields null where there is none, which
    # is exactly what AttributeError on a non-object (or on None) gives here.
    if len(names) == 1:
        (a,) = names

        def get1(value: Any) -> Any:
            try:
                return value.get(a)
            except AttributeError:
                return None

        return get1
    if len(names) == 2:
        a, b = names

        def get2(value: Any) -> Any:
            try:
                return value.get(a).get(b)
            except AttributeError:
                return None

        return get2

    def get_n(value: Any) -> Any:
        try:
            for name in names:
                value = value.get(name)
        except AttributeError:
            return None
        return value

    return get_n


def compile_value(config: TransformConfig, path: Path = ()) -> Getter:
    """A transform or a group key: a JMESPath value, or a template's text (decoded when JSON)."""
    if config.jmespath is not None:
        return compile_getter(config.jmespath, (*path, "jmespath"))
    from pipes.templates import InputTemplate

    assert config.template is not None
    try:
        template = InputTemplate(config.template)
    except ValueError as exc:
        raise StageError((*path, "template"), str(exc)) from None
    render = template.render
    if not template.is_json:
        return lambda value: render(value)
    loads = orjson.loads

    def render_json(value: Any) -> Any:
        return loads(render(value))

    return render_json


def load_function(spec: str, cwd: str | None = None) -> Callable[..., Any]:
    """The callable named ``package.module:function``; ``ValueError`` with one line if it cannot be had.

    Found by the rule of ``pipes.imports`` (the one pipe files follow): ``cwd``
    (the map's folder) first, then the working directory and the installed
    packages, so a ``functions.py`` beside the map file works without installing it.
    """
    from pipes.imports import ImportFailed, import_object

    try:
        target: Any = import_object(spec, FilePath(cwd) if cwd else None)
    except ImportFailed as exc:
        raise ValueError(f"cannot import {spec!r}: {exc}") from None
    if not callable(target):
        raise ValueError(f"cannot import {spec!r}: it is not callable")
    return target  # type: ignore[no-any-return]


def accepts_options(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` takes the keyword argument ``options`` (by name, or ``**kwargs``)."""
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # some builtins have no signature
        return False
    return any(
        p.kind is inspect.Parameter.VAR_KEYWORD
        or (p.name == "options" and p.kind is not inspect.Parameter.POSITIONAL_ONLY)
        for p in parameters
    )
