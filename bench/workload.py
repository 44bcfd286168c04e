"""The standard workload (/work/shared/reference/workload.md) as the harness needs it.

The events, the filter and the transform in the three forms the contenders
take them: the pipe's EventBridge pattern and JMESPath projection over its
record, and the expected output bytes the harness checks every contender
against. The hand-written loops and Quix spell the same filter and transform
out in their own code, as a user would; the check catches any drift.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from connectors.generator import cart_event  # noqa: E402

__all__ = ["BATCH", "cart_event", "expected_payload", "pipe_filter", "pipe_transform"]

#: Records per read and per write: the batch size every contender uses.
BATCH = 500


def pipe_filter(root: str) -> dict[str, Any]:
    """The filter as an EventBridge pattern over the pipe's record (``value`` for Kafka, ``body`` for Redis)."""
    return {root: {"detail-type": ["OrderPlaced"], "detail": {"total": [{"numeric": [">", 100]}]}}}


def pipe_transform(root: str) -> str:
    """The transform as a JMESPath projection over the pipe's record."""
    detail = f"{root}.detail"
    return (
        f"{{order: {detail}.order_id, customer: {detail}.customer.id, tier: {detail}.customer.tier, "
        f"total: {detail}.total, items: length({detail}.items)}}"
    )


def expected_payload(event: dict[str, Any]) -> bytes | None:
    """The exact output bytes for ``event``, or None when it does not pass the filter."""
    detail = event["detail"]
    if event["detail-type"] != "OrderPlaced" or not detail["total"] > 100:
        return None
    return orjson.dumps(
        {
            "order": detail["order_id"],
            "customer": detail["customer"]["id"],
            "tier": detail["customer"]["tier"],
            "total": detail["total"],
            "items": len(detail["items"]),
        }
    )
