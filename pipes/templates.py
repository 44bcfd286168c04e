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

from pipes.codec import INEXACT_ABOVE, InexactNumber, contains_inexact
from pipes.errors import ConfigError
from pipes.jsonpath import MISSING, PathError, compile_path

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
        enrichment_arn = f"arn:pipes:local:{enrichment_type}:{pipe}/enrichment"
        variables["aws.pipes.enrichment-arn"] = enrichment_arn
    return variables


# --- values -------------------------------------------------------------------------------------

type _Variables = Mapping[str, Any] | None
type _Getter = Callable[[Any, _Variables], Any]
type _Build = Callable[[Any, _Variables, bool], Any]
type _Slot = Callable[[Any, _Variables, bool], str]

_dumps = orjson.dumps


def _json(value: Any) -> str:
    try:
        return _dumps(value).decode()
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
    return "null" if value is MISSING else _json(value)


def _as_json_text(value: Any) -> str:
    return "" if value is MISSING else _dumps(_text(value)).decode()[1:-1]


def _as_text(value: Any) -> str:
    return "" if value is MISSING else _text(value)


# --- placeholders -------------------------------------------------------------------------------


class _Placeholder:
    """``<$.path>`` or ``<aws.pipes.NAME>`` at ``text[start:end]``."""

    __slots__ = ("end", "get", "in_string", "keys", "name", "reads", "start")

    def __init__(
        self,
        start: int,
        end: int,
        name: str,
        get: _Getter,
        in_string: bool,
        keys: tuple[str, ...] | None = None,
        reads: frozenset[str] | None = frozenset(),
    ) -> None:
        self.start = start
        self.end = end
        self.name = name
        self.get = get
        self.in_string = in_string
        # The path's field names when it has nothing else, for inlining on the hot path.
        self.keys = keys
        #: Top-level keys of the record this placeholder reads; None: the whole record.
        self.reads = reads


def _variable_getter(name: str) -> _Getter:
    if name in (_EVENT, _EVENT_JSON):
        # Default to the record itself: the runner passes these only when the
        # event differs from the record it renders.
        def get_event(record: Any, variables: _Variables) -> Any:
            return record if variables is None else variables.get(name, record)

        return get_event

    def get(record: Any, variables: _Variables) -> Any:
        return MISSING if variables is None else variables.get(name, MISSING)

    return get


def _placeholder_at(text: str, at: int, in_string: bool) -> _Placeholder | None:
    """The placeholder starting with the ``<`` at ``at``; ``None`` for a plain ``<``."""
    rest = text[at + 1 : at + 3]
    if rest[:1] == "$" and rest[1:2] in (".", "[", ">"):
        is_path = True
    elif text.startswith(("aws.pipes.", "aws.events."), at + 1):
        is_path = False
    else:
        return None
    body = _BODY.match(text, at + 1)
    assert body is not None  # the pattern matches the empty string
    name = body.group()
    if not text.startswith(">", body.end()):
        raise TemplateError(at, f"placeholder <{name} is not closed with '>'")
    end = body.end() + 1
    if is_path:
        try:
            path = compile_path(name)
        except PathError as exc:
            raise TemplateError(at + 1 + exc.offset, str(exc)) from None
        get = path.get
        first = path.steps[0] if path.steps else None
        reads = frozenset({first}) if isinstance(first, str) else None
        return _Placeholder(at, end, name, lambda r, v: get(r), in_string, path.keys, reads)
    if name in RESERVED_VARIABLES:
        reads = None if name in (_EVENT, _EVENT_JSON) else frozenset()
        return _Placeholder(at, end, name, _variable_getter(name), in_string, reads=reads)
    if name.startswith("aws.events."):
        raise TemplateError(at, f"<{name}> is an event-bus rule variable; pipes use <aws.pipes.*> variables")
    known = ", ".join(f"<{v}>" for v in sorted(RESERVED_VARIABLES))
    raise TemplateError(at, f"unknown reserved variable <{name}>; known: {known}")


# --- parsing ------------------------------------------------------------------------------------


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
    `` 0`` padded with blanks (the blanks also keep it from gluing onto a
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
    except RecursionError:
        return json.JSONDecodeError("nested too deeply", filled, 0)
    return None


def _check_json(text: str, first: str, placeholders: list[_Placeholder]) -> None:
    error = _json_error(text, placeholders)
    if error is None:
        return
    for p in placeholders:
        if p.start <= error.pos < p.end:
            raise TemplateError(
                p.start,
                f"<{p.name}> cannot stand here in JSON ({error.msg}); a placeholder is "
                "either a whole value or inside a string",
            )
    raise TemplateError(
        error.pos,
        f"not valid JSON ({error.msg}); a template that starts with {first} must be JSON "
        "once its placeholders are filled in",
    )


# --- rendering as text: the reference ----------------------------------------------------------


def _checked(value: Any) -> Any:
    """``value``, unless it may be a number orjson could not decode exactly (see ``pipes.codec``)."""
    if contains_inexact(value):
        raise InexactNumber
    return value


def _slot(placeholder: _Placeholder, fmt: Callable[[Any], str]) -> _Slot:
    """The text for one placeholder; a path of field names is resolved inline."""
    keys = placeholder.keys
    if keys is None:
        get = placeholder.get

        def slot_get(record: Any, variables: _Variables, check: bool) -> str:
            value = get(record, variables)
            return fmt(_checked(value) if check else value)

        return slot_get

    def slot(record: Any, variables: _Variables, check: bool) -> str:
        value = record
        try:
            for key in keys:
                value = value[key]
        except (KeyError, TypeError):
            value = MISSING
        return fmt(_checked(value) if check else value)

    return slot


# --- rendering through one orjson call: the fast path ------------------------------------------


class _NotCanonical(Exception):
    """The template's literal text is not what orjson would write, so the fast path would differ."""


class _FastCompiler:
    """Compiles a validated, minified JSON template into one Python function.

    The function builds the value that the template describes, and
    ``orjson.dumps`` writes it in one call: about twice as fast as writing each
    placeholder on its own, and as fast as the same code written by hand. Its
    output equals the text renderer's exactly as long as every literal in the
    template is already written the way orjson writes it (``42``, ``"é"``; not
    ``1e5``, ``"\\u00e9"``), no key repeats and no key holds a placeholder:
    otherwise ``compile`` returns ``None`` and the template renders as text. The generated source embeds only field names
    (as Python literals, via ``repr``) and names bound in its own namespace.
    """

    def __init__(self, chunks: list[str], placeholders: list[_Placeholder]) -> None:
        self.items: list[str | _Placeholder] = list(chunks[0])
        for placeholder, chunk in zip(placeholders, chunks[1:], strict=True):
            self.items.append(placeholder)
            self.items.extend(chunk)
        self.pos = 0
        self.namespace: dict[str, Any] = {
            "MISSING": MISSING,
            "_text": _text,
            "_BIG": INEXACT_ABOVE,
            "_Inexact": InexactNumber,
            "_contains": contains_inexact,
        }
        self.prelude: list[str] = []

    def compile(self) -> _Build | None:
        try:
            expression = self.value()
            source = "def build(record, variables, check=False):\n"
            source += "".join(self.prelude) + f"    return {expression}\n"
            exec(compile(source, "<input template>", "exec"), self.namespace)
        except (_NotCanonical, RecursionError, SyntaxError, MemoryError):
            return None
        build: _Build = self.namespace["build"]
        return build

    def bind(self, value: Any) -> str:
        name = f"c{len(self.namespace)}"
        self.namespace[name] = value
        return name

    def placeholder(self, placeholder: _Placeholder, in_string: bool) -> str:
        """A local holding the placeholder's value (``None`` if missing), or its text."""
        var = f"v{len(self.prelude)}"
        missing = '""' if in_string else "None"
        # With ``check``, a float orjson may have made from a too-large integer stops the
        # render, so that the caller can decode the event exactly and render again.
        kind = f"k{len(self.prelude)}"
        check = (
            f"        {kind} = {var}.__class__\n"
            f"        if check and ({kind} is float and not -_BIG < {var} < _BIG"
            f" or ({kind} is dict or {kind} is list) and _contains({var})):\n"
            "            raise _Inexact\n"
        )
        if placeholder.keys is not None:
            lookup = "record" + "".join(f"[{key!r}]" for key in placeholder.keys)
            lines = f"    try:\n        {var} = {lookup}\n"
            lines += f"    except (KeyError, TypeError):\n        {var} = {missing}\n"
            lines += "    else:\n" + check
            if in_string:
                lines += f"        {var} = _text({var})\n"
        else:
            get = self.bind(placeholder.get)
            found = f"_text({var})" if in_string else var
            lines = f"    {var} = {get}(record, variables)\n"
            lines += f"    if {var} is not MISSING:\n" + check
            lines += f"    {var} = {missing} if {var} is MISSING else {found}\n"
        self.prelude.append(lines)
        return var

    def value(self) -> str:
        item = self.items[self.pos]
        if isinstance(item, _Placeholder):
            self.pos += 1
            return self.placeholder(item, in_string=False)
        if item == "{":
            return self.object()
        if item == "[":
            return self.array()
        if item == '"':
            return self.string()[1]
        start = self.pos
        while self.pos < len(self.items) and self.items[self.pos] not in (",", "]", "}"):
            self.pos += 1
        raw = "".join(str(c) for c in self.items[start : self.pos])
        constant = json.loads(raw)
        if _json(constant) != raw:
            raise _NotCanonical
        return self.bind(constant)

    def string(self) -> tuple[str | None, str]:
        """The string's text if it is constant, and an expression for it."""
        self.pos += 1  # the opening quote
        parts: list[str] = []
        raw: list[str] = []
        constant = True
        while True:
            item = self.items[self.pos]
            self.pos += 1
            if isinstance(item, _Placeholder):
                parts.append(self.bind(self._decode("".join(raw))))
                parts.append(self.placeholder(item, in_string=True))
                raw = []
                constant = False
            elif item == '"':
                break
            elif item == "\\":
                raw.append(item + str(self.items[self.pos]))
                self.pos += 1
            else:
                raw.append(item)
        text = self._decode("".join(raw))
        if constant:
            return text, self.bind(text)
        parts.append(self.bind(text))
        return None, "(" + " + ".join(parts) + ")"

    @staticmethod
    def _decode(raw: str) -> str:
        # A placeholder cannot split an escape: the template was validated as JSON.
        text: str = json.loads(f'"{raw}"')
        if _dumps(text).decode()[1:-1] != raw:
            raise _NotCanonical
        return text

    def object(self) -> str:
        self.pos += 1  # "{"
        keys: set[str] = set()
        entries: list[str] = []
        while self.items[self.pos] != "}":
            key, _ = self.string()
            if key is None or key in keys:
                raise _NotCanonical
            keys.add(key)
            self.pos += 1  # ":"
            entries.append(f"{key!r}: {self.value()}")
            if self.items[self.pos] == ",":
                self.pos += 1
        self.pos += 1  # "}"
        return "{" + ", ".join(entries) + "}"

    def array(self) -> str:
        self.pos += 1  # "["
        elements: list[str] = []
        while self.items[self.pos] != "]":
            elements.append(self.value())
            if self.items[self.pos] == ",":
                self.pos += 1
        self.pos += 1  # "]"
        return "[" + ", ".join(elements) + "]"


# --- the template -------------------------------------------------------------------------------


class InputTemplate:
    """An AWS input template, compiled at construction; ``render`` only fills it in.

    Raises ``TemplateError`` for a template AWS would reject or that could not
    render valid output: longer than 8192 characters, a malformed path
    (``<$.a..b>``, ``<$.a[x]>``, unclosed ``<$.a``), an unknown
    ``<aws.pipes.*>`` name, a JSON template that is not JSON, or
    ``<aws.pipes.event.json>`` used inside text.
    """

    __slots__ = ("_build", "_head", "_is_json", "_placeholders", "_slots", "_text")

    def __init__(self, text: str, *, fast: bool = True) -> None:
        # ``fast=False`` keeps to the text renderer, which tests compare the fast path with.
        if len(text) > MAX_TEMPLATE_LENGTH:
            raise TemplateError(
                MAX_TEMPLATE_LENGTH,
                f"template is {len(text)} characters; the limit is {MAX_TEMPLATE_LENGTH} (as on AWS)",
            )
        self._text = text
        first = text.lstrip(_JSON_WS)[:1]
        if first in ("{", "["):
            is_json = True
            chunks, placeholders = _scan(text, as_json=True)
            _check_json(text, first, placeholders)
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
        self._placeholders = tuple(placeholders)

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
        self._slots = tuple(zip(slots, chunks[1:], strict=True))
        self._build = _FastCompiler(chunks, placeholders).compile() if is_json and fast else None

    @property
    def text(self) -> str:
        """The template as written."""
        return self._text

    @property
    def is_json(self) -> bool:
        """Whether this is a JSON template (its output is always valid, minified JSON)."""
        return self._is_json

    @property
    def reads(self) -> frozenset[str] | None:
        """Top-level keys of the record the template reads; None when it reads the record whole."""
        keys: set[str] = set()
        for placeholder in self._placeholders:
            if placeholder.reads is None:
                return None
            keys |= placeholder.reads
        return frozenset(keys)

    def render(self, record: Any, variables: Mapping[str, Any] | None = None, check: bool = False) -> str:
        """The template filled in from ``record`` and the reserved ``variables``.

        ``variables`` maps reserved names without brackets (``"aws.pipes.pipe-name"``)
        to values; ``aws.pipes.event`` and ``aws.pipes.event.json`` default to
        ``record``. A missing path or variable is not an error. With ``check``,
        ``InexactNumber`` is raised when a value it places may be an integer that
        orjson decoded as a float (see ``pipes.codec``).
        """
        if self._build is not None:
            try:
                return _dumps(self._build(record, variables, check)).decode()
            except orjson.JSONEncodeError:
                pass  # a value orjson cannot write (a huge integer...): the text renderer can
        parts = [self._head]
        for slot, literal in self._slots:
            parts.append(slot(record, variables, check))
            parts.append(literal)
        return "".join(parts)

    def __repr__(self) -> str:
        return f"InputTemplate({self._text!r})"
