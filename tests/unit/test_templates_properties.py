"""Properties of input templates over random records and random template shapes.

The oracle here is written independently of ``pipes.templates``: it builds the
value a JSON template describes and compares it with the parsed output.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from pipes.templates import InputTemplate, TemplateError

SETTINGS = settings(max_examples=200, derandomize=True, deadline=None, database=None)

# Strings with everything that can break JSON: quotes, backslashes, control
# characters, line separators, astral and combining characters.
TEXT = st.text(
    alphabet=st.one_of(
        st.sampled_from(['"', "\\", "\n", "\r", "\t", "\x00", "\x1f", "\x7f", "\u2028", "<", ">"]),
        st.characters(exclude_categories=["Cs"]),
    ),
    max_size=12,
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=False, allow_infinity=False),
    TEXT,
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(TEXT, children, max_size=4)),
    max_leaves=12,
)


def aws_text(value: Any) -> str:
    """A value as text inside a string: objects and arrays with their quotes stripped."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{aws_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(aws_text(v) for v in value) + "]"
    if isinstance(value, float):
        return orjson.dumps(value).decode()  # the shortest form, e.g. 1e-7 (not 1e-07)
    return json.dumps(value)


@SETTINGS
@given(JSON_VALUES)
def test_a_bare_placeholder_round_trips_any_json_value(value: Any) -> None:
    out = InputTemplate('{"x": <$.v>}').render({"v": value})
    assert json.loads(out) == {"x": value}


@SETTINGS
@given(JSON_VALUES, TEXT, TEXT)
def test_a_placeholder_inside_a_string_is_its_text(value: Any, before: str, after: str) -> None:
    literal = json.dumps(before)[1:-1].replace("<", "\\u003c")
    tail = json.dumps(after)[1:-1].replace("<", "\\u003c")
    out = InputTemplate(f'["{literal}<$.v>{tail}"]').render({"v": value})
    assert json.loads(out) == [before + aws_text(value) + after]


@SETTINGS
@given(JSON_VALUES, TEXT.filter(lambda s: "<" not in s))
def test_plain_text_is_the_text_verbatim(value: Any, prefix: str) -> None:
    template = f"x{prefix}<$.v>{prefix}"
    assert InputTemplate(template).render({"v": value}) == f"x{prefix}{aws_text(value)}{prefix}"


# --- random JSON templates ----------------------------------------------------------------------

ABSENT = object()

# Paths into RECORDS, each with an independent way to read it.
PATHS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "$.a": lambda r: r["a"],
    "$.b.c": lambda r: r["b"]["c"],
    "$.b.d[0]": lambda r: r["b"]["d"][0] if r["b"]["d"] else ABSENT,
    "$.b.d[2]": lambda r: r["b"]["d"][2] if len(r["b"]["d"]) > 2 else ABSENT,
    "$.b.d[*]": lambda r: list(r["b"]["d"]),
    "$.s": lambda r: r["s"],
    "$.missing": lambda r: ABSENT,
    "$.s.deeper": lambda r: ABSENT,
}
RECORDS = st.fixed_dictionaries(
    {
        "a": JSON_VALUES,
        "b": st.fixed_dictionaries({"c": JSON_VALUES, "d": st.lists(JSON_VALUES, max_size=3)}),
        "s": TEXT,
    }
)


def literal(text: str, ascii_only: bool) -> str:
    # "<" is written as an escape so that random text never forms a placeholder.
    return json.dumps(text, ensure_ascii=ascii_only)[1:-1].replace("<", "\\u003c")


type Shape = tuple[Any, ...]

LEAVES: st.SearchStrategy[Shape] = st.one_of(
    st.tuples(st.just("const"), JSON_VALUES),
    st.tuples(st.just("path"), st.sampled_from(sorted(PATHS))),
    st.tuples(
        st.just("string"),
        st.lists(st.one_of(TEXT, st.sampled_from(sorted(PATHS)).map(lambda p: ("path", p)))),
    ),
)
SHAPES: st.SearchStrategy[Shape] = st.recursive(
    LEAVES,
    lambda children: st.one_of(
        st.tuples(st.just("array"), st.lists(children, max_size=4)),
        st.tuples(st.just("object"), st.dictionaries(TEXT, children, max_size=4)),
    ),
    max_leaves=10,
)


def write(shape: Shape, ws: str, ascii_only: bool) -> str:
    """The template text for ``shape``."""
    kind, content = shape
    if kind == "const":
        return json.dumps(content, ensure_ascii=ascii_only).replace("<", "\\u003c")
    if kind == "path":
        return f"<{content}>"
    if kind == "string":
        parts = [f"<{p[1]}>" if isinstance(p, tuple) else literal(p, ascii_only) for p in content]
        return '"' + "".join(parts) + '"'
    if kind == "array":
        return "[" + ws + f",{ws}".join(write(c, ws, ascii_only) for c in content) + ws + "]"
    members = (f'"{literal(k, ascii_only)}"{ws}:{ws}{write(v, ws, ascii_only)}' for k, v in content.items())
    return "{" + ws + f",{ws}".join(members) + ws + "}"


def expect(shape: Shape, record: dict[str, Any]) -> Any:
    """What the rendered template must parse to."""
    kind, content = shape
    if kind == "const":
        return content
    if kind == "path":
        value = PATHS[content](record)
        return None if value is ABSENT else value
    if kind == "string":
        out = []
        for part in content:
            if isinstance(part, tuple):
                value = PATHS[part[1]](record)
                out.append("" if value is ABSENT else aws_text(value))
            else:
                out.append(part)
        return "".join(out)
    if kind == "array":
        return [expect(c, record) for c in content]
    return {k: expect(v, record) for k, v in content.items()}


def root(shape: Shape) -> Shape:
    # A JSON template starts with { or [ (or is one string).
    return shape if shape[0] in ("array", "object", "string") else ("array", [shape])


@SETTINGS
@given(SHAPES.map(root), RECORDS, st.sampled_from(["", " ", "\n  "]), st.booleans())
def test_a_json_template_always_renders_the_json_it_describes(
    shape: Shape, record: dict[str, Any], ws: str, ascii_only: bool
) -> None:
    text = write(shape, ws, ascii_only)
    template = InputTemplate(text)
    assert template.is_json
    out = template.render(record)
    assert json.loads(out) == expect(shape, record)
    assert out == InputTemplate(text, fast=False).render(record)


# --- arbitrary text -----------------------------------------------------------------------------

# Pieces of templates, right and wrong, put together at random.
TEMPLATE_SOUP = st.lists(
    st.one_of(
        st.sampled_from([*'<>$.[]*{}",:\\ \n-_/0123abt', "aws.pipes.", "event.json>", "<$.a", "<$.b[*]>"]),
        st.characters(exclude_categories=["Cs"]),
    ),
    max_size=30,
).map("".join)
# JSON templates, mostly well formed, sometimes broken by a stray piece.
JSON_SOUP = st.lists(
    st.sampled_from(
        [
            *["1", "null", '"x"', "[]", '{"k": <$.nope>}', '"a<$.s>\\n<$.b.d[*]>"', "<$.a>"],
            *["<$.b.d[*]>", '"<aws.pipes.event>"', "<aws.pipes.event.json>", '"<"', '"\\u003c$.a>"'],
            *['"', "<", "{", "]", "<$.a", '"<aws.pipes.event.json>"'],
        ]
    ),
    max_size=8,
).map(lambda parts: "[" + ", ".join(parts) + "]")


@SETTINGS
@given(st.one_of(TEMPLATE_SOUP, JSON_SOUP), RECORDS)
def test_any_text_is_rejected_with_an_offset_or_renders(text: str, record: dict[str, Any]) -> None:
    try:
        template = InputTemplate(text)
    except TemplateError as exc:
        assert 0 <= exc.offset <= len(text)
        return
    out = template.render(record)
    assert out == InputTemplate(text, fast=False).render(record)
    if template.is_json:
        json.loads(out)
