"""JMESPath expressions compiled to one Python function each.

``jmespath.search`` walks the expression tree with a new interpreter object per
call, which costs several microseconds per event and leaves a reference cycle
for the garbage collector every time. Here the tree that ``jmespath`` parsed is
turned into Python source once, at load time, so evaluating
``{order: value.detail.order_id, items: length(value.detail.items)}`` is a few
dict lookups and one ``len``. Semantics are the library's: every node type is
generated to do what ``jmespath.visitor.TreeInterpreter`` does (the tests
compare the two on many expressions and documents), functions are the
library's own (``jmespath.functions.Functions``), and type errors are its own.

``root_keys`` tells which top-level keys of the record an expression reads, so
that a stage that only reads the body never needs the whole record built.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, cast

import jmespath
import jmespath.functions
import jmespath.parser
from jmespath.visitor import TreeInterpreter, _Expression

__all__ = ["compile_expression", "root_keys"]

_interpreter: Any = TreeInterpreter()
_functions = jmespath.functions.Functions()


# The interpreter's comparison rules, as ``jmespath.visitor`` has them (private there).
def _is_actual_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float)


def _is_comparable(value: Any) -> bool:
    return _is_actual_number(value) or isinstance(value, str)


def _equals(x: Any, y: Any) -> bool:
    # 0/1 against false/true: equal in Python, not in JMESPath.
    if _is_actual_number(x) and x in (0, 1):
        return not isinstance(y, bool) and bool(x == y)
    if _is_actual_number(y) and y in (0, 1):
        return not isinstance(x, bool) and bool(x == y)
    return bool(x == y)


def _field(value: Any, name: str) -> Any:
    """A field of anything with ``get`` (dict subclasses), else None: the interpreter's rule."""
    try:
        return value.get(name)
    except AttributeError:
        return None


def _index(value: Any, i: int) -> Any:
    if not isinstance(value, list):
        return None
    try:
        return value[i]
    except IndexError:
        return None


def _slice(value: Any, start: int | None, stop: int | None, step: int | None) -> Any:
    if not isinstance(value, list):
        return None
    return value[slice(start, stop, step)]


def _is_false(value: Any) -> bool:
    return value == "" or value == [] or value == {} or value is None or value is False


def _order(op: Callable[[Any, Any], bool], left: Any, right: Any) -> Any:
    if not (_is_comparable(left) and _is_comparable(right)):
        return None
    return op(left, right)


def _not(value: Any) -> bool:
    if _is_actual_number(value) and value == 0:
        return False
    return not value


def _flatten(value: Any) -> Any:
    if not isinstance(value, list):
        return None
    merged: list[Any] = []
    for element in value:
        if isinstance(element, list):
            merged.extend(element)
        else:
            merged.append(element)
    return merged


def _values(value: Any) -> Any:
    try:
        return list(value.values())
    except AttributeError:
        return None


def _length(value: Any) -> Any:
    kind = type(value)
    if kind is list or kind is dict or kind is str:
        return len(value)
    return _functions.call_function("length", [value])


def _call(name: str, args: list[Any]) -> Any:
    return _functions.call_function(name, args)


_RUNTIME: dict[str, Any] = {
    "_field": _field,
    "_index": _index,
    "_slice": _slice,
    "_is_false": _is_false,
    "_order": _order,
    "_not": _not,
    "_flatten": _flatten,
    "_values": _values,
    "_length": _length,
    "_call": _call,
    "_equals": _equals,
    "dict": dict,
    "list": list,
}

_ORDERING = {"lt": "lt", "gt": "gt", "lte": "le", "gte": "ge"}


class _Codegen:
    """Emits statements into a function body; each node's value ends up in a local."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.depth = 1
        self.count = 0
        self.namespace: dict[str, Any] = dict(_RUNTIME)
        import operator

        for name in _ORDERING.values():
            self.namespace[f"_op_{name}"] = getattr(operator, name)

    def temp(self) -> str:
        self.count += 1
        return f"t{self.count}"

    def bind(self, value: Any) -> str:
        name = f"c{len(self.namespace)}"
        self.namespace[name] = value
        return name

    def emit(self, line: str) -> None:
        self.lines.append("    " * self.depth + line)

    @contextmanager
    def block(self, header: str) -> Iterator[None]:
        self.emit(header)
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1

    # -- nodes ------------------------------------------------------------------------------

    def node(self, node: dict[str, Any], src: str) -> str:
        """Emit code computing ``node`` over the local ``src``; returns the local holding the result."""
        method = getattr(self, f"n_{node['type']}", None)
        if method is None:  # a node type this generator does not know: the interpreter does it
            return self.fallback(node, src)
        result: str = method(node, src)
        return result

    def fallback(self, node: dict[str, Any], src: str) -> str:
        visit = self.bind(_interpreter.visit)
        tree = self.bind(node)
        out = self.temp()
        self.emit(f"{out} = {visit}({tree}, {src})")
        return out

    def n_field(self, node: dict[str, Any], src: str) -> str:
        out = self.temp()
        key = repr(node["value"])
        self.emit(f"{out} = {src}.get({key}) if {src}.__class__ is dict else _field({src}, {key})")
        return out

    def chain(self, node: dict[str, Any], src: str) -> str:
        for child in node["children"]:
            src = self.node(child, src)
        return src

    n_subexpression = chain
    n_index_expression = chain
    n_pipe = chain

    def n_identity(self, node: dict[str, Any], src: str) -> str:
        return src

    n_current = n_identity

    def n_index(self, node: dict[str, Any], src: str) -> str:
        out = self.temp()
        self.emit(f"{out} = _index({src}, {int(node['value'])})")
        return out

    def n_slice(self, node: dict[str, Any], src: str) -> str:
        out = self.temp()
        start, stop, step = node["children"]
        self.emit(f"{out} = _slice({src}, {start!r}, {stop!r}, {step!r})")
        return out

    def n_literal(self, node: dict[str, Any], src: str) -> str:
        return self.bind(node["value"])

    def n_key_val_pair(self, node: dict[str, Any], src: str) -> str:
        return self.node(node["children"][0], src)

    def n_multi_select_dict(self, node: dict[str, Any], src: str) -> str:
        out = self.temp()
        with self.block(f"if {src} is None:"):
            self.emit(f"{out} = None")
        with self.block("else:"):
            entries = [f"{child['value']!r}: {self.node(child, src)}" for child in node["children"]]
            self.emit(f"{out} = {{{', '.join(entries)}}}")
        return out

    def n_multi_select_list(self, node: dict[str, Any], src: str) -> str:
        out = self.temp()
        with self.block(f"if {src} is None:"):
            self.emit(f"{out} = None")
        with self.block("else:"):
            items = [self.node(child, src) for child in node["children"]]
            self.emit(f"{out} = [{', '.join(items)}]")
        return out

    def _collect(self, base: str, right: dict[str, Any], cond: dict[str, Any] | None = None) -> str:
        out = self.temp()
        element = self.temp()
        with self.block(f"if {base}.__class__ is list or isinstance({base}, list):"):
            self.emit(f"{out} = []")
            with self.block(f"for {element} in {base}:"):
                if cond is not None:
                    test = self.node(cond, element)
                    self.emit(f"if _is_false({test}): continue")
                value = self.node(right, element)
                with self.block(f"if {value} is not None:"):
                    self.emit(f"{out}.append({value})")
        with self.block("else:"):
            self.emit(f"{out} = None")
        return out

    def n_projection(self, node: dict[str, Any], src: str) -> str:
        left, right = node["children"]
        return self._collect(self.node(left, src), right)

    def n_filter_projection(self, node: dict[str, Any], src: str) -> str:
        left, right, cond = node["children"]
        return self._collect(self.node(left, src), right, cond)

    def n_value_projection(self, node: dict[str, Any], src: str) -> str:
        left, right = node["children"]
        base = self.temp()
        self.emit(f"{base} = _values({self.node(left, src)})")
        return self._collect(base, right)

    def n_flatten(self, node: dict[str, Any], src: str) -> str:
        out = self.temp()
        self.emit(f"{out} = _flatten({self.node(node['children'][0], src)})")
        return out

    def n_comparator(self, node: dict[str, Any], src: str) -> str:
        op = node["value"]
        left = self.node(node["children"][0], src)
        right = self.node(node["children"][1], src)
        out = self.temp()
        if op == "eq":
            self.emit(f"{out} = _equals({left}, {right})")
        elif op == "ne":
            self.emit(f"{out} = not _equals({left}, {right})")
        elif op in _ORDERING:
            self.emit(f"{out} = _order(_op_{_ORDERING[op]}, {left}, {right})")
        else:  # pragma: no cover - the parser knows no other comparator
            return self.fallback(node, src)
        return out

    def n_or_expression(self, node: dict[str, Any], src: str) -> str:
        out = self.node(node["children"][0], src)
        result = self.temp()
        self.emit(f"{result} = {out}")
        with self.block(f"if _is_false({result}):"):
            self.emit(f"{result} = {self.node(node['children'][1], src)}")
        return result

    def n_and_expression(self, node: dict[str, Any], src: str) -> str:
        out = self.node(node["children"][0], src)
        result = self.temp()
        self.emit(f"{result} = {out}")
        with self.block(f"if not _is_false({result}):"):
            self.emit(f"{result} = {self.node(node['children'][1], src)}")
        return result

    def n_not_expression(self, node: dict[str, Any], src: str) -> str:
        out = self.temp()
        self.emit(f"{out} = _not({self.node(node['children'][0], src)})")
        return out

    def n_expref(self, node: dict[str, Any], src: str) -> str:
        return self.bind(_Expression(node["children"][0], _interpreter))

    def n_function_expression(self, node: dict[str, Any], src: str) -> str:
        args = [self.node(child, src) for child in node["children"]]
        out = self.temp()
        if node["value"] == "length" and len(args) == 1:
            self.emit(f"{out} = _length({args[0]})")
        else:
            self.emit(f"{out} = _call({node['value']!r}, [{', '.join(args)}])")
        return out

    def build(self, tree: dict[str, Any]) -> Callable[[Any], Any]:
        result = self.node(tree, "v")
        self.emit(f"return {result}")
        source = "def evaluate(v):\n" + "\n".join(self.lines) + "\n"
        exec(compile(source, "<jmespath>", "exec"), self.namespace)
        evaluate: Callable[[Any], Any] = self.namespace["evaluate"]
        return evaluate


def compile_expression(expression: str | jmespath.parser.ParsedResult) -> Callable[[Any], Any]:
    """``value -> result`` for a JMESPath expression; raises what ``jmespath.compile`` raises.

    Errors at evaluation (a function given the wrong type) are the library's
    ``jmespath.exceptions.JMESPathError``.
    """
    parsed = jmespath.compile(expression) if isinstance(expression, str) else expression
    tree: dict[str, Any] = cast(dict[str, Any], parsed.parsed)
    try:
        return _Codegen().build(tree)
    except (RecursionError, SyntaxError, MemoryError):  # absurdly deep: the interpreter copes
        return lambda value: _interpreter.visit(tree, value)


def root_keys(expression: str | jmespath.parser.ParsedResult) -> frozenset[str] | None:
    """Top-level keys of the value an expression reads; None when it reads the value whole."""
    parsed = jmespath.compile(expression) if isinstance(expression, str) else expression
    return _roots(cast(dict[str, Any], parsed.parsed))


def _roots(node: dict[str, Any]) -> frozenset[str] | None:
    kind = node["type"]
    children = node.get("children", [])
    if kind == "field":
        return frozenset({node["value"]})
    if kind in ("literal", "expref"):
        return frozenset()
    if kind in ("current", "identity"):
        return None
    if kind in (
        "subexpression",
        "index_expression",
        "pipe",
        "projection",
        "filter_projection",
        "value_projection",
        "flatten",
    ):
        # Only the first child reads the root; the rest read what it produced.
        return _roots(children[0]) if children else None
    if kind in ("index", "slice"):
        return None  # applied to the root itself
    keys: set[str] = set()
    for child in children:
        if not isinstance(child, dict):
            continue
        found = _roots(child)
        if found is None:
            return None
        keys |= found
    return frozenset(keys)
