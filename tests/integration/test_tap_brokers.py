"""Live taps on pipes over real brokers: each stage's tap sees the events that reached it, as the source made them.

Kafka and Redis sources hand over lazy events (the body's bytes plus the
source's metadata); a tap must show their whole record, and must not change
what the pipe does with them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
import redis.asyncio as redis
from kafka_broker import KafkaBroker
from test_kafka_pipes import FILTER as KAFKA_FILTER
from test_kafka_pipes import kafka_target, order, passes, produce_orders, source
from test_redis_pipes import FILTER, TEMPLATE, preload, stream_pipe
from test_redis_pipes import passes as cart_passes

from connectors.generator import cart_event
from pipes.tap import TapHub
from pipes.testing import run_pipe

pytestmark = pytest.mark.integration


async def tapped(definition: dict[str, Any], tmp_path: Path) -> tuple[Any, dict[str, list[dict[str, Any]]]]:
    """Run ``definition`` to its end with a tap on every stage; its stats and the tap's lines by stage."""
    hub = TapHub(definition["name"])
    tap = hub.attach(rate=None, buffer=1_000_000)
    stats = await run_pipe(definition, once=True, state_dir=tmp_path, taps=hub)
    lines: dict[str, list[dict[str, Any]]] = {}
    for raw in await tap.lines(0):
        line = orjson.loads(raw)
        lines.setdefault(line["stage"], []).append(line)
    assert tap.dropped == 0 and tap.over_rate == 0
    return stats, lines


async def test_a_tap_on_a_redis_stream_pipe(
    redis_url: str, redis_client: redis.Redis, unique_key: Any, tmp_path: Path
) -> None:
    src, out = unique_key("in"), unique_key("out")
    total = 1_000
    ids = await preload(redis_client, src, 0, total)
    definition = stream_pipe("tapped-stream", redis_url, src, out)
    definition["filter"] = FILTER
    definition["transform"] = {"template": TEMPLATE}
    definition["target"] = {"type": "redis_stream", "url": redis_url, "stream": out}
    stats, lines = await tapped(definition, tmp_path)

    passing = [i for i in range(total) if cart_passes(cart_event(i))]
    assert stats.delivered == len(passing) and stats.filtered == total - len(passing)
    assert [line["position"] for line in lines["source"]] == ids
    assert [line["record"]["body"] for line in lines["source"]] == [cart_event(i) for i in range(total)]
    outcomes = {line["position"]: line["outcome"] for line in lines["filter"]}
    assert outcomes == {ids[i]: "matched" if i in passing else "filtered" for i in range(total)}
    assert [line["position"] for line in lines["transform"]] == [ids[i] for i in passing]
    delivered = [line for line in lines["target"] if line["outcome"] == "delivered"]
    assert [line["position"] for line in delivered] == [ids[i] for i in passing]
    entries: Any = await redis_client.xrange(out)
    assert [line["payload"] for line in delivered] == [fields["data"] for _, fields in entries]


async def test_a_tap_on_a_kafka_pipe(kafka: KafkaBroker, tmp_path: Path) -> None:
    topic = await kafka.create_topic(partitions=2)
    out = await kafka.create_topic(partitions=1)
    n = 300
    produced = await produce_orders(kafka, topic, n)
    stats, lines = await tapped(
        {
            "name": "tapped-kafka",
            "source": source(kafka, topic, kafka.group_id()),
            "filter": KAFKA_FILTER,
            "transform": {"jmespath": "{order: value.detail.order_id}"},
            "target": kafka_target(kafka, out),
            "batch": {"size": 50, "window": "20ms"},
        },
        tmp_path,
    )
    expected = sorted(f"ord-{i:05d}" for i in range(n) if passes(order(i)))
    assert stats.delivered == len(expected)
    records = {
        (line["record"]["partition"], line["record"]["offset"]): line["record"] for line in lines["source"]
    }
    assert sorted(records) == sorted(produced)
    for record in records.values():
        assert record["topic"] == topic and record["value"]["detail"]["order_id"].startswith("ord-")
    matched = sorted(
        line["record"]["value"]["detail"]["order_id"]
        for line in lines["filter"]
        if line["outcome"] == "matched"
    )
    assert matched == expected
    assert sorted(line["payload"]["order"] for line in lines["transform"]) == expected
    assert (
        sorted(line["payload"]["order"] for line in lines["target"] if line["outcome"] == "delivered")
        == expected
    )
    written = await kafka.consume_all(out, len(expected))
    assert sorted(orjson.loads(r.value)["order"] for r in written) == expected
