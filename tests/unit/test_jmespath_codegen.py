"""JMESPath compiled to Python gives what the jmespath library's interpreter gives, errors included."""

from __future__ import annotations

from typing import Any

import jmespath
import jmespath.exceptions
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipes.jmespath_codegen import compile_expression, root_keys

EXPRESSIONS = [
    "a",
    "a.b.c",
    "a.b.c.d.e",
    "@",
    "a[0]",
    "a[-1]",
    "a[1:3]",
    "a[::-1]",
    "a[::2].b",
    "a[*].b",
    "a[*].b.c",
    "a[]",
    "a[][]",
    "a[].b",
    "a.*.b",
    "*.b",
    "a[?b > `1`].c",
    "a[?b == 'x']",
    "a[?b != `null`].b",
    "a[?b >= `2` && b < `5`]",
    "a[?!b]",
    "a || b",
    "a && b",
    "!a",
    "a == b",
    "a != b",
    "a < b",
    "a <= b",
    "a > b",
    "a >= b",
    "{x: a, y: b.c}",
    "[a, b, c]",
    "a | b",
    "a[*].b | [0]",
    "length(a)",
    "length(@)",
    "keys(@)",
    "values(a)",
    "sort_by(a, &b)",
    "max_by(a, &b)",
    "sum(a[*].b)",
    "join(',', a[*].b)",
    "contains(a, 'x')",
    "starts_with(a, 'x')",
    "to_string(a)",
    "to_number(a)",
    "type(a)",
    "not_null(a, b, c)",
    "abs(a)",
    "`true`",
    "'literal'",
    '`{"x": [1, 2]}`',
    "{order: value.detail.order_id, items: length(value.detail.items)}",
    "value.detail.items[?qty > `1`].sku",
    "value.detail.total > `100` && value.\"detail-type\" == 'OrderPlaced'",
]

DOCUMENTS: list[Any] = [
    None,
    0,
    1,
    True,
    False,
    "x",
    "",
    [],
    {},
    [1, 2, 3],
    {"a": None},
    {"a": 0},
    {"a": 1, "b": 1},
    {"a": 1, "b": 2},
    {"a": "x", "b": "y"},
    {"a": "xyz"},
    {"a": -3.5},
    {"a": [], "b": [], "c": {}},
    {"a": [1, [2, 3], [[4]]]},
    {"a": [{"b": 1, "c": "p"}, {"b": 3, "c": "q"}, {"b": None}, {"c": 1}, 7]},
    {"a": [{"b": "x"}, {"b": "y"}]},
    {"a": {"k": {"b": 1}, "l": {"b": 2}, "m": 3}},
    {"a": {"b": {"c": {"d": {"e": 5}}}}},
    {"a": [{"b": [1, 2]}, {"b": [3]}]},
    {"a": True, "b": False, "c": 0},
    {"k": {"b": 4}, "j": {"b": None}},
    {
        "value": {
            "detail-type": "OrderPlaced",
            "detail": {
                "order_id": "o1",
                "total": 150.5,
                "items": [{"sku": "S1", "qty": 2}, {"sku": "S2", "qty": 1}],
            },
        }
    },
]


def outcome(function: Any, document: Any) -> tuple[str, Any]:
    try:
        return "value", function(document)
    except (jmespath.exceptions.JMESPathError, TypeError) as exc:  # the interpreter lets TypeError out too
        return "error", type(exc).__name__


@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_compiled_matches_the_interpreter(expression: str) -> None:
    compiled = compile_expression(expression)
    reference = jmespath.compile(expression)
    for document in DOCUMENTS:
        assert outcome(compiled, document) == outcome(reference.search, document), (expression, document)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.sampled_from(["", "a", "b", "x"]),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), children, max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(document=JSON, expression=st.sampled_from(EXPRESSIONS))
def test_compiled_matches_the_interpreter_on_any_document(document: Any, expression: str) -> None:
    compiled = compile_expression(expression)
    assert outcome(compiled, document) == outcome(jmespath.compile(expression).search, document)


@pytest.mark.parametrize(
    ("expression", "keys"),
    [
        ("value.detail.total", {"value"}),
        ("{a: value.x, b: key}", {"value", "key"}),
        ("value[?x > `1`] | [0].y", {"value"}),
        ("length(value.items)", {"value"}),
        ("sort_by(value.items, &price)", {"value"}),
        ("`1`", set()),
        ("@", None),
        ("[0]", None),
        ("keys(@)", None),
        ("value || key", {"value", "key"}),
    ],
)
def test_root_keys_say_what_an_expression_reads(expression: str, keys: set[str] | None) -> None:
    assert root_keys(expression) == (frozenset(keys) if keys is not None else None)
