"""Matching speed of a compiled EventBridge pattern against a hand-written ``if``.

Standard workload (``/work/shared/reference/workload.md``): cart events wrapped as
Kafka-like records, filtered on ``detail-type == OrderPlaced and detail.total > 100``.
Both contenders run over the same records in the same process, several rounds each
(best round kept, to shed scheduler noise), and must agree on every record.

    .venv/bin/python bench/bench_patterns.py [--events N] [--rounds R]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from connectors.generator import cart_event
from pipes.patterns import EventFilter

PATTERN = {"value": {"detail-type": ["OrderPlaced"], "detail": {"total": [{"numeric": [">", 100]}]}}}


def by_hand(r: dict[str, Any]) -> bool:
    """The test as one would write it inline, short-circuiting before looking at the total."""
    value = r.get("value", {})
    if value.get("detail-type") != "OrderPlaced":
        return False
    total = value.get("detail", {}).get("total")
    return isinstance(total, (int, float)) and total > 100  # the tuple form: faster than int | float


def records(count: int) -> list[dict[str, Any]]:
    return [{"topic": "shop.cart", "partition": 0, "offset": i, "value": cart_event(i)} for i in range(count)]


def best_rate(test: Callable[[Any], bool], batch: list[dict[str, Any]], rounds: int) -> float:
    """Matches per second of the fastest round."""
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for record in batch:
            test(record)
        best = min(best, time.perf_counter() - start)
    return len(batch) / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    batch = records(args.events)
    matches = EventFilter.compile([PATTERN]).matches
    passed = 0
    for record in batch:
        expected = by_hand(record)
        if matches(record) != expected:
            raise SystemExit(f"disagreement on offset {record['offset']}: hand-written says {expected}")
        passed += expected

    pattern_rate = best_rate(matches, batch, args.rounds)
    hand_rate = best_rate(by_hand, batch, args.rounds)
    print(f"events:        {len(batch):,} ({passed / len(batch):.1%} pass the filter)")
    print(f"EventFilter:   {pattern_rate:,.0f} matches/s")
    print(f"hand-written:  {hand_rate:,.0f} matches/s")
    print(f"ratio:         {pattern_rate / hand_rate:.2f} of the hand-written speed")


if __name__ == "__main__":
    main()
