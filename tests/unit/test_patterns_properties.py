"""Property tests for event patterns: laws that hold for any event, not just the table's examples."""

from __future__ import annotations

import operator
from decimal import Decimal
from typing import Any

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from pipes.patterns import NUMERIC_LIMIT, EventFilter

# Deterministic, modest: the suite stays fast and CI sees the same examples every run.
PROPERTY = settings(max_examples=200, derandomize=True, deadline=None)

keys = st.text(alphabet="abcdef-_.", min_size=1, max_size=4)
# Numbers a JSON event might carry; NaN and infinities are not JSON.
numbers = st.one_of(st.integers(-(10**12), 10**12), st.floats(-1e12, 1e12, allow_nan=False))
scalars = st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=8))
events = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)),
    max_leaves=12,
)
records = st.dictionaries(keys, events, min_size=1, max_size=5)


def _flat(value: list[Any]) -> list[Any]:
    out: list[Any] = []
    for item in value:
        out.extend(_flat(item) if isinstance(item, list) else [item])
    return out


def pattern_from(event: dict[str, Any], draw: st.DrawFn) -> dict[str, Any]:
    """A pattern that asks for a subset of the event's own leaf values, one element per array."""
    pattern: dict[str, Any] = {}
    for key, value in event.items():
        if not draw(st.booleans()):
            continue
        if isinstance(value, dict):
            sub = pattern_from(value, draw)
            if sub:
                pattern[key] = sub
        elif isinstance(value, list):
            items = _flat(value)
            if not items:
                continue
            chosen = draw(st.sampled_from(items))
            if isinstance(chosen, dict):
                sub = pattern_from(chosen, draw)
                if sub:
                    pattern[key] = sub
            else:
                pattern[key] = [chosen]
        else:
            pattern[key] = [value]
    return pattern


@st.composite
def event_and_own_pattern(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    event = draw(records)
    pattern = pattern_from(event, draw)
    assume(pattern)
    return event, pattern


@PROPERTY
@given(event_and_own_pattern())
def test_a_pattern_of_the_events_own_values_matches_it(case: tuple[dict[str, Any], dict[str, Any]]) -> None:
    event, pattern = case
    assert EventFilter.compile(pattern).matches(event)


@PROPERTY
@given(event_and_own_pattern())
def test_exists_true_on_the_events_own_leaves_matches_it(case: tuple[dict[str, Any], dict[str, Any]]) -> None:
    event, pattern = case

    def exists(node: dict[str, Any]) -> dict[str, Any]:
        return {k: exists(v) if isinstance(v, dict) else [{"exists": True}] for k, v in node.items()}

    assert EventFilter.compile(exists(pattern)).matches(event)


def within_aws_precision(value: float) -> bool:
    exponent = Decimal(repr(value)).normalize().as_tuple().exponent
    return isinstance(exponent, int) and exponent >= -6


limited_numbers = st.one_of(
    st.integers(-5_000_000_000, 5_000_000_000),
    st.floats(-NUMERIC_LIMIT, NUMERIC_LIMIT, allow_nan=False).filter(within_aws_precision),
    st.decimals(-1000, 1000, places=6).map(float),
)


@PROPERTY
@given(st.one_of(st.text(max_size=10), limited_numbers), st.lists(st.text(max_size=10), max_size=3))
def test_anything_but_never_matches_what_it_excludes(excluded: Any, others: list[str]) -> None:
    if isinstance(excluded, str):
        listed: list[Any] = [excluded, *others]
    else:
        listed = [excluded]
    for operand in (excluded, listed):
        f = EventFilter.compile({"f": [{"anything-but": operand}]})
        assert not f.matches({"f": excluded})
        assert not f.matches({"f": [excluded]})


@PROPERTY
@given(st.text(max_size=10), st.text(max_size=10))
def test_anything_but_matches_every_other_string(excluded: str, value: str) -> None:
    f = EventFilter.compile({"f": [{"anything-but": excluded}]})
    assert f.matches({"f": value}) is (value != excluded)


COMPARE = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "=": operator.eq}


@st.composite
def numeric_conditions(draw: st.DrawFn) -> list[Any]:
    if draw(st.booleans()):
        op, value = draw(st.sampled_from(list(COMPARE))), draw(limited_numbers)
        assume(op == "=" or -NUMERIC_LIMIT < value < NUMERIC_LIMIT)  # AWS rejects an empty range
        return [op, value]
    low, high = sorted(draw(st.lists(limited_numbers, min_size=2, max_size=2, unique=True)))
    assume(low < high)
    return [draw(st.sampled_from([">", ">="])), low, draw(st.sampled_from(["<", "<="])), high]


@PROPERTY
@given(numeric_conditions(), st.one_of(limited_numbers, numbers))
def test_numeric_agrees_with_python_comparisons(condition: list[Any], value: float) -> None:
    expected = all(
        COMPARE[op](value, bound) for op, bound in zip(condition[::2], condition[1::2], strict=True)
    )
    expected = expected and -NUMERIC_LIMIT <= value <= NUMERIC_LIMIT  # AWS's numeric range
    f = EventFilter.compile({"n": [{"numeric": condition}]})
    assert f.matches({"n": value}) is expected
    assert f.matches({"n": str(value)}) is False


# Small patterns over a small vocabulary, so that OR-ed patterns often overlap.
small_values = st.sampled_from(["a", "b", "ab", 1, 2, 2.5, None, True])
leaf_conditions = st.one_of(
    small_values,
    st.sampled_from(
        [
            {"prefix": "a"},
            {"suffix": "b"},
            {"anything-but": "a"},
            {"numeric": [">", 1]},
            {"exists": True},
            {"exists": False},
            {"equals-ignore-case": "AB"},
            {"wildcard": "*b"},
        ]
    ),
)
small_patterns = st.dictionaries(
    st.sampled_from(["x", "y"]),
    st.one_of(
        st.lists(leaf_conditions, min_size=1, max_size=3),
        st.dictionaries(
            st.sampled_from(["x", "y"]), st.lists(leaf_conditions, min_size=1, max_size=2), min_size=1
        ),
    ),
    min_size=1,
)
small_events = st.dictionaries(
    st.sampled_from(["x", "y", "z"]),
    st.one_of(
        small_values,
        st.lists(small_values, max_size=3),
        st.dictionaries(
            st.sampled_from(["x", "y"]), st.one_of(small_values, st.lists(small_values, max_size=2))
        ),
    ),
)


@PROPERTY
@given(st.lists(small_patterns, min_size=1, max_size=5), small_events)
def test_several_patterns_match_when_any_one_does(
    patterns: list[dict[str, Any]], event: dict[str, Any]
) -> None:
    expected = any(EventFilter.compile(p).matches(event) for p in patterns)
    assert EventFilter.compile(patterns).matches(event) is expected


@PROPERTY
@given(small_patterns, small_patterns, small_events)
def test_or_of_two_arms_is_any_of_them(
    left: dict[str, Any], right: dict[str, Any], event: dict[str, Any]
) -> None:
    expected = EventFilter.compile(left).matches(event) or EventFilter.compile(right).matches(event)
    assert EventFilter.compile({"$or": [left, right]}).matches(event) is expected
