"""AWS EventBridge Pipes input templates (``InputTemplate``), parsed once, rendered per event.

A template is text with inline placeholders: ``<$.path>`` addresses the record,
``<aws.pipes.NAME>`` a reserved variable. What a placeholder turns into depends
on where it stands, and that is decided here at construction, never per event:

- in a JSON template (one that starts with ``{`` or ``[``, or is one JSON
  string), a placeholder in a value position becomes a JSON value (strings
  quoted and escaped, objects and arrays as JSON, a missing path ``null``), and
  a placeholder inside a string literal becomes text, JSON-escaped, so that the
  output is always valid JSON. JSON templates are minified as AWS does;
- anywhere else (plain text) a placeholder becomes text: strings unquoted,
  objects and arrays with their quotes stripped (``{orderId:o-7}``), as AWS does.

``docs/transforming.md`` is the user's reference, including where we differ
from AWS and why.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any, Final

import orjson

from pipes.errors import ConfigError

__all__ = [
    "MAX_TEMPLATE_LENGTH",
    "RESERVED_VARIABLES",
    "InputTemplate",
    "TemplateError",
    "reserved_variables",
]

#: AWS's limit on ``InputTemplate``, in characters.
MAX_TEMPLATE_LENGTH: Final = 8192

#: Every name ``<aws.pipes.NAME>`` may use, without the angle brackets.
RESERVED_VARIABLES: Final = frozenset(
    {
        "aws.pipes.pipe-name",
        "aws.pipes.pipe-arn",
        "aws.pipes.source-arn",
        "aws.pipes.enrichment-arn",
        "aws.pipes.target-arn",
        "aws.pipes.event.ingestion-time",
        "aws.pipes.event",
        "aws.pipes.event.json",
    }
)

_EVENT = "aws.pipes.event"
_EVENT_JSON = "aws.pipes.event.json"
_JSON_WS = " \t\n\r"
# A placeholder's body stops at the first character that cannot be part of one,
# so that an unclosed ``<$.a`` is reported where it starts instead of swallowing text.
_BODY = re.compile(r"[^\s<>\"]*")
_NAME = re.compile(r"[\w/-]+")
_INDEX = re.compile(r"\[(\d+|\*)\]")


class TemplateError(ConfigError):
    """An invalid template; ``str()`` says at which character offset and what is wrong."""

    def __init__(self, offset: int, message: str) -> None:
        super().__init__(f"invalid input template at offset {offset}: {message}")
        self.offset = offset


def reserved_variables(
    pipe: str, source_type: str, target_type: str, enrichment_type: str | None
) -> dict[str, str]:
    """The pipe's name and local ARNs, in the one format the docs promise.

    There is no account or region locally, so ARNs read ``arn:pipes:local:...``.
    Without an enrichment, ``aws.pipes.enrichment-arn`` is absent, which renders
    like a missing path (``null`` as a JSON value, nothing inside text).
    The runner adds ``aws.pipes.event.ingestion-time`` per event
    (``pipes.clock.iso_utc``: ISO-8601 UTC with milliseconds).
    """
    variables = {
        "aws.pipes.pipe-name": pipe,
        "aws.pipes.pipe-arn": f"arn:pipes:local:pipe/{pipe}",
        "aws.pipes.source-arn": f"arn:pipes:local:{source_type}:{pipe}/source",
        "aws.pipes.target-arn": f"arn:pipes:local:{target_type}:{pipe}/target",
    }
    if enrichment_type is not None:
        variables["aws.pipes.enrichment-arn"] = f"arn:pipes:local:{enrichment_type}:{pipe}/enrichment"
    return variables


# --- values -------------------------------------------------------------------------------------


class _Missing:
    """A path that does not exist: AWS creates no variable for it."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


_MISSING: Final = _Missing()


class _Wildcard:
    __slots__ = ()

    def __repr__(self) -> str:
        return "*"


_ALL: Final = _Wildcard()

type _Step = str | int | _Wildcard
type _Getter = Callable[[Any, Mapping[str, Any] | None], Any]
type _Slot = Callable[[Any, Mapping[str, Any] | None], str]


_dumps = orjson.dumps


def _json(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:
        # Integers beyond 64 bits, non-string keys, odd types: rare, so slow is fine.
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _text(value: Any) -> str:
    """A value as text, the AWS way: objects and arrays lose their quotes."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_text(v) for v in value) + "]"
    return _json(value)


def _as_json_value(value: Any) -> str:
    return "null" if value is _MISSING else _json(value)


def _as_json_text(value: Any) -> str:
    if value is _MISSING:
        return ""
    if not isinstance(value, str):
        value = _text(value)
    return orjson.dumps(value).decode()[1:-1]


def _as_text(value: Any) -> str:
    return "" if value is _MISSING else _text(value)


# --- paths --------------------------------------------------------------------------------------


def _parse_path(body: str, offset: int) -> tuple[_Step, ...]:
    """``$.a.b[3][*]`` -> ``("a", "b", 3, ALL)``; ``offset`` is where ``body`` starts."""
    steps: list[_Step] = []
    pos = 1  # past "$"
    while pos < len(body):
        char = body[pos]
        if char == ".":
            pos += 1
            if body.startswith("*", pos):
                steps.append(_ALL)
                pos += 1
                continue
            match = _NAME.match(body, pos)
            if match is None:
                raise TemplateError(
                    offset + pos,
                    f"expected a field name after '.' in <{body}> (letters, digits, _, -, /)",
                )
            steps.append(match.group())
            pos = match.end()
        elif char == "[":
            if not steps:
                raise TemplateError(offset + pos, f"<{body}> must start with $.name, not $[")
            match = _INDEX.match(body, pos)
            if match is None:
                raise TemplateError(offset + pos, f"array index in <{body}> must be [number] or [*]")
            index = match.group(1)
            steps.append(_ALL if index == "*" else int(index))
            pos = match.end()
        else:
            raise TemplateError(
                offset + pos, f"unexpected {char!r} in <{body}>; paths use .name, [number], [*]"
            )
    return tuple(steps)


def _definite_getter(steps: tuple[str | int, ...]) -> Callable[[Any], Any]:
    if all(isinstance(step, str) for step in steps):
        # Indexing a str, list, number or None with a str key raises TypeError, so
        # one try covers every way the path can be absent.
        def get_keys(record: Any) -> Any:
            value = record
            try:
                for key in steps:
                    value = value[key]
            except (KeyError, TypeError):
                return _MISSING
            return value

        return get_keys

    def get(record: Any) -> Any:
        value = record
        for step in steps:
            if isinstance(step, str):
                if not isinstance(value, dict) or step not in value:
                    return _MISSING
            elif not isinstance(value, list) or step >= len(value):
                return _MISSING
            value = value[step]
        return value

    return get


def _wildcard_getter(steps: tuple[_Step, ...]) -> Callable[[Any], Any]:
    """Collects every match into a list, as JSONPath does for an indefinite path."""

    def collect(value: Any, at: int, out: list[Any]) -> None:
        if at == len(steps):
            out.append(value)
            return
        step = steps[at]
        if step is _ALL:
            if isinstance(value, dict):
                children: Any = value.values()
            elif isinstance(value, list):
                children = value
            else:
                return
            for child in children:
                collect(child, at + 1, out)
        elif isinstance(step, str):
            if isinstance(value, dict) and step in value:
                collect(value[step], at + 1, out)
        elif isinstance(value, list) and isinstance(step, int) and step < len(value):
            collect(value[step], at + 1, out)

    def get(record: Any) -> Any:
        out: list[Any] = []
        collect(record, 0, out)
        return out

    return get


def _path_getter(steps: tuple[_Step, ...]) -> _Getter:
    if any(step is _ALL for step in steps):
        get = _wildcard_getter(steps)
    else:
        get = _definite_getter(tuple(s for s in steps if not isinstance(s, _Wildcard)))
    return lambda record, variables: get(record)


def _variable_getter(name: str) -> _Getter:
    if name in (_EVENT, _EVENT_JSON):
        # Default to the record itself: the runner passes these only when the
        # event differs from the record it renders.
        def get_event(record: Any, variables: Mapping[str, Any] | None) -> Any:
            return record if variables is None else variables.get(name, record)

        return get_event

    def get(record: Any, variables: Mapping[str, Any] | None) -> Any:
        return _MISSING if variables is None else variables.get(name, _MISSING)

    return get


# --- parsing ------------------------------------------------------------------------------------


class _Placeholder:
    __slots__ = ("end", "getter", "in_string", "keys", "name", "start")

    def __init__(
        self,
        start: int,
        end: int,
        name: str,
        getter: _Getter,
        in_string: bool,
        keys: tuple[str, ...] | None = None,
    ) -> None:
        self.start = start
        self.end = end
        self.name = name
        self.getter = getter
        self.in_string = in_string
        # Set when the path is plain field names, which render() resolves inline.
        self.keys = keys


def _placeholder_at(text: str, at: int, in_string: bool) -> _Placeholder | None:
    """The placeholder starting with the ``<`` at ``at``; ``None`` for a plain ``<``."""
    rest = text[at + 1 : at + 3]
    if rest[:1] == "$" and rest[1:2] in (".", "[", ">"):
        kind = "path"
    elif text.startswith(("aws.pipes.", "aws.events."), at + 1):
        kind = "variable"
    else:
        return None
    body = _BODY.match(text, at + 1)
    assert body is not None  # the pattern matches the empty string
    name = body.group()
    if not text.startswith(">", body.end()):
        raise TemplateError(at, f"placeholder <{name} is not closed with '>'")
    end = body.end() + 1
    if kind == "path":
        steps = _parse_path(name, at + 1)
        keys = tuple(s for s in steps if isinstance(s, str))
        return _Placeholder(
            at, end, name, _path_getter(steps), in_string, keys if len(keys) == len(steps) else None
        )
    if name in RESERVED_VARIABLES:
        return _Placeholder(at, end, name, _variable_getter(name), in_string)
    if name.startswith("aws.events."):
        raise TemplateError(at, f"<{name}> is an event-bus rule variable; pipes use <aws.pipes.*> variables")
    known = ", ".join(f"<{v}>" for v in sorted(RESERVED_VARIABLES))
    raise TemplateError(at, f"unknown reserved variable <{name}>; known: {known}")


def _scan(text: str, as_json: bool) -> tuple[list[str], list[_Placeholder]]:
    """Split ``text`` into literal chunks around placeholders (one more chunk than placeholders).

    With ``as_json`` it tracks whether each placeholder is inside a string
    literal and drops whitespace between JSON tokens (AWS minifies JSON).
    """
    chunks: list[str] = []
    placeholders: list[_Placeholder] = []
    current: list[str] = []
    in_string = False
    pos = 0
    while pos < len(text):
        char = text[pos]
        if char == "<":
            placeholder = _placeholder_at(text, pos, in_string)
            if placeholder is not None:
                chunks.append("".join(current))
                current = []
                placeholders.append(placeholder)
                pos = placeholder.end
                continue
        elif as_json:
            if in_string:
                if char == "\\":
                    current.append(text[pos : pos + 2])
                    pos += 2
                    continue
                if char == '"':
                    in_string = False
            elif char == '"':
                in_string = True
            elif char in _JSON_WS:
                pos += 1
                continue
        current.append(char)
        pos += 1
    chunks.append("".join(current))
    return chunks, placeholders


def _json_error(text: str, placeholders: list[_Placeholder]) -> json.JSONDecodeError | None:
    """Why ``text`` is not JSON once filled in, with offsets into ``text`` itself.

    Each placeholder is replaced by text of the same length: a value position by
    `` 0 `` padded with blanks (blanks also keep it from gluing onto a
    neighbouring token), a string position by letters.
    """
    probe: list[str] = []
    pos = 0
    for p in placeholders:
        probe.append(text[pos : p.start])
        width = p.end - p.start
        probe.append("x" * width if p.in_string else " 0".ljust(width))
        pos = p.end
    probe.append(text[pos:])

    filled = "".join(probe)

    def reject_constant(name: str) -> Any:
        raise json.JSONDecodeError(f"{name} is not JSON", filled, max(0, filled.find(name)))

    try:
        json.loads(filled, parse_constant=reject_constant)
    except json.JSONDecodeError as exc:
        return exc
    return None


# --- the template -------------------------------------------------------------------------------


def _slot(placeholder: _Placeholder, fmt: Callable[[Any], str]) -> _Slot:
    """One call per placeholder per render: the common key-only path is inlined."""
    keys = placeholder.keys
    if keys is None:
        getter = placeholder.getter
        return lambda record, variables: fmt(getter(record, variables))
    if fmt is _as_json_value:

        def json_value(record: Any, variables: Mapping[str, Any] | None) -> str:
            value = record
            try:
                for key in keys:
                    value = value[key]
            except (KeyError, TypeError):
                return "null"
            try:
                return _dumps(value).decode()
            except orjson.JSONEncodeError:
                return _json(value)

        return json_value

    def other(record: Any, variables: Mapping[str, Any] | None) -> str:
        value = record
        try:
            for key in keys:
                value = value[key]
        except (KeyError, TypeError):
            value = _MISSING
        return fmt(value)

    return other


class InputTemplate:
    """An AWS input template, compiled at construction; ``render`` only fills it in.

    Raises ``TemplateError`` for a template AWS would reject or that could not
    render valid output: longer than 8192 characters, a malformed path
    (``<$.a..b>``, ``<$.a[x]>``, unclosed ``<$.a``), an unknown
    ``<aws.pipes.*>`` name, a JSON template that is not JSON, or
    ``<aws.pipes.event.json>`` used inside text.
    """

    __slots__ = ("_head", "_is_json", "_slots", "_text")

    def __init__(self, text: str) -> None:
        if len(text) > MAX_TEMPLATE_LENGTH:
            raise TemplateError(
                MAX_TEMPLATE_LENGTH,
                f"template is {len(text)} characters; the limit is {MAX_TEMPLATE_LENGTH} (as on AWS)",
            )
        self._text = text
        stripped = text.lstrip(_JSON_WS)
        first = stripped[:1]
        if first in ("{", "["):
            is_json = True
            chunks, placeholders = _scan(text, as_json=True)
            error = _json_error(text, placeholders)
            if error is not None:
                for p in placeholders:
                    if p.start <= error.pos < p.end:
                        raise TemplateError(
                            p.start,
                            f"<{p.name}> cannot stand here in JSON ({error.msg}); a placeholder "
                            "is either a whole value or inside a string",
                        )
                raise TemplateError(
                    error.pos,
                    f"not valid JSON ({error.msg}); a template that starts with {first} "
                    "must be JSON once its placeholders are filled in",
                )
        elif first == '"':
            # One JSON string is a JSON template; other text that merely starts
            # with a quote is plain text.
            chunks, placeholders = _scan(text, as_json=True)
            is_json = _json_error(text, placeholders) is None
            if not is_json:
                chunks, placeholders = _scan(text, as_json=False)
        else:
            is_json = False
            chunks, placeholders = _scan(text, as_json=False)
        self._is_json = is_json

        slots: list[_Slot] = []
        for p in placeholders:
            if p.name == _EVENT_JSON:
                alone = not is_json and len(placeholders) == 1 and not "".join(chunks).strip()
                if p.in_string or not (is_json or alone):
                    raise TemplateError(
                        p.start,
                        "<aws.pipes.event.json> is JSON and may only stand as a JSON value "
                        '(e.g. {"event": <aws.pipes.event.json>}), not inside text',
                    )
                slots.append(_slot(p, _as_json_value))
            elif not is_json:
                slots.append(_slot(p, _as_text))
            elif p.in_string:
                slots.append(_slot(p, _as_json_text))
            else:
                slots.append(_slot(p, _as_json_value))
        self._head = chunks[0]
        self._slots: tuple[tuple[_Slot, str], ...] = tuple(zip(slots, chunks[1:], strict=True))

    @property
    def text(self) -> str:
        """The template as written."""
        return self._text

    @property
    def is_json(self) -> bool:
        """Whether this is a JSON template (its output is always valid, minified JSON)."""
        return self._is_json

    def render(self, record: Any, variables: Mapping[str, Any] | None = None) -> str:
        """The template filled in from ``record`` and the reserved ``variables``.

        ``variables`` maps reserved names without brackets (``"aws.pipes.pipe-name"``)
        to values; ``aws.pipes.event`` and ``aws.pipes.event.json`` default to
        ``record``. Never raises for a missing path or variable.
        """
        parts = [self._head]
        append = parts.append
        for slot, literal in self._slots:
            append(slot(record, variables))
            append(literal)
        return "".join(parts)

    def __repr__(self) -> str:
        return f"InputTemplate({self._text!r})"
