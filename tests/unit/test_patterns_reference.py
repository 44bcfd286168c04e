"""The compiled matcher agrees with a slow, direct reading of the rules on random patterns and events.

``reference`` walks the pattern JSON at match time, the obvious way, following docs/filtering.md.
The compiled matcher inlines, specialises and generates code; any disagreement is a code
generation bug (or a rule the two read differently, which the docs must then settle).
"""

from __future__ import annotations

import fnmatch
import ipaddress
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pipes.patterns import EventFilter

MISSING = object()


def _is_number(x: Any) -> bool:
    return type(x) in (int, float)


def _flat(values: list[Any]) -> list[Any]:
    out: list[Any] = []
    for item in values:
        out.extend(_flat(item) if isinstance(item, list) else [item])
    return out


def _wildcard(pattern: str, text: str) -> bool:
    # The grammar below only uses plain stars, so fnmatch's other metacharacters never appear.
    return fnmatch.fnmatchcase(text, pattern)


def _condition(condition: Any, x: Any) -> bool:
    """Does one condition of a leaf list accept the scalar ``x``?"""
    if not isinstance(condition, dict):
        if condition is None or isinstance(condition, bool):
            return x is condition
        if _is_number(condition):
            return _is_number(x) and x == condition
        return x == condition
    ((op, arg),) = condition.items()
    text = x if type(x) is str else None
    if op == "exists":
        return arg is True
    if op == "prefix":
        if isinstance(arg, dict):
            return text is not None and text.lower().startswith(arg["equals-ignore-case"].lower())
        return text is not None and text.startswith(arg)
    if op == "suffix":
        return text is not None and text.endswith(arg)
    if op == "equals-ignore-case":
        return text is not None and text.lower() == arg.lower()
    if op == "wildcard":
        return text is not None and _wildcard(arg, text)
    if op == "numeric":
        if not _is_number(x) or not -5e9 <= x <= 5e9:
            return False
        ops = {"<": x.__lt__, "<=": x.__le__, ">": x.__gt__, ">=": x.__ge__, "=": x.__eq__}
        return all(ops[o](b) for o, b in zip(arg[::2], arg[1::2], strict=True))
    if op == "cidr":
        try:
            return text is not None and ipaddress.ip_address(text) in ipaddress.ip_network(arg)
        except ValueError:
            return False
    if op == "anything-but":
        if isinstance(arg, dict):
            ((inner, value),) = arg.items()
            return not _condition({inner: value}, x)
        excluded = arg if isinstance(arg, list) else [arg]
        return not any(_condition(e, x) for e in excluded)
    raise AssertionError(op)


def _leaf(conditions: list[Any], value: Any) -> bool:
    if value is MISSING or isinstance(value, dict):
        present: list[Any] = []
    elif isinstance(value, list):
        present = [x for x in _flat(value) if not isinstance(x, dict)]
    else:
        present = [value]
    if not present:
        return {"exists": False} in conditions
    return any(_condition(c, x) for c in conditions for x in present)


def _conjunctions(pattern: dict[str, Any]) -> list[dict[str, Any]]:
    """The pattern's top-level $or multiplied out (nested objects keep theirs)."""
    fields = [(k, v) for k, v in pattern.items() if k != "$or"]
    if "$or" not in pattern:
        return [{"fields": fields}]
    return [
        {"fields": fields + conjunction["fields"]}
        for arm in pattern["$or"]
        for conjunction in _conjunctions(arm)
    ]


def _conjunction_in(conjunction: dict[str, Any], obj: dict[str, Any]) -> bool:
    for key, sub in conjunction["fields"]:
        value = obj.get(key, MISSING)
        if isinstance(sub, list):
            if not _leaf(sub, value):
                return False
        elif not _object(sub, value):
            return False
    return True


def _absent_ok(pattern: dict[str, Any]) -> bool:
    return _object(pattern, MISSING)


def _object(pattern: dict[str, Any], value: Any) -> bool:
    conjunctions = _conjunctions(pattern)
    if isinstance(value, dict):
        return any(_conjunction_in(c, value) for c in conjunctions)
    if isinstance(value, list):
        elements = [e for e in _flat(value) if isinstance(e, dict)]
        for conjunction in conjunctions:
            if _conjunction_in(conjunction, {}):  # only absences: every element must lack the fields
                if all(_conjunction_in(conjunction, e) for e in elements):
                    return True
            elif any(_conjunction_in(conjunction, e) for e in elements):
                return True
        return False
    return any(_conjunction_in(c, {}) for c in conjunctions)


def reference(pattern: dict[str, Any], record: Any) -> bool:
    return _object(pattern, record)


KEYS = ["a", "b"]
conditions = st.sampled_from(
    [
        "x",
        "xy",
        "",
        1,
        2.5,
        True,
        None,
        {"prefix": "x"},
        {"prefix": {"equals-ignore-case": "X"}},
        {"suffix": "y"},
        {"equals-ignore-case": "XY"},
        {"wildcard": "x*"},
        {"numeric": [">", 1]},
        {"numeric": [">=", 0, "<", 2]},
        {"numeric": ["=", 2.5]},
        {"exists": True},
        {"exists": False},
        {"anything-but": "x"},
        {"anything-but": [1, 2]},
        {"anything-but": {"prefix": "x"}},
        {"cidr": "10.0.0.0/8"},
    ]
)
leaves = st.lists(conditions, min_size=1, max_size=3)
patterns = st.recursive(
    st.dictionaries(st.sampled_from(KEYS), leaves, min_size=1),
    lambda inner: st.one_of(
        st.dictionaries(st.sampled_from(KEYS), st.one_of(leaves, inner), min_size=1),
        st.builds(
            lambda arms, rest: {**rest, "$or": arms},
            st.lists(inner, min_size=2, max_size=3),
            st.dictionaries(st.sampled_from(KEYS), leaves),
        ),
    ),
    max_leaves=6,
)
scalars = st.sampled_from(["x", "xy", "XY", "", "y", "10.1.2.3", 0, 1, 2, 2.5, 6e9, True, False, None])
events = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from([*KEYS, "c"]), inner, max_size=3),
    ),
    max_leaves=10,
)


@settings(max_examples=300, derandomize=True, deadline=None)
@given(patterns, events)
def test_compiled_matcher_agrees_with_the_reference(pattern: dict[str, Any], record: Any) -> None:
    assert EventFilter.compile(pattern).matches(record) is reference(pattern, record)


def test_reference_sanity() -> None:
    # The reference itself, on cases the documentation spells out.
    assert (
        reference({"e": {"f": ["A"], "l": ["J"]}}, {"e": [{"f": "A", "l": "S"}, {"f": "P", "l": "J"}]})
        is False
    )
    assert reference({"c": [{"exists": False}]}, {"c": {"c1": 1}}) is True
    assert reference({"x": [{"anything-but": "a"}]}, {}) is False
