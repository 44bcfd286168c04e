"""Reductions: each aggregation, grouping sets, and partials that combine to the same result in any order."""

from __future__ import annotations

import itertools
import pickle
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipes.map.errors import ItemDataError
from pipes.map.model import ReduceConfig
from pipes.map.reduce import Reduction, build_reduction


def reduction(**config: Any) -> Reduction:
    return build_reduction(ReduceConfig.model_validate(config))


def reduce_all(r: Reduction, values: list[Any]) -> list[dict[str, Any]]:
    partial = r.new()
    r.add(partial, values, 0, 0)
    return r.results(partial)


ALL = {
    "n": "count",
    "with_v": {"count": "v"},
    "total": {"sum": "v"},
    "low": {"min": "v"},
    "high": {"max": "v"},
    "mean": {"avg": "v"},
    "kinds": {"distinct_count": "k"},
    "first_v": {"first": "v"},
    "last_v": {"last": "v"},
}


def test_every_builtin_aggregation_skips_nulls() -> None:
    values = [{"k": "a", "v": 3}, {"k": "b"}, {"k": "a", "v": 5}, {"k": "c", "v": None}, {"k": "a", "v": 1}]
    [result] = reduce_all(reduction(aggregations=ALL), values)
    assert result == {
        "n": 5,
        "with_v": 3,
        "total": 9,
        "low": 1,
        "high": 5,
        "mean": 3.0,
        "kinds": 3,
        "first_v": 3,
        "last_v": 1,
    }


def test_no_values_give_nulls_and_zero_counts() -> None:
    r = reduction(aggregations=ALL)
    assert r.results(r.new()) == []  # no group was ever seen
    [result] = reduce_all(r, [{"other": 1}])
    assert result == {
        "n": 1,
        "with_v": 0,
        "total": None,
        "low": None,
        "high": None,
        "mean": None,
        "kinds": 0,
        "first_v": None,
        "last_v": None,
    }


def test_grouping_sets_with_object_and_plain_keys_in_natural_order() -> None:
    r = reduction(
        group_by=[{"jmespath": "{city: city}"}, {"jmespath": "n"}, {"template": "<$.city>-x"}],
        aggregations={"n": "count"},
    )
    values = [{"city": c, "n": n} for c, n in [("b", 10), ("a", 9), ("b", 9), ("a", 10), ("a", 100)]]
    assert reduce_all(r, values) == [
        {"city": "a", "n": 3},
        {"city": "b", "n": 2},
        {"key": 9, "n": 2},
        {"key": 10, "n": 2},
        {"key": 100, "n": 1},
        {"key": "a-x", "n": 3},
        {"key": "b-x", "n": 2},
    ]


def test_a_value_that_cannot_be_summed_is_a_data_error() -> None:
    with pytest.raises(ItemDataError, match=r"^sum: 'x' is not a number$"):
        reduce_all(reduction(aggregations={"t": {"sum": "v"}}), [{"v": 1}, {"v": "x"}])
    with pytest.raises(ItemDataError, match=r"^max: cannot compare"):
        reduce_all(reduction(aggregations={"t": {"max": "v"}}), [{"v": 1}, {"v": "x"}])


def test_distinct_count_is_exact_when_small_and_close_when_large() -> None:
    r = reduction(aggregations={"d": {"distinct_count": "@"}})
    assert reduce_all(r, [1, 2, 2, "2", 3.5, {"a": 1}, {"a": 1}, [1]]) == [{"d": 6}]
    [result] = reduce_all(r, list(range(50_000)) * 2)
    assert abs(result["d"] - 50_000) < 50_000 * 0.05


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(
        st.fixed_dictionaries(
            {"g": st.sampled_from(["x", "y", "z"]), "v": st.one_of(st.none(), st.integers(-1000, 1000))}
        ),
        max_size=60,
    ),
    cuts=st.lists(st.integers(0, 60), max_size=6),
    seed=st.integers(0, 1000),
)
def test_partials_merge_to_the_single_pass_result_in_any_order(
    values: list[Any], cuts: list[int], seed: int
) -> None:
    r = reduction(group_by=[{"jmespath": "g"}, {"jmespath": "`1`"}], aggregations=ALL)
    whole = r.new()
    r.add(whole, values, 0, 0)
    bounds = sorted({0, len(values), *(c for c in cuts if c <= len(values))})
    partials = []
    for item, (start, end) in enumerate(itertools.pairwise(bounds)):
        partial = r.new()
        r.add(partial, values[start:end], item, 0)  # each slice is its own item, in order
        partials.append(pickle.loads(pickle.dumps(partial)))  # as a worker sends it
    random.Random(seed).shuffle(partials)
    merged = r.new()
    for partial in partials:
        r.merge(merged, partial)
    # first/last follow item order: with each slice its own item, the single pass is item 0 only.
    assert r.results(merged) == r.results(whole)


def adder(values: list[Any]) -> Any:
    return {"n": sum(v["n"] for v in values), "s": sum(v["s"] for v in values)}


def test_a_reduce_function_is_a_combiner_called_on_batches() -> None:
    r = reduction(group_by={"jmespath": "{g: g}"}, function=f"{__name__}:adder", batch_size=2)
    values = [{"g": g, "n": 1, "s": s} for g, s in [("a", 1), ("b", 2), ("a", 3), ("a", 4), ("b", 5)]]
    parts = [r.new(), r.new()]
    r.add(parts[0], values[:3], 0, 0)
    r.add(parts[1], values[3:], 1, 0)
    for part in parts:
        r.seal(part)
    merged = pickle.loads(pickle.dumps(parts[1]))
    r.merge(merged, pickle.loads(pickle.dumps(parts[0])))
    assert r.results(merged) == [{"g": "a", "n": 3, "s": 8}, {"g": "b", "n": 2, "s": 7}]


def test_a_merge_that_cannot_be_done_raises_and_changes_nothing() -> None:
    """An item whose max is a text cannot join numbers: it fails alone, the others' partial stays whole."""
    comparable = {name: spec for name, spec in ALL.items() if name not in ("total", "mean")}
    r = reduction(group_by={"jmespath": "g"}, aggregations=comparable)
    into = r.new()
    r.add(into, [{"g": "a", "k": "p", "v": 1}, {"g": "b", "k": "q", "v": 2}], 0, 0)
    before = r.results(pickle.loads(pickle.dumps(into)))
    other = r.new()
    # Group a merges first (and would change its count, min and distinct sketch); group b cannot.
    r.add(other, [{"g": "a", "k": "r", "v": 5}, {"g": "b", "k": "s", "v": "text"}], 1, 0)
    with pytest.raises(ItemDataError, match=r"^min: cannot compare 'text' with 2$"):
        r.merge(into, other)
    assert r.results(into) == before


def raise_on_big(values: list[int]) -> int:
    if sum(values) > 10:
        raise ValueError("too big")
    return sum(values)


def test_a_reduce_function_that_raises_on_merge_changes_nothing() -> None:
    r = reduction(group_by={"jmespath": "@ < `5`"}, function=f"{__name__}:raise_on_big")
    into, other = r.new(), r.new()
    r.add(into, [1, 2, 6], 0, 0)
    r.add(other, [3, 7], 1, 0)
    r.seal(into)
    r.seal(other)
    # Group true (3 + 3) merges first; group false (6 + 7) raises.
    with pytest.raises(ValueError, match="too big"):
        r.merge(into, other)
    assert r.results(into) == [{"key": False, "value": 6}, {"key": True, "value": 3}]
