"""Rendering speed of an input template against hand-written orjson code.

Standard workload (``/work/shared/reference/workload.md``): cart events wrapped as
Kafka-like records, transformed by the workload's template (four fields). Three
contenders run over the same records in the same process, interleaved, several
rounds each (best round kept, to shed scheduler noise), and must agree on every
record: the template as a pipe compiles it, the same template kept to the
chunk-by-chunk text renderer, and the transform written by hand.

    .venv/bin/python bench/bench_templates.py [--events N] [--rounds R]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import orjson

from connectors.generator import cart_event
from pipes.templates import InputTemplate, reserved_variables

TEMPLATE = (
    '{"order": <$.value.detail.order_id>, "customer": <$.value.detail.customer.id>, '
    '"tier": <$.value.detail.customer.tier>, "total": <$.value.detail.total>}'
)
VARIABLES = reserved_variables("bench", "kafka", "kafka", None)


def by_hand(r: dict[str, Any], variables: Any = None) -> str:
    detail = r["value"]["detail"]
    customer = detail["customer"]
    payload = {
        "order": detail["order_id"],
        "customer": customer["id"],
        "tier": customer["tier"],
        "total": detail["total"],
    }
    return orjson.dumps(payload).decode()


def records(count: int) -> list[dict[str, Any]]:
    return [{"topic": "shop.cart", "partition": 0, "offset": i, "value": cart_event(i)} for i in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    batch = records(args.events)
    contenders: dict[str, Callable[[Any, Any], str]] = {
        "InputTemplate": InputTemplate(TEMPLATE).render,
        "text renderer": InputTemplate(TEMPLATE, fast=False).render,
        "hand-written": by_hand,
    }
    for record in batch:
        outputs = {name: render(record, VARIABLES) for name, render in contenders.items()}
        if len(set(outputs.values())) != 1:
            raise SystemExit(f"disagreement on offset {record['offset']}: {outputs}")

    best = dict.fromkeys(contenders, float("inf"))
    for _ in range(args.rounds):
        for name, render in contenders.items():
            start = time.perf_counter()
            for record in batch:
                render(record, VARIABLES)
            best[name] = min(best[name], time.perf_counter() - start)
    hand = len(batch) / best["hand-written"]
    print(f"events:         {len(batch):,}")
    for name, seconds in best.items():
        rate = len(batch) / seconds
        print(f"{name + ':':15} {rate:,.0f} renders/s ({rate / hand:.2f} of hand-written)")


if __name__ == "__main__":
    main()
