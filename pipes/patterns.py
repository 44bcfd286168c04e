"""EventBridge event patterns with AWS's matching semantics, compiled once.

A pattern is validated and parsed into a small tree (``_Object`` / ``_Leaf``),
then turned into the source text of one Python function that tests a record
with plain ``dict.get``, ``==``, set membership and float comparisons, and
``exec``-ed once. Matching therefore never walks the pattern JSON, never parses
a number and calls no per-operator closures on the common paths; this is what
lets a filter keep up with a hand-written ``if`` (see ``bench/bench_patterns.py``).
Every value of the pattern reaches the generated code either as a ``repr`` of a
``str``/``float``/``int`` (always a valid literal) or as a named constant, so a
pattern cannot inject code.

Semantics follow the AWS documentation and, where it is silent, AWS's own
engine (aws/event-ruler); ``docs/filtering.md`` lists every rule and the few
places where we knowingly differ.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

from pipes.errors import ConfigError

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
_INLINE_DEPTH: Final = 12  # nested objects deeper than this are called, not inlined (indentation limits)
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
# Parsed form


@dataclass(frozen=True, slots=True)
class _Range:
    low: float
    low_inclusive: bool
    high: float
    high_inclusive: bool


@dataclass(slots=True)
class _Leaf:
    """The OR of everything one field's value list allows."""

    strings: set[str] = field(default_factory=set)
    numbers: set[float] = field(default_factory=set)
    true: bool = False
    false: bool = False
    null: bool = False
    ip_equals: list[tuple[int, int, int]] = field(default_factory=list)
    prefixes: list[str] = field(default_factory=list)
    suffixes: list[str] = field(default_factory=list)
    ignore_case: set[str] = field(default_factory=set)
    prefixes_ignore_case: list[str] = field(default_factory=list)
    suffixes_ignore_case: list[str] = field(default_factory=list)
    wildcards: list[str] = field(default_factory=list)
    ranges: list[_Range] = field(default_factory=list)
    cidrs: list[tuple[int, int, int]] = field(default_factory=list)
    # Each anything-but is its own alternative: (kind, operands).
    anything_but: list[tuple[str, Any]] = field(default_factory=list)
    exists_true: bool = False
    exists_false: bool = False

    @property
    def matches_absent(self) -> bool:
        return self.exists_false


@dataclass(slots=True)
class _Object:
    """The AND of its fields, and of one OR (``$or``) over alternative objects at the same level."""

    fields: list[tuple[str, _Object | _Leaf]] = field(default_factory=list)
    alternatives: list[_Object] = field(default_factory=list)

    @property
    def matches_absent(self) -> bool:
        """Whether the object matches where none of its fields is present (only ``exists: false``)."""
        if not all(node.matches_absent for _, node in self.fields):
            return False
        return not self.alternatives or any(alt.matches_absent for alt in self.alternatives)

    def combinations(self) -> int:
        """How many AND-only rules the ``$or`` arms expand to (AWS caps this at 1000)."""
        total = 1
        for _, node in self.fields:
            if isinstance(node, _Object):
                total *= node.combinations()
        if self.alternatives:
            total *= sum(alt.combinations() for alt in self.alternatives)
        return total


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
    """Turns one pattern (a decoded JSON object) into an ``_Object``, raising ``PatternError``."""

    def parse(self, pattern: Any, path: str) -> _Object:
        if not isinstance(pattern, dict):
            raise PatternError(path, f"a pattern must be a JSON object, not {_kind(pattern)}")
        node = self._object(pattern, path, depth=0, in_or=False)
        combos = node.combinations()
        if combos > MAX_OR_COMBINATIONS:
            raise PatternError(
                path, f"$or expands to {combos} combinations; at most {MAX_OR_COMBINATIONS} are allowed"
            )
        return node

    def _object(self, obj: dict[Any, Any], path: str, depth: int, in_or: bool) -> _Object:
        if depth > _MAX_DEPTH:
            raise PatternError(path, f"pattern is nested more than {_MAX_DEPTH} levels deep")
        if not obj:
            raise PatternError(path, "empty objects are not allowed")
        node = _Object()
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

    def _or(self, value: Any, path: str, depth: int) -> list[_Object]:
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

    def _leaf(self, values: list[Any], path: str) -> _Leaf:
        if not values:
            raise PatternError(path, "empty arrays are not allowed")
        leaf = _Leaf()
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
                ip = _ip_or_none(value)
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

    def _operator(self, obj: dict[str, Any], path: str, leaf: _Leaf) -> None:
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


def _numeric(operand: Any, path: str) -> _Range:
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
            return _Range(value, True, value, True)
        if op in ("<", "<="):
            return _Range(-NUMERIC_LIMIT, True, value, op == "<=")
        return _Range(value, op == ">=", NUMERIC_LIMIT, True)
    if op not in (">", ">="):
        raise PatternError(f"{path}[0]", f"a two-sided range starts with > or >=, not {op!r}")
    op2 = operand[2]
    if op2 not in ("<", "<="):
        raise PatternError(f"{path}[2]", f"a two-sided range continues with < or <=, not {_short(op2)}")
    top = _limited_number(operand[3], f"{path}[3]", f"the operand of {op2!r}")
    if value >= top:
        raise PatternError(path, f"the lower bound {operand[1]} must be below the upper bound {operand[3]}")
    return _Range(value, op == ">=", top, op2 == "<=")


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


def _ip_or_none(text: str) -> tuple[int, int] | None:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    return address.version, int(address)


def _cidr(operand: Any, path: str) -> tuple[int, int, int]:
    text = _string(operand, path, "cidr")
    if "/" not in text:
        raise PatternError(path, f"{text!r} is not a CIDR block (write it as address/prefix-length)")
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError as exc:
        raise PatternError(path, f"{text!r} is not a CIDR block: {exc}") from None
    return network.version, int(network.network_address), int(network.broadcast_address)


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
# Matching helpers the generated code calls off its fast paths


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Final = _Missing()
_NOT_SCALAR: Final = frozenset({list, dict, _Missing})


def _leaves(value: list[Any], test: Callable[[Any], bool], absent_ok: bool) -> bool:
    """A leaf condition against an array: any element value matching wins; no values at all is absence."""
    seen = False
    stack = [value]
    while stack:
        for item in stack.pop():
            kind = type(item)
            if kind is list:
                stack.append(item)
            elif kind is not dict:
                if test(item):
                    return True
                seen = True
    return absent_ok and not seen


def _any_object(test: Callable[[dict[str, Any]], bool], value: list[Any]) -> bool:
    """A nested pattern against an array: some object element must match it as a whole."""
    for item in value:
        if type(item) is dict:
            if test(item):
                return True
        elif type(item) is list and _any_object(test, item):
            return True
    return False


def _every_object(test: Callable[[dict[str, Any]], bool], value: list[Any]) -> bool:
    """A nested pattern of absences against an array: the fields must be absent from every element."""
    for item in value:
        if type(item) is dict:
            if not test(item):
                return False
        elif type(item) is list and not _every_object(test, item):
            return False
    return True


@functools.lru_cache(maxsize=4096)
def _event_ip(text: str) -> tuple[int, int] | None:
    return _ip_or_none(text)


def _ip_test(ranges: Sequence[tuple[int, int, int]]) -> Callable[[str], bool]:
    blocks = tuple(ranges)

    def test(text: str) -> bool:
        ip = _event_ip(text)
        if ip is None:
            return False
        version, number = ip
        return any(v == version and low <= number <= high for v, low, high in blocks)

    return test


# --------------------------------------------------------------------------------------------------
# Code generation


class _Codegen:
    """Writes the source of the match functions; constants go to ``namespace`` under generated names."""

    def __init__(self) -> None:
        self.namespace: dict[str, Any] = {
            "_M": _MISSING,
            "_NS": _NOT_SCALAR,
            "_leaves": _leaves,
            "_any": _any_object,
            "_every": _every_object,
        }
        self.functions: list[str] = []
        self._counter = 0
        # One function per node, however many ancestors inline it (ids are stable: the tree outlives us).
        self._made: dict[int, str] = {}

    def name(self, prefix: str) -> str:
        self._counter += 1
        return f"{prefix}{self._counter}"

    def const(self, value: object) -> str:
        if isinstance(value, str) or (type(value) is float and math.isfinite(value)) or type(value) is int:
            return repr(value)
        name = self.name("_c")
        self.namespace[name] = value
        return name

    # -- leaves ----------------------------------------------------------------------------------

    def scalar_test(self, leaf: _Leaf, x: str) -> str:
        """An expression true when ``x`` is a scalar (not list, dict or missing) that ``leaf`` allows.

        Most terms are false for non-scalars by construction; the few that are not (``exists: true``
        and anything-but, which match by default) sit behind one ``type(x) not in _NS`` guard.
        """
        terms: list[str] = []
        guarded: list[str] = []
        if len(leaf.strings) == 1:
            terms.append(f"{x} == {self.const(next(iter(leaf.strings)))}")
        elif leaf.strings:
            terms.append(f"(type({x}) is str and {x} in {self.const(frozenset(leaf.strings))})")
        is_number = f"(type({x}) is float or type({x}) is int)"
        if len(leaf.numbers) == 1:
            terms.append(f"({is_number} and {x} == {self.const(next(iter(leaf.numbers)))})")
        elif leaf.numbers:
            terms.append(f"({is_number} and {x} in {self.const(frozenset(leaf.numbers))})")
        if leaf.true:
            terms.append(f"{x} is True")
        if leaf.false:
            terms.append(f"{x} is False")
        if leaf.null:
            terms.append(f"{x} is None")
        if leaf.prefixes:
            terms.append(f"(type({x}) is str and {x}.startswith({self.const(tuple(leaf.prefixes))}))")
        if leaf.suffixes:
            terms.append(f"(type({x}) is str and {x}.endswith({self.const(tuple(leaf.suffixes))}))")
        if leaf.ignore_case:
            terms.append(f"(type({x}) is str and {x}.lower() in {self.const(frozenset(leaf.ignore_case))})")
        if leaf.prefixes_ignore_case:
            folded = self.const(tuple(leaf.prefixes_ignore_case))
            terms.append(f"(type({x}) is str and {x}.lower().startswith({folded}))")
        if leaf.suffixes_ignore_case:
            folded = self.const(tuple(leaf.suffixes_ignore_case))
            terms.append(f"(type({x}) is str and {x}.lower().endswith({folded}))")
        if leaf.wildcards:
            pattern = "|".join(f"(?:{w})" for w in leaf.wildcards)
            matcher = self.const(re.compile(pattern, re.DOTALL).fullmatch)
            terms.append(f"(type({x}) is str and {matcher}({x}) is not None)")
        for r in leaf.ranges:
            low = f"{self.const(r.low)} {'<=' if r.low_inclusive else '<'} {x}"
            high = f"{'<=' if r.high_inclusive else '<'} {self.const(r.high)}"
            terms.append(f"({is_number} and {low} {high})")
        if leaf.cidrs or leaf.ip_equals:
            test = self.const(_ip_test(leaf.cidrs + leaf.ip_equals))
            terms.append(f"(type({x}) is str and {test}({x}))")
        for kind, operand in leaf.anything_but:
            guarded.append(f"not {self._excluded(kind, operand, x)}")
        if leaf.exists_true:
            guarded = ["True"]
        if guarded:
            terms.append(f"(type({x}) not in _NS and ({' or '.join(guarded)}))")
        return " or ".join(terms) if terms else "False"

    def _excluded(self, kind: str, operand: Any, x: str) -> str:
        if kind == "strings":
            return f"(type({x}) is str and {x} in {self.const(operand)})"
        if kind == "numbers":
            return f"((type({x}) is float or type({x}) is int) and {x} in {self.const(operand)})"
        if kind == "prefix":
            return f"(type({x}) is str and {x}.startswith({self.const(operand)}))"
        if kind == "suffix":
            return f"(type({x}) is str and {x}.endswith({self.const(operand)}))"
        if kind == "equals-ignore-case":
            return f"(type({x}) is str and {x}.lower() in {self.const(operand)})"
        matcher = self.const(re.compile(operand, re.DOTALL).fullmatch)
        return f"(type({x}) is str and {matcher}({x}) is not None)"

    def leaf_function(self, leaf: _Leaf) -> str:
        if id(leaf) in self._made:
            return self._made[id(leaf)]
        name = self._made[id(leaf)] = self.name("_s")
        expression = self.scalar_test(leaf, "x")
        self.functions.append(f"def {name}(x):\n    return {expression}\n")
        return name

    def leaf_lines(self, leaf: _Leaf, value: str, indent: str) -> list[str]:
        """Statements that ``return False`` unless the value bound to ``value`` satisfies ``leaf``."""
        expression = self.scalar_test(leaf, value)
        in_list = f"_leaves({value}, {self.leaf_function(leaf)}, {leaf.matches_absent})"
        lines = [f"{indent}if not ({expression}):"]
        if leaf.matches_absent:
            lines += [
                f"{indent}    if type({value}) is list:",
                f"{indent}        if not {in_list}:",
                f"{indent}            return False",
                f"{indent}    elif {value} is not _M and type({value}) is not dict:",
                f"{indent}        return False",
            ]
        else:
            lines += [
                f"{indent}    if type({value}) is not list or not {in_list}:",
                f"{indent}        return False",
            ]
        return lines

    # -- objects ---------------------------------------------------------------------------------

    def object_function(self, node: _Object) -> str:
        """A function ``f(d) -> bool`` for a dict ``d``; reused for array elements and ``$or`` arms."""
        if id(node) in self._made:
            return self._made[id(node)]
        name = self._made[id(node)] = self.name("_o")
        lines = [f"def {name}(d):", *self.object_lines(node, "d", "    ", depth=0), "    return True"]
        self.functions.append("\n".join(lines) + "\n")
        return name

    def object_lines(self, node: _Object, obj: str, indent: str, depth: int) -> list[str]:
        """Statements that ``return False`` unless the dict bound to ``obj`` satisfies ``node``."""
        lines: list[str] = []
        for key, child in node.fields:
            value = self.name("v")
            lines.append(f"{indent}{value} = {obj}.get({self.const(key)}, _M)")
            if isinstance(child, _Leaf):
                lines += self.value_leaf(child, value, indent)
            else:
                lines += self.value_object(child, value, indent, depth)
        if node.alternatives:
            arms = " or ".join(f"{self.object_function(arm)}({obj})" for arm in node.alternatives)
            lines += [f"{indent}if not ({arms}):", f"{indent}    return False"]
        return lines

    def value_leaf(self, leaf: _Leaf, value: str, indent: str) -> list[str]:
        return self.leaf_lines(leaf, value, indent)

    def value_object(self, node: _Object, value: str, indent: str, depth: int) -> list[str]:
        """Statements for a nested pattern object against whatever the event holds at that key."""
        function = self.object_function(node)
        if depth < _INLINE_DEPTH:
            body = self.object_lines(node, value, indent + "    ", depth + 1) or [f"{indent}    pass"]
        else:
            body = [f"{indent}    if not {function}({value}):", f"{indent}        return False"]
        lines = [f"{indent}if type({value}) is dict:", *body, f"{indent}elif type({value}) is list:"]
        if node.matches_absent:
            lines += [f"{indent}    if not _every({function}, {value}):", f"{indent}        return False"]
        else:
            lines += [
                f"{indent}    if not _any({function}, {value}):",
                f"{indent}        return False",
                f"{indent}else:",
                f"{indent}    return False",
            ]
        return lines

    def root_function(self, node: _Object) -> str:
        """``match(record)``: the record itself is the outermost object."""
        name = self.name("_p")
        lines = [f"def {name}(r):", *self.value_object(node, "r", "    ", depth=0), "    return True"]
        self.functions.append("\n".join(lines) + "\n")
        return name

    def build(self, roots: Sequence[_Object]) -> Callable[[Any], bool]:
        names = [self.root_function(node) for node in roots]
        if len(names) == 1:
            entry = names[0]
        else:
            entry = self.name("_any_pattern")
            self.functions.append(f"def {entry}(r):\n    return {' or '.join(f'{n}(r)' for n in names)}\n")
        source = "\n".join(self.functions)
        namespace = dict(self.namespace)
        exec(compile(source, "<event-pattern>", "exec"), namespace)
        function: Callable[[Any], bool] = namespace[entry]
        function.__source__ = source  # type: ignore[attr-defined]
        return function


def _match_all(record: Any) -> bool:
    return True


# --------------------------------------------------------------------------------------------------
# Public API


class EventFilter:
    """A compiled set of EventBridge event patterns; a record passes when any pattern matches it.

    ``matches`` is a plain function stored on the instance (no bound-method cost per event):
    ``EventFilter.compile(patterns).matches(record) -> bool``. It never raises for any record.
    """

    __slots__ = ("matches", "patterns")

    matches: Callable[[Any], bool]
    patterns: tuple[dict[str, Any], ...]

    def __init__(self, patterns: tuple[dict[str, Any], ...], matches: Callable[[Any], bool]) -> None:
        self.patterns = patterns
        self.matches = matches

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
        roots: list[_Object] = []
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
        matches = _Codegen().build(roots) if roots else _match_all
        return cls(tuple(decoded), matches)

    def __repr__(self) -> str:
        return f"EventFilter({[_json_text(p) for p in self.patterns]!r})"
