"""The "two simple functions" of the weather example, for ``monthly-max-python.yaml``.

``daily_highs`` is the map function: it gets a batch of records (rows that
passed the filter) and returns one value per row. ``combine`` is the reduce
function: it gets a list of such values, or of its own earlier results, and
returns one; since it only adds and takes maxima, the order and grouping of
its calls do not matter, which is what lets every worker reduce locally.
``finish`` turns a group's final value into its result fields.
"""

from __future__ import annotations

from typing import Any


def daily_highs(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "month": record["body"]["date"][:6],
            "station": record["body"]["station"],
            "sum": record["body"]["value"],
            "days": 1,
            "max": record["body"]["value"],
        }
        for record in records
    ]


def combine(values: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "sum": sum(v["sum"] for v in values),
        "days": sum(v["days"] for v in values),
        "max": max(v["max"] for v in values),
    }


def finish(value: dict[str, Any]) -> dict[str, Any]:
    return {"avg_high": value["sum"] / value["days"], "max_high": value["max"], "days": value["days"]}
