"""EventBridge event patterns with AWS's matching semantics, compiled once.

This module is the pattern language: it validates patterns (every mistake is a
``PatternError`` that says where and what) and parses them into a small tree,
with numbers converted, ignore-case operands folded and wildcards turned into
regular expressions up front. ``pipes.pattern_codegen`` then compiles the tree
into one Python function, so matching costs about what a hand-written ``if`` does.

Semantics follow the AWS documentation and, where it is silent, AWS's own
engine (aws/event-ruler); ``docs/filtering.md`` lists every rule and the few
places where we knowingly differ.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any, Final

from pipes.errors import ConfigError
from pipes.pattern_codegen import LeafPattern, NumericRange, ObjectPattern, build_matcher, ip_or_none

__all__ = [
    "MAX_OR_COMBINATIONS",
    "MAX_PATTERNS",
    "MAX_PATTERN_CHARS",
    "NUMERIC_LIMIT",
    "EventFilter",
    "PatternError",
]

MAX_PATTERNS: Final = 5
"""AWS Pipes ``FilterCriteria``: at most 5 filters per pipe."""
MAX_PATTERN_CHARS: Final = 4096
"""AWS Pipes ``FilterCriteria``: each filter's JSON text is at most 4096 characters."""
MAX_OR_COMBINATIONS: Final = 1000
"""AWS: a pattern's ``$or`` arms may multiply out to at most 1000 combinations."""
NUMERIC_LIMIT: Final = 5.0e9
"""AWS numeric matching covers -5.0e9 .. +5.0e9 inclusive, to 6 decimal places."""

_NUMERIC_DECIMALS: Final = 6
_MAX_DEPTH: Final = 64  # far beyond any real pattern; keeps compile recursion and codegen bounded
_OPERATORS: Final = frozenset(
    {"prefix", "suffix", "equals-ignore-case", "anything-but", "numeric", "exists", "cidr", "wildcard"}
)
_NUMERIC_OPS: Final = ("=", "<", "<=", ">", ">=")
_SIMPLE_KEY: Final = re.compile(r"[A-Za-z0-9_$@-]+")


class PatternError(ConfigError):
    """An event pattern is invalid. ``str()`` is one line: where in the pattern, then what is wrong.

    ``path`` is the location (``pattern[0].detail.total[0].numeric``), ``reason`` the problem.
    """

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


# --------------------------------------------------------------------------------------------------
# Parsing and validation


def _child_path(path: str, key: str) -> str:
    if _SIMPLE_KEY.fullmatch(key):
        return f"{path}.{key}"
    return f"{path}[{json.dumps(key, ensure_ascii=False)}]"


def _is_number(value: object) -> bool:
    return type(value) is int or type(value) is float


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _load_json(text: str | bytes, path: str) -> Any:
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except ValueError as exc:  # json.JSONDecodeError is a ValueError
        raise PatternError(path, f"invalid JSON: {exc}") from None


def _json_text(pattern: Any) -> str:
    return json.dumps(pattern, ensure_ascii=False, separators=(",", ":"))


class _Parser:
    """Turns one pattern (a decoded JSON object) into an ``ObjectPattern``, raising ``PatternError``."""

    def parse(self, pattern: Any, path: str) -> ObjectPattern:
        if not isinstance(pattern, dict):
            raise PatternError(path, f"a pattern must be a JSON object, not {_kind(pattern)}")
        node = self._object(pattern, path, depth=0, in_or=False)
        combos = node.combinations()
        if combos > MAX_OR_COMBINATIONS:
            raise PatternError(
                path, f"$or expands to {combos} combinations; at most {MAX_OR_COMBINATIONS} are allowed"
            )
        return node

    def _object(self, obj: dict[Any, Any], path: str, depth: int, in_or: bool) -> ObjectPattern:
        if depth > _MAX_DEPTH:
            raise PatternError(path, f"pattern is nested more than {_MAX_DEPTH} levels deep")
        if not obj:
            raise PatternError(path, "empty objects are not allowed")
        node = ObjectPattern()
        for key, value in obj.items():
            if not isinstance(key, str):
                raise PatternError(path, f"field names must be strings, not {_kind(key)}")
            here = _child_path(path, key)
            if key == "$or":
                node.alternatives = self._or(value, here, depth)
                continue
            if in_or and key in _OPERATORS:
                raise PatternError(here, f"{key!r} is an operator and cannot be a field name inside $or")
            if isinstance(value, dict):
                node.fields.append((key, self._object(value, here, depth + 1, in_or)))
            elif isinstance(value, list):
                node.fields.append((key, self._leaf(value, here)))
            else:
                raise PatternError(
                    here,
                    f"must be an object or an array of values, not {_kind(value)} (write [{_short(value)}])",
                )
        return node

    def _or(self, value: Any, path: str, depth: int) -> list[ObjectPattern]:
        if not isinstance(value, list):
            raise PatternError(path, f"$or must be an array of objects, not {_kind(value)}")
        if len(value) < 2:
            raise PatternError(path, f"$or needs at least 2 objects, got {len(value)}")
        arms = []
        for i, arm in enumerate(value):
            here = f"{path}[{i}]"
            if not isinstance(arm, dict):
                raise PatternError(here, f"each $or entry must be an object, not {_kind(arm)}")
            arms.append(self._object(arm, here, depth + 1, in_or=True))
        return arms

    def _leaf(self, values: list[Any], path: str) -> LeafPattern:
        if not values:
            raise PatternError(path, "empty arrays are not allowed")
        leaf = LeafPattern()
        for i, value in enumerate(values):
            here = f"{path}[{i}]"
            if value is None:
                leaf.null = True
            elif value is True:
                leaf.true = True
            elif value is False:
                leaf.false = True
            elif isinstance(value, str):
                leaf.strings.add(value)
                ip = ip_or_none(value)
                if ip is not None:
                    # AWS treats an IP-address literal as that address, whatever its spelling.
                    leaf.ip_equals.append((ip[0], ip[1], ip[1]))
            elif _is_number(value):
                _finite(value, here)
                leaf.numbers.add(value)
            elif isinstance(value, dict):
                self._operator(value, here, leaf)
            else:
                raise PatternError(
                    here,
                    f"a value must be a string, number, true, false, null or an operator object, not {_kind(value)}",
                )
        return leaf

    def _operator(self, obj: dict[str, Any], path: str, leaf: LeafPattern) -> None:
        if len(obj) != 1:
            what = "an empty object" if not obj else f"{len(obj)} keys ({', '.join(map(repr, obj))})"
            raise PatternError(path, f"an operator object has exactly one key, got {what}")
        ((name, operand),) = obj.items()
        here = _child_path(path, name)
        if name == "prefix":
            if isinstance(operand, dict):
                leaf.prefixes_ignore_case.append(_ignore_case_operand(operand, here).lower())
            else:
                leaf.prefixes.append(_string(operand, here, "prefix"))
        elif name == "suffix":
            if isinstance(operand, dict):
                leaf.suffixes_ignore_case.append(_ignore_case_operand(operand, here).lower())
            else:
                leaf.suffixes.append(_string(operand, here, "suffix"))
        elif name == "equals-ignore-case":
            leaf.ignore_case.add(_string(operand, here, "equals-ignore-case").lower())
        elif name == "wildcard":
            leaf.wildcards.append(_wildcard_regex(_string(operand, here, "wildcard"), here))
        elif name == "numeric":
            leaf.ranges.append(_numeric(operand, here))
        elif name == "exists":
            if operand is True:
                leaf.exists_true = True
            elif operand is False:
                leaf.exists_false = True
            else:
                raise PatternError(here, f"exists takes true or false, not {_short(operand)}")
        elif name == "cidr":
            leaf.cidrs.append(_cidr(operand, here))
        elif name == "anything-but":
            leaf.anything_but.append(_anything_but(operand, here))
        else:
            known = ", ".join(sorted(_OPERATORS))
            raise PatternError(here, f"unknown operator {name!r} (known: {known})")


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _short(value: object) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _finite(value: float, path: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise PatternError(path, f"{value} is not a JSON number")


def _string(operand: Any, path: str, operator: str) -> str:
    if not isinstance(operand, str):
        raise PatternError(path, f"{operator} takes a string, not {_kind(operand)}")
    return operand


def _ignore_case_operand(operand: dict[str, Any], path: str) -> str:
    if list(operand) != ["equals-ignore-case"]:
        raise PatternError(path, 'the only object allowed here is {"equals-ignore-case": "..."}')
    return _string(
        operand["equals-ignore-case"], _child_path(path, "equals-ignore-case"), "equals-ignore-case"
    )


def _limited_number(value: Any, path: str, what: str) -> float:
    """A numeric-comparison operand: a JSON number within AWS's range and precision."""
    if not _is_number(value):
        raise PatternError(path, f"{what} must be a number, not {_kind(value)}")
    _finite(value, path)
    if not -NUMERIC_LIMIT <= value <= NUMERIC_LIMIT:
        raise PatternError(path, f"{value} is outside the numeric range -5.0e9 .. 5.0e9")
    exponent = Decimal(repr(value)).normalize().as_tuple().exponent
    if isinstance(exponent, int) and exponent < -_NUMERIC_DECIMALS:
        raise PatternError(path, f"{value} has more than {_NUMERIC_DECIMALS} decimal places")
    return float(value)


def _numeric(operand: Any, path: str) -> NumericRange:
    if not isinstance(operand, list) or not operand:
        raise PatternError(
            path, f'numeric takes a non-empty array such as [">", 0, "<=", 5], not {_short(operand)}'
        )
    if len(operand) not in (2, 4):
        raise PatternError(
            path, f"numeric takes one comparison or a two-sided range (2 or 4 items), got {len(operand)}"
        )
    op = operand[0]
    if op not in _NUMERIC_OPS:
        raise PatternError(f"{path}[0]", f"unknown numeric operator {_short(op)} (use =, <, <=, >, >=)")
    value = _limited_number(operand[1], f"{path}[1]", f"the operand of {op!r}")
    if len(operand) == 2:
        if op == "=":
            return NumericRange(value, True, value, True)
        if op in ("<", "<="):
            if value <= -NUMERIC_LIMIT:
                raise PatternError(f"{path}[1]", f"nothing is {op} {operand[1]}: numbers start at -5.0e9")
            return NumericRange(-NUMERIC_LIMIT, True, value, op == "<=")
        if value >= NUMERIC_LIMIT:
            raise PatternError(f"{path}[1]", f"nothing is {op} {operand[1]}: numbers end at 5.0e9")
        return NumericRange(value, op == ">=", NUMERIC_LIMIT, True)
    if op not in (">", ">="):
        raise PatternError(f"{path}[0]", f"a two-sided range starts with > or >=, not {op!r}")
    op2 = operand[2]
    if op2 not in ("<", "<="):
        raise PatternError(f"{path}[2]", f"a two-sided range continues with < or <=, not {_short(op2)}")
    top = _limited_number(operand[3], f"{path}[3]", f"the operand of {op2!r}")
    if value >= top:
        raise PatternError(path, f"the lower bound {operand[1]} must be below the upper bound {operand[3]}")
    return NumericRange(value, op == ">=", top, op2 == "<=")


def _wildcard_regex(text: str, path: str) -> str:
    """The regular expression of an AWS wildcard; validates AWS's escaping rules."""
    parts: list[str] = []
    last_star = False
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\":
            if i + 1 >= len(text) or text[i + 1] not in "*\\":
                raise PatternError(path, r"a backslash must escape * or \ (write \* or \\)")
            parts.append(re.escape(text[i + 1]))
            last_star = False
            i += 2
            continue
        if char == "*":
            if last_star:
                raise PatternError(path, "consecutive wildcard characters (**) are not allowed")
            parts.append(".*")
            last_star = True
        else:
            parts.append(re.escape(char))
            last_star = False
        i += 1
    return "".join(parts)


def _cidr(operand: Any, path: str) -> tuple[int, int, int]:
    """(IP version, first address, last address) of a block, the way AWS's engine reads it.

    The block starts at the address as written, not at the network address (``10.0.0.7/24``
    covers 10.0.0.7 to 10.0.0.255), and the prefix length is below 32 (IPv4) or 128 (IPv6):
    a single address is matched by writing the address itself as a value.
    """
    text = _string(operand, path, "cidr")
    address, slash, length = text.partition("/")
    if not slash or "/" in length:
        raise PatternError(path, f"{text!r} is not a CIDR block (write it as address/prefix-length)")
    ip = ip_or_none(address)
    if ip is None:
        raise PatternError(path, f"{text!r} is not a CIDR block: {address!r} is not an IP address")
    version, first = ip
    bits = 32 if version == 4 else 128
    if not length.isascii() or not length.isdigit() or int(length) >= bits:
        raise PatternError(path, f"{text!r} is not a CIDR block: the prefix length must be 0 to {bits - 1}")
    host_mask = (1 << (bits - int(length))) - 1
    return version, first, first | host_mask


def _anything_but(operand: Any, path: str) -> tuple[str, Any]:
    if isinstance(operand, dict):
        if len(operand) != 1:
            raise PatternError(path, "anything-but takes one of prefix, suffix, equals-ignore-case, wildcard")
        ((name, inner),) = operand.items()
        here = _child_path(path, name)
        if name not in ("prefix", "suffix", "equals-ignore-case", "wildcard"):
            raise PatternError(
                here,
                f"anything-but does not support {name!r} (use prefix, suffix, equals-ignore-case or wildcard)",
            )
        items = inner if isinstance(inner, list) else [inner]
        if not items:
            raise PatternError(here, "empty arrays are not allowed")
        texts = [
            _string(item, f"{here}[{i}]" if isinstance(inner, list) else here, name)
            for i, item in enumerate(items)
        ]
        if name in ("prefix", "suffix") and "" in texts:
            raise PatternError(here, f"an anything-but {name} cannot be empty")
        if name == "equals-ignore-case":
            return name, frozenset(t.lower() for t in texts)
        if name == "wildcard":
            return name, "|".join(f"(?:{_wildcard_regex(t, here)})" for t in texts)
        return name, tuple(texts)
    items = operand if isinstance(operand, list) else [operand]
    if not items:
        raise PatternError(path, "empty arrays are not allowed")
    strings = [item for item in items if isinstance(item, str)]
    numbers = [item for item in items if _is_number(item)]
    if len(strings) + len(numbers) != len(items):
        bad = next(item for item in items if not isinstance(item, str) and not _is_number(item))
        raise PatternError(path, f"anything-but takes strings or numbers, not {_kind(bad)}")
    if strings and numbers:
        raise PatternError(path, "an anything-but list must be all strings or all numbers")
    if numbers:
        where = (f"{path}[{i}]" if isinstance(operand, list) else path for i in range(len(numbers)))
        return "numbers", frozenset(
            _limited_number(n, w, "an anything-but number") for n, w in zip(numbers, where, strict=True)
        )
    return "strings", frozenset(strings)


# --------------------------------------------------------------------------------------------------
# Public API


class EventFilter:
    """A compiled set of EventBridge event patterns; a record passes when any pattern matches it.

    ``matches`` is a plain function stored on the instance (no bound-method cost per event):
    ``EventFilter.compile(patterns).matches(record) -> bool``. It never raises for any record.
    """

    __slots__ = ("has_wide_numbers", "matches", "patterns", "reads")

    matches: Callable[[Any], bool]
    patterns: tuple[dict[str, Any], ...]
    #: Top-level keys of the record the patterns look at.
    reads: frozenset[str]
    #: Whether a pattern names an integer a float cannot hold exactly (beyond 2**53).
    has_wide_numbers: bool

    def __init__(
        self,
        patterns: tuple[dict[str, Any], ...],
        matches: Callable[[Any], bool],
        roots: Iterable[ObjectPattern] = (),
    ) -> None:
        self.patterns = patterns
        self.matches = matches
        roots = list(roots)
        self.reads = frozenset(key for root in roots for key in _top_keys(root))
        self.has_wide_numbers = any(_wide_numbers(root) for root in roots)

    @classmethod
    def compile(
        cls, patterns: Iterable[dict[str, Any] | str | bytes] | dict[str, Any] | str | bytes
    ) -> EventFilter:
        """Validate and compile ``patterns``: pattern objects or their JSON text, OR between them.

        A single pattern (object or JSON text) is accepted too. An empty list filters nothing
        out, as an empty AWS ``FilterCriteria`` does. Raises ``PatternError`` saying where and
        what for any invalid pattern, and for more than 5 patterns or a pattern whose JSON text
        exceeds 4096 characters (AWS Pipes limits).
        """
        if isinstance(patterns, dict | str | bytes):
            items: list[Any] = [patterns]
        else:
            try:
                items = list(patterns)
            except TypeError:
                raise PatternError("filter", f"expected a list of patterns, not {_kind(patterns)}") from None
        if len(items) > MAX_PATTERNS:
            raise PatternError("filter", f"{len(items)} patterns given; a pipe takes at most {MAX_PATTERNS}")
        parser = _Parser()
        decoded: list[dict[str, Any]] = []
        roots: list[ObjectPattern] = []
        for i, item in enumerate(items):
            path = f"pattern[{i}]"
            if isinstance(item, str | bytes):
                text = item.decode() if isinstance(item, bytes) else item
                pattern = _load_json(text, path)
            else:
                pattern = item
                try:
                    text = _json_text(pattern)
                except (TypeError, ValueError) as exc:
                    raise PatternError(path, f"not JSON data: {exc}") from None
            if len(text) > MAX_PATTERN_CHARS:
                raise PatternError(
                    path,
                    f"the pattern is {len(text)} characters of JSON; at most {MAX_PATTERN_CHARS} are allowed",
                )
            roots.append(parser.parse(pattern, path))
            decoded.append(pattern)
        matches = build_matcher(roots)
        return cls(tuple(decoded), matches, roots)

    def __repr__(self) -> str:
        return f"EventFilter({[_json_text(p) for p in self.patterns]!r})"


def _top_keys(node: ObjectPattern) -> Iterable[str]:
    for key, _ in node.fields:
        yield key
    for alternative in node.alternatives:
        yield from _top_keys(alternative)


_EXACT_FLOAT_LIMIT: Final = 2**53


def _wide_numbers(node: ObjectPattern | LeafPattern) -> bool:
    if isinstance(node, LeafPattern):
        numbers = list(node.numbers)
        for kind, operand in node.anything_but:
            if kind == "numbers":
                numbers.extend(operand)
        return any(type(n) is int and abs(n) > _EXACT_FLOAT_LIMIT for n in numbers)
    return any(_wide_numbers(child) for _, child in node.fields) or any(
        _wide_numbers(alt) for alt in node.alternatives
    )
