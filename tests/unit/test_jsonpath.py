"""The AWS JSON path subset on its own (templates test it in context)."""

from __future__ import annotations

from typing import Any

import pytest

from pipes.jsonpath import MISSING, WILDCARD, PathError, compile_path

DOC: dict[str, Any] = {
    "a": {"b-c": [10, {"d": "x"}, None], "e/f": 1, "g_h": {"0": "zero"}},
    "s": "text",
    "n": None,
    "list": [{"k": 1}, {"k": 2}, {"j": 3}, "scalar"],
}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("$", DOC),
        ("$.a.e/f", 1),
        ("$.a.b-c[0]", 10),
        ("$.a.b-c[1].d", "x"),
        ("$.a.b-c[2]", None),
        ("$.a.g_h.0", "zero"),
        ("$.n", None),
        ("$.a.b-c[3]", MISSING),
        ("$.a.nope", MISSING),
        ("$.s.x", MISSING),
        ("$.s[0]", MISSING),
        ("$.n.x", MISSING),
        ("$.a[0]", MISSING),
        ("$.list[*].k", [1, 2]),
        ("$.list[*]", DOC["list"]),
        ("$.a.*", list(DOC["a"].values())),
        ("$.a[*].d", []),
        ("$.nope[*]", []),
        ("$.list[0].*", [1]),
    ],
)
def test_get(path: str, expected: Any) -> None:
    value = compile_path(path).get(DOC)
    if expected is MISSING:
        assert value is MISSING
    else:
        assert value == expected


def test_steps_and_keys() -> None:
    assert compile_path("$.a.b").keys == ("a", "b")
    assert compile_path("$.a[2][*]").steps == ("a", 2, WILDCARD)
    assert compile_path("$.a[2]").keys is None


@pytest.mark.parametrize(
    ("path", "offset"),
    [("a.b", 0), ("$.", 2), ("$..a", 2), ("$.a[", 3), ("$.a[x]", 3), ("$[0]", 1), ("$.a b", 3)],
)
def test_malformed(path: str, offset: int) -> None:
    with pytest.raises(PathError) as info:
        compile_path(path)
    assert info.value.offset == offset
