"""The Quix Streams contender of scenario K: the same filter and transform as a Quix app.

    python bench/kafka_quix.py --bootstrap HOST:PORT --topic IN --group G --output OUT

What a Quix user writes for the workload (a StreamingDataFrame: filter, apply,
to_topic), with the settings every Kafka contender of the benchmark shares: a
fresh consumer group at the earliest offset, a 2 s session timeout, acks all,
256 KiB batches, linger 5 ms. Differences from Quix's defaults, and why:

- ``enable.idempotence`` off: Quix turns it on, and Tansu does not implement
  InitProducerId (an idempotent producer cannot start against it).
- topics are created by the harness (``auto_create_topics=False``) and there is
  no state (``use_changelog_topics=False``), so Quix creates no topic of its own.
- ``commit_interval=1.0`` (Quix's default is 5 s): the loop and the pipe commit
  continuously, and a 5 s interval would only add idle time at the end of the
  whole-run figure. Each checkpoint flushes the producer before committing, so
  at-least-once holds as with the default.
- ``set_timestamp(now)`` before ``to_topic``: Quix gives an output record the
  timestamp of its input record, which would make the output's broker
  timestamps (the steady-state clock of the benchmark) the preload's. This
  costs one call per passing event.

Runs until SIGTERM (Quix stops, flushes and commits), exits 0.
"""

from __future__ import annotations

import argparse
import gc
import os
import time
from pathlib import Path
from typing import Any

from quixstreams import Application

SESSION_TIMEOUT_MS = 2000


def passes(event: dict[str, Any]) -> bool:
    return event["detail-type"] == "OrderPlaced" and event["detail"]["total"] > 100


def transform(event: dict[str, Any]) -> dict[str, Any]:
    detail = event["detail"]
    return {
        "order": detail["order_id"],
        "customer": detail["customer"]["id"],
        "tier": detail["customer"]["tier"],
        "total": detail["total"],
        "items": len(detail["items"]),
    }


def now_ms(value: Any, key: Any, timestamp: int, headers: Any) -> int:
    return time.time_ns() // 1_000_000


def main(args: argparse.Namespace) -> None:
    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        auto_create_topics=False,
        use_changelog_topics=False,
        commit_interval=1.0,
        state_dir=Path.cwd() / "quix-state",
        consumer_extra_config={
            "session.timeout.ms": SESSION_TIMEOUT_MS,
            "heartbeat.interval.ms": SESSION_TIMEOUT_MS // 3,
        },
        producer_extra_config={
            "enable.idempotence": False,
            "acks": "all",
            "batch.size": 262144,
            "linger.ms": 5,
        },
    )
    source = app.topic(args.topic, value_deserializer="json", key_deserializer="bytes")
    sink = app.topic(args.output, value_serializer="json", key_serializer="bytes")
    sdf = app.dataframe(source)
    sdf = sdf.filter(passes)
    sdf = sdf.apply(transform)
    sdf = sdf.set_timestamp(now_ms)
    sdf.to_topic(sink)
    app.run()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--output", required=True)
    if threshold := os.environ.get("BENCH_GC_THRESHOLD"):  # only with bench_kafka.py --gc-threshold
        gc.set_threshold(*(int(part) for part in threshold.split(",")))
    main(parser.parse_args())
