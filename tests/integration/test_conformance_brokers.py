"""The broker connectors pass the same conformance suite as the built-ins (pipes.conformance)."""

from __future__ import annotations

import uuid

import orjson
import pytest
import redis.asyncio as redis
from kafka_broker import KafkaBroker

from connectors.kafka import KafkaSource, KafkaSourceOptions, KafkaTarget, KafkaTargetOptions
from connectors.redis.list_source import RedisListSource, RedisListSourceOptions
from connectors.redis.list_target import RedisListTarget, RedisListTargetOptions
from connectors.redis.pubsub_target import RedisPubSubTarget, RedisPubSubTargetOptions
from connectors.redis.stream_source import RedisStreamSource, RedisStreamSourceOptions
from connectors.redis.stream_target import RedisStreamTarget, RedisStreamTargetOptions
from pipes.conformance import check_source, check_target, check_target_isolates_bad_payloads

pytestmark = pytest.mark.integration


def _bytes(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else value


def counter() -> dict[str, int]:
    return {"n": 0}


async def test_kafka_source(kafka: KafkaBroker) -> None:
    topic = await kafka.create_topic(partitions=3)
    group = kafka.group_id()
    produced = counter()

    async def produce(n: int) -> None:
        values = [orjson.dumps({"n": produced["n"] + i}) for i in range(n)]
        produced["n"] += n
        await kafka.produce(topic, values)

    def make() -> KafkaSource:
        return KafkaSource(
            KafkaSourceOptions(
                bootstrap_servers=kafka.bootstrap,
                topics=[topic],
                group_id=group,
                session_timeout=2.0,
                starting_position="earliest",
            )
        )

    await check_source(make, produce, timeout_s=30.0)


async def test_kafka_target(kafka: KafkaBroker) -> None:
    topic = await kafka.create_topic(partitions=1)

    async def delivered() -> list[bytes]:
        return [r.value for r in await kafka.consume_all(topic, 5)]

    await check_target(
        lambda: KafkaTarget(
            KafkaTargetOptions(bootstrap_servers=kafka.bootstrap, topic=topic, idempotent=False)
        ),
        delivered=delivered,
    )


async def test_redis_stream_source(redis_url: str, redis_client: redis.Redis) -> None:
    stream = f"conf-{uuid.uuid4().hex[:8]}"
    produced = counter()

    async def produce(n: int) -> None:
        for _ in range(n):
            await redis_client.xadd(stream, {"data": orjson.dumps({"n": produced["n"]})})
            produced["n"] += 1

    def make() -> RedisStreamSource:
        return RedisStreamSource(
            RedisStreamSourceOptions(
                url=redis_url, stream=stream, group="g", consumer="c1", starting_position="earliest"
            )
        )

    await check_source(make, produce)


async def test_redis_stream_target(redis_url: str, redis_client: redis.Redis) -> None:
    stream = f"conf-{uuid.uuid4().hex[:8]}"

    async def delivered() -> list[bytes]:
        return [_bytes(fields["data"]) for _, fields in await redis_client.xrange(stream)]

    await check_target(
        lambda: RedisStreamTarget(RedisStreamTargetOptions(url=redis_url, stream=stream)), delivered=delivered
    )


async def test_redis_list_source(redis_url: str, redis_client: redis.Redis) -> None:
    key = f"conf-{uuid.uuid4().hex[:8]}"
    produced = counter()

    async def produce(n: int) -> None:
        for _ in range(n):
            await redis_client.rpush(key, orjson.dumps({"n": produced["n"]}))
            produced["n"] += 1

    await check_source(
        lambda: RedisListSource(RedisListSourceOptions(url=redis_url, list=key, consumer="c1")), produce
    )


async def test_redis_list_target(redis_url: str, redis_client: redis.Redis) -> None:
    key = f"conf-{uuid.uuid4().hex[:8]}"

    async def delivered() -> list[bytes]:
        return [_bytes(item) for item in await redis_client.lrange(key, 0, -1)]

    await check_target(
        lambda: RedisListTarget(RedisListTargetOptions(url=redis_url, list=key)), delivered=delivered
    )


async def test_redis_pubsub_target_fails_a_bad_payload_alone(redis_url: str) -> None:
    await check_target_isolates_bad_payloads(
        lambda: RedisPubSubTarget(
            RedisPubSubTargetOptions(url=redis_url, channel=f"conf-{uuid.uuid4().hex[:8]}")
        )
    )
