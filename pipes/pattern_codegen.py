"""Compiles a parsed event pattern into one generated Python function.

The tree (``ObjectPattern`` / ``LeafPattern``, built and validated by
``pipes.patterns``) becomes the source text of a function that tests a record
with plain ``dict.get``, ``==``, set membership and float comparisons, ``exec``-ed
once. Matching therefore never walks the pattern JSON, never parses a number and
calls no per-operator closures on the common paths; this is what lets a filter
keep up with a hand-written ``if`` (``bench/bench_patterns.py``).

Every pattern value reaches the generated code either as the ``repr`` of a
``str``/``float``/``int`` (always a valid literal) or as a named constant in the
function's namespace, so a pattern cannot inject code.
"""

from __future__ import annotations

import functools
import ipaddress
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import CodeType
from typing import Any, Final

__all__ = ["LeafPattern", "NumericRange", "ObjectPattern", "build_matcher", "ip_or_none", "match_all"]

_INLINE_DEPTH: Final = 12  # nested objects deeper than this are called, not inlined (indentation limits)

# --------------------------------------------------------------------------------------------------
# Parsed form (built by pipes.patterns)


@dataclass(frozen=True, slots=True)
class NumericRange:
    low: float
    low_inclusive: bool
    high: float
    high_inclusive: bool


@dataclass(slots=True)
class LeafPattern:
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
    ranges: list[NumericRange] = field(default_factory=list)
    cidrs: list[tuple[int, int, int]] = field(default_factory=list)
    # Each anything-but is its own alternative: (kind, operands).
    anything_but: list[tuple[str, Any]] = field(default_factory=list)
    exists_true: bool = False
    exists_false: bool = False

    @property
    def matches_absent(self) -> bool:
        return self.exists_false


@dataclass(slots=True)
class ObjectPattern:
    """The AND of its fields, and of one OR (``$or``) over alternative objects at the same level."""

    fields: list[tuple[str, ObjectPattern | LeafPattern]] = field(default_factory=list)
    alternatives: list[ObjectPattern] = field(default_factory=list)

    @property
    def matches_absent(self) -> bool:
        """Whether the object matches where none of its fields is present (only ``exists: false``)."""
        if not all(node.matches_absent for _, node in self.fields):
            return False
        return not self.alternatives or any(alt.matches_absent for alt in self.alternatives)

    def conjunctions(self) -> list[ObjectPattern]:
        """This level's ``$or`` multiplied out: objects without alternatives, ORed.

        Inside an array of objects each must be judged on its own: one that needs a value
        present is met by a single element, one made only of absences by every element.
        """
        if not self.alternatives:
            return [self]
        return [
            ObjectPattern(fields=self.fields + conjunction.fields)
            for arm in self.alternatives
            for conjunction in arm.conjunctions()
        ]

    def combinations(self) -> int:
        """How many AND-only rules the ``$or`` arms expand to (AWS caps this at 1000)."""
        total = 1
        for _, node in self.fields:
            if isinstance(node, ObjectPattern):
                total *= node.combinations()
        if self.alternatives:
            total *= sum(alt.combinations() for alt in self.alternatives)
        return total


def ip_or_none(text: str) -> tuple[int, int] | None:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    return address.version, int(address)


# --------------------------------------------------------------------------------------------------
# Matching helpers the generated code calls off its fast paths


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Final = _Missing()
_SCALARS: Final = frozenset({str, int, float, bool, type(None)})
"""Types of JSON leaf values as decoding produces them; the generated fast paths test these."""
_SETTLED: Final = _SCALARS | {dict, _Missing}
"""Non-list types whose leaf result the fast path has already decided."""
_JSON: Final = _SETTLED | {list}


def _plain(value: Any) -> Any:
    """The JSON type a value stands for: a record from Python code may hold tuples, dict
    subclasses or str/int/float subclasses (enums); decoded JSON never does, so this is off the hot path."""
    if isinstance(value, bool | None):
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, list | tuple):
        return list(value)
    return value  # anything else is an opaque value: present, but equal to no pattern value


def _leaves(value: Any, test: Callable[[Any], bool], absent_ok: bool) -> bool:
    """A leaf condition against a value the fast path did not settle: an array (any element value
    matching wins; no values at all is absence) or a value of a non-JSON type."""
    if type(value) not in _JSON:
        value = _plain(value)
    if type(value) is not list:
        if type(value) is dict or value is _MISSING:
            return absent_ok
        return test(value) if type(value) in _SCALARS else False
    seen = False
    stack = [value]
    while stack:
        for item in stack.pop():
            if type(item) not in _JSON:
                item = _plain(item)
            kind = type(item)
            if kind is list:
                stack.append(item)
            elif kind is not dict:
                if kind in _SCALARS and test(item):
                    return True
                seen = True
    return absent_ok and not seen


def _any_object(test: Callable[[dict[str, Any]], bool], value: list[Any]) -> bool:
    """A nested pattern against an array: some object element must match it as a whole."""
    for item in value:
        if type(item) not in _JSON:
            item = _plain(item)
        if type(item) is dict:
            if test(item):
                return True
        elif type(item) is list and _any_object(test, item):
            return True
    return False


def _every_object(test: Callable[[dict[str, Any]], bool], value: list[Any]) -> bool:
    """A nested pattern of absences against an array: the fields must be absent from every element."""
    for item in value:
        if type(item) not in _JSON:
            item = _plain(item)
        if type(item) is dict:
            if not test(item):
                return False
        elif type(item) is list and not _every_object(test, item):
            return False
    return True


def _object_at(
    test: Callable[[dict[str, Any]], bool], in_list: Callable[[list[Any]], bool], value: Any, absent_ok: bool
) -> bool:
    """A nested pattern against a value of a non-JSON type (a Mapping, a tuple...)."""
    value = _plain(value)
    if type(value) is dict:
        return test(value)
    if type(value) is list:
        return in_list(value)
    return absent_ok


@functools.lru_cache(maxsize=4096)
def _event_ip(text: str) -> tuple[int, int] | None:
    return ip_or_none(text)


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
            "_SC": _SCALARS,
            "_SETTLED": _SETTLED,
            "_JSON": _JSON,
            "_object_at": _object_at,
            "_leaves": _leaves,
            "_any": _any_object,
            "_every": _every_object,
        }
        self.functions: list[str] = []
        self._counter = 0
        # One function per node, however many ancestors inline it (ids are stable: the tree outlives us).
        self._made: dict[int | tuple[str, int], str] = {}
        self._alive: list[ObjectPattern] = []  # nodes made here stay alive, so their ids stay unique

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

    def scalar_test(self, leaf: LeafPattern, x: str) -> str:
        """An expression true when ``x`` is a scalar (not list, dict or missing) that ``leaf`` allows.

        Most terms are false for non-scalars by construction; the few that are not (``exists: true``
        and anything-but, which match by default) sit behind one ``type(x) in _SC`` guard.
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
            terms.append(f"(type({x}) in _SC and ({' or '.join(guarded)}))")
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

    def leaf_function(self, leaf: LeafPattern) -> str:
        if id(leaf) in self._made:
            return self._made[id(leaf)]
        name = self._made[id(leaf)] = self.name("_s")
        expression = self.scalar_test(leaf, "x")
        self.functions.append(f"def {name}(x):\n    return {expression}\n")
        return name

    def leaf_lines(self, leaf: LeafPattern, value: str, indent: str) -> list[str]:
        """Statements that ``return False`` unless the value bound to ``value`` satisfies ``leaf``."""
        expression = self.scalar_test(leaf, value)
        in_list = f"_leaves({value}, {self.leaf_function(leaf)}, {leaf.matches_absent})"
        lines = [f"{indent}if not ({expression}):"]
        settled = f"type({value}) in _SETTLED or not {in_list}"
        if leaf.matches_absent:
            absent = f"{value} is _M or type({value}) is dict"
            lines += [f"{indent}    if not ({absent}) and ({settled}):", f"{indent}        return False"]
        else:
            lines += [f"{indent}    if {settled}:", f"{indent}        return False"]
        return lines

    # -- objects ---------------------------------------------------------------------------------

    def object_function(self, node: ObjectPattern) -> str:
        """A function ``f(d) -> bool`` for a dict ``d``; reused for array elements and ``$or`` arms."""
        if id(node) in self._made:
            return self._made[id(node)]
        name = self._made[id(node)] = self.name("_o")
        lines = [f"def {name}(d):", *self.object_lines(node, "d", "    ", depth=0), "    return True"]
        self.functions.append("\n".join(lines) + "\n")
        return name

    def object_lines(self, node: ObjectPattern, obj: str, indent: str, depth: int) -> list[str]:
        """Statements that ``return False`` unless the dict bound to ``obj`` satisfies ``node``."""
        lines: list[str] = []
        for key, child in node.fields:
            value = self.name("v")
            lines.append(f"{indent}{value} = {obj}.get({self.const(key)}, _M)")
            if isinstance(child, LeafPattern):
                lines += self.value_leaf(child, value, indent)
            else:
                lines += self.value_object(child, value, indent, depth)
        if node.alternatives:
            arms = " or ".join(f"{self.object_function(arm)}({obj})" for arm in node.alternatives)
            lines += [f"{indent}if not ({arms}):", f"{indent}    return False"]
        return lines

    def value_leaf(self, leaf: LeafPattern, value: str, indent: str) -> list[str]:
        return self.leaf_lines(leaf, value, indent)

    def value_object(self, node: ObjectPattern, value: str, indent: str, depth: int) -> list[str]:
        """Statements for a nested pattern object against whatever the event holds at that key."""
        function = self.object_function(node)
        if depth < _INLINE_DEPTH:
            body = self.object_lines(node, value, indent + "    ", depth + 1) or [f"{indent}    pass"]
        else:
            body = [f"{indent}    if not {function}({value}):", f"{indent}        return False"]
        absent_ok = node.matches_absent
        in_list = self.list_function(node)
        lines = [
            f"{indent}if type({value}) is dict:",
            *body,
            f"{indent}elif type({value}) is list:",
            f"{indent}    if not {in_list}({value}):",
            f"{indent}        return False",
            f"{indent}elif type({value}) not in _JSON:",
            f"{indent}    if not _object_at({function}, {in_list}, {value}, {absent_ok}):",
            f"{indent}        return False",
        ]
        if not absent_ok:
            lines += [f"{indent}else:", f"{indent}    return False"]
        return lines

    def list_function(self, node: ObjectPattern) -> str:
        """A function ``f(array) -> bool`` for a nested pattern met by an array of objects."""
        key = ("list", id(node))
        if key in self._made:
            return self._made[key]
        name = self._made[key] = self.name("_l")
        tests = []
        for conjunction in node.conjunctions():
            self._alive.append(conjunction)
            function = self.object_function(conjunction)
            tests.append(f"{'_every' if conjunction.matches_absent else '_any'}({function}, a)")
        self.functions.append(f"def {name}(a):\n    return {' or '.join(tests)}\n")
        return name

    def root_function(self, node: ObjectPattern) -> str:
        """``match(record)``: the record itself is the outermost object."""
        name = self.name("_p")
        lines = [f"def {name}(r):", *self.value_object(node, "r", "    ", depth=0), "    return True"]
        self.functions.append("\n".join(lines) + "\n")
        return name

    def build(self, roots: Sequence[ObjectPattern]) -> Callable[[Any], bool]:
        names = [self.root_function(node) for node in roots]
        if len(names) == 1:
            entry = names[0]
        else:
            entry = self.name("_any_pattern")
            self.functions.append(f"def {entry}(r):\n    return {' or '.join(f'{n}(r)' for n in names)}\n")
        source = "\n".join(self.functions)
        namespace = dict(self.namespace)
        exec(_bytecode(source), namespace)
        function: Callable[[Any], bool] = namespace[entry]
        function.__source__ = source  # type: ignore[attr-defined]
        return function


@functools.lru_cache(maxsize=256)
def _bytecode(source: str) -> CodeType:
    """Compiling the source is most of a pattern's compile time; equal patterns give equal source."""
    return compile(source, "<event-pattern>", "exec")


def match_all(record: Any) -> bool:
    return True


def build_matcher(roots: Sequence[ObjectPattern]) -> Callable[[Any], bool]:
    """One function ``match(record) -> bool``: true when any of ``roots`` matches the record."""
    return _Codegen().build(roots) if roots else match_all
