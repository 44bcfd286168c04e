"""redis_list, redis_pubsub, redis_lookup and the Redis checkpoint store, connector by connector."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest
import redis.asyncio as redis

from connectors.redis.checkpoint_store import RedisCheckpointStore
from connectors.redis.list_source import RedisListSource, RedisListSourceOptions
from connectors.redis.list_target import RedisListTarget, RedisListTargetOptions
from connectors.redis.lookup_enricher import RedisLookupEnricher, RedisLookupOptions
from connectors.redis.pubsub_source import RedisPubSubSource, RedisPubSubSourceOptions
from connectors.redis.pubsub_target import RedisPubSubTarget, RedisPubSubTargetOptions
from pipes.connector import ConnectorContext, SourceContext
from pipes.errors import FatalError
from pipes.events import Event

pytestmark = pytest.mark.integration


def list_source(url: str, key: str, **options: Any) -> RedisListSource:
    options.setdefault("consumer", "c1")
    return RedisListSource(RedisListSourceOptions(url=url, list=key, **options))


async def read_all(src: Any, expected: int, max_events: int = 100) -> list[Event]:
    events: list[Event] = []
    empty = 0
    while len(events) < expected and empty < 2:
        batch = await src.read(max_events, 0.05)
        empty = 0 if batch else empty + 1
        events.extend(batch)
    return events


async def test_list_target_then_source_is_a_fifo_queue(
    redis_url: str, redis_client: redis.Redis, unique_key: Callable[[str], str]
) -> None:
    key = unique_key("q")
    target = RedisListTarget(RedisListTargetOptions(url=redis_url, list=key))
    await target.start(ConnectorContext(pipe="p"))
    try:
        outcomes = await target.write([Event({}, "p", n, payload={"n": n}) for n in range(5)])
        assert outcomes == [None] * 5
    finally:
        await target.stop()
    src = list_source(redis_url, key, count=2)
    await src.start(SourceContext(pipe="p"))
    try:
        events = await read_all(src, 5)
        assert [e.body for e in events] == [{"n": n} for n in range(5)]
        assert events[0].record == {"list": key, "body": {"n": 0}}
        assert [e.position for e in events] == [1, 2, 3, 4, 5]
        processing = f"{key}:processing:c1"
        assert await redis_client.llen(key) == 0
        assert await redis_client.llen(processing) == 5
        await src.commit({key: 3})
        assert await redis_client.lrange(processing, 0, -1) == ['{"n":3}', '{"n":4}']
        await src.commit({key: 5})
        assert await redis_client.llen(processing) == 0
    finally:
        await src.stop()


async def test_list_leftovers_are_delivered_first_after_a_crash(
    redis_url: str, redis_client: redis.Redis, unique_key: Callable[[str], str]
) -> None:
    key = unique_key("q")
    await redis_client.rpush(key, *[f"v{n}" for n in range(6)])
    first = list_source(redis_url, key)
    await first.start(SourceContext(pipe="p"))
    try:
        events = await read_all(first, 6)
        await first.commit({key: 2})  # v0, v1 settled; v2..v5 were in flight
    finally:
        await first.stop()
    await redis_client.rpush(key, "v6")
    again = list_source(redis_url, key)
    await again.start(SourceContext(pipe="p", once=True))
    try:
        events = await read_all(again, 5)
        assert [e.body for e in events] == ["v2", "v3", "v4", "v5", "v6"]
        assert await again.read(10, 0.05) == []
        assert again.caught_up()
        await again.commit({key: 5})
        assert await redis_client.llen(f"{key}:processing:c1") == 0
    finally:
        await again.stop()


async def test_list_source_blocks_for_a_new_item(
    redis_url: str, redis_client: redis.Redis, unique_key: Callable[[str], str]
) -> None:
    key = unique_key("q")
    src = list_source(redis_url, key)
    await src.start(SourceContext(pipe="p"))
    try:
        reading = asyncio.create_task(src.read(10, 2.0))
        await asyncio.sleep(0)  # let the read start before the push
        await redis_client.rpush(key, "late")
        events = await asyncio.wait_for(reading, 5)
        assert [e.body for e in events] == ["late"]
    finally:
        await src.stop()


async def test_list_target_lpush(
    redis_url: str, redis_client: redis.Redis, unique_key: Callable[[str], str]
) -> None:
    key = unique_key("q")
    target = RedisListTarget(RedisListTargetOptions(url=redis_url, list=key, push="left"))
    await target.start(ConnectorContext(pipe="p"))
    try:
        await target.write([Event({}, "p", n, payload=f"v{n}") for n in range(3)])
    finally:
        await target.stop()
    assert await redis_client.lrange(key, 0, -1) == ["v2", "v1", "v0"]


async def test_pubsub_delivers_while_subscribed(
    redis_url: str, redis_client: redis.Redis, unique_key: Callable[[str], str]
) -> None:
    channel = unique_key("ch")
    src = RedisPubSubSource(
        RedisPubSubSourceOptions(url=redis_url, channels=[channel], patterns=[f"{channel}.*"])
    )
    target = RedisPubSubTarget(RedisPubSubTargetOptions(url=redis_url, channel=channel))
    await redis_client.publish(channel, "before anyone listened")  # lost: at most once
    await src.start(SourceContext(pipe="p", once=True))
    await target.start(ConnectorContext(pipe="p"))
    try:
        assert await target.write([Event({}, "p", n, payload={"n": n}) for n in range(3)]) == [None] * 3
        await redis_client.publish(f"{channel}.sub", "via pattern")
        events = await read_all(src, 4)
        assert [e.body for e in events] == [{"n": 0}, {"n": 1}, {"n": 2}, "via pattern"]
        assert events[0].record == {"channel": channel, "pattern": None, "body": {"n": 0}}
        assert events[3].record["pattern"] == f"{channel}.*"
        assert await src.read(10, 0.05) == []
        assert src.caught_up()
    finally:
        await target.stop()
        await src.stop()


def lookup(url: str, **options: Any) -> RedisLookupEnricher:
    return RedisLookupEnricher(RedisLookupOptions(url=url, **options))


async def test_lookup_get_hgetall_json_and_missing_policies(
    redis_url: str, redis_client: redis.Redis, unique_key: Callable[[str], str]
) -> None:
    prefix = unique_key("cust")
    await redis_client.set(f"{prefix}:1", orjson.dumps({"name": "Ada", "tier": "gold"}))
    await redis_client.set(f"{prefix}:2", "plain")
    await redis_client.hset(f"{prefix}:h1", mapping={"name": "Ada", "tier": "gold"})
    events = [Event({"body": {"c": c}}, "p", n) for n, c in enumerate(["1", "2", "404"])]
    key = f"{prefix}:<$.body.c>"

    results: dict[str, Any] = {}
    for policy in ("keep", "drop", "fail"):
        enricher = lookup(redis_url, key=key, missing=policy)
        await enricher.start(ConnectorContext(pipe="p"))
        try:
            results[policy] = await enricher.enrich(events)
        finally:
            await enricher.stop()
    assert results["keep"] == [[{"name": "Ada", "tier": "gold"}], ["plain"], [None]]
    assert results["drop"][2] == []
    failed = results["fail"][2]
    assert isinstance(failed, FatalError) and str(failed) == f"key '{prefix}:404' not found"

    enricher = lookup(redis_url, key=f"{prefix}:h<$.body.c>", command="hgetall", missing="drop")
    await enricher.start(ConnectorContext(pipe="p"))
    try:
        assert await enricher.enrich(events[:2]) == [[{"name": "Ada", "tier": "gold"}], []]
    finally:
        await enricher.stop()

    enricher = lookup(redis_url, key=key, command="json")
    await enricher.start(ConnectorContext(pipe="p"))
    try:
        out = await enricher.enrich(events)
        assert out[0] == [{"name": "Ada", "tier": "gold"}]
        assert isinstance(out[1], FatalError) and "is not JSON" in str(out[1])
        assert out[2] == [None]
    finally:
        await enricher.stop()


async def test_redis_checkpoint_store_round_trip(redis_url: str, unique_key: Callable[[str], str]) -> None:
    pipe = unique_key("pipe")
    store = RedisCheckpointStore(redis_url)
    try:
        assert await store.load(pipe) == {}
        await store.save(pipe, {"a": 3, "b": "1-2"})
        await store.save(pipe, {"a": 4, "b": "1-3"})
        assert await store.load(pipe) == {"a": 4, "b": "1-3"}
    finally:
        await store.close()
    reopened = RedisCheckpointStore(redis_url)
    try:
        assert await reopened.load(pipe) == {"a": 4, "b": "1-3"}
    finally:
        await reopened.close()


async def test_options_reject_mistakes(redis_url: str) -> None:
    with pytest.raises(ValueError, match="url must start with"):
        RedisListSourceOptions(url="http://x", list="q")
    with pytest.raises(ValueError, match="at least one of channels or patterns"):
        RedisPubSubSourceOptions(url=redis_url)
    with pytest.raises(ValueError):
        RedisLookupOptions(url=redis_url, key="customer:<$.a..b>")
    with pytest.raises(ValueError):
        RedisListSourceOptions.model_validate({"url": redis_url, "list": "q", "typo": 1})


def test_options_override_the_url(redis_url: str) -> None:
    from connectors.redis.client import RedisOptions, open_client

    client = open_client(RedisOptions(url="redis://u:p@127.0.0.1:1/3", username="acl", password="pw", db=5))
    kwargs = client.connection_pool.connection_kwargs
    assert (kwargs["username"], kwargs["password"], kwargs["db"]) == ("acl", "pw", 5)
    assert time.monotonic() > 0
