"""The redis_stream source and target against a real server, connector by connector."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest
import redis.asyncio as redis

from connectors.redis.stream_source import RedisStreamSource, RedisStreamSourceOptions
from connectors.redis.stream_target import RedisStreamTarget, RedisStreamTargetOptions
from pipes.connector import ConnectorContext, SourceContext
from pipes.errors import FatalError, RetryableError
from pipes.events import Event

pytestmark = pytest.mark.integration


def source(url: str, stream: str, **options: Any) -> RedisStreamSource:
    options.setdefault("group", "g")
    options.setdefault("consumer", "c1")
    options.setdefault("starting_position", "earliest")
    return RedisStreamSource(RedisStreamSourceOptions(url=url, stream=stream, **options))


async def read_all(src: RedisStreamSource, expected: int, max_events: int = 100) -> list[Event]:
    """Read until ``expected`` events came (or reads come back empty twice)."""
    events: list[Event] = []
    empty = 0
    while len(events) < expected and empty < 2:
        batch = await src.read(max_events, 0.05)
        empty = 0 if batch else empty + 1
        events.extend(batch)
    return events


async def pending_count(client: redis.Redis, stream: str, group: str = "g") -> int:
    summary: Any = await client.xpending(stream, group)
    return int(summary["pending"])


async def test_record_layout_and_ack_of_settled_prefix(
    redis_url: str, redis_client: redis.Redis, unique_key: Callable[[str], str]
) -> None:
    stream = unique_key("s")
    ids = [await redis_client.xadd(stream, {"data": orjson.dumps({"n": n}), "kind": "k"}) for n in range(5)]
    await redis_client.xadd(stream, {"data": "plain text"})
    src = source(redis_url, stream)
    await src.start(SourceContext(pipe="p"))
    try:
        events = await read_all(src, 6)
        assert [e.record["id"] for e in events[:5]] == ids
        first = events[0]
        assert first.record == {
            "stream": stream,
            "id": ids[0],
            "fields": {"data": '{"n":0}', "kind": "k"},
            "body": {"n": 0},
        }
        assert first.body == {"n": 0}
        assert first.partition == stream and first.position == ids[0]
        assert events[5].body == "plain text"
        assert await pending_count(redis_client, stream) == 6

        await src.commit({stream: str(ids[2])})
        assert await pending_count(redis_client, stream) == 3
        pending: Any = await redis_client.xpending_range(stream, "g", "-", "+", 10)
        assert [p["message_id"] for p in pending] == [*ids[3:], events[5].record["id"]]

        await src.commit({stream: events[5].record["id"]})
        assert await pending_count(redis_client, stream) == 0
    finally:
        await src.stop()


async def test_group_created_at_latest_skips_existing_entries(
    redis_url: str, redis_client: redis.Redis, unique_key: Callable[[str], str]
) -> None:
    stream = unique_key("s")
    await redis_client.xadd(stream, {"data": "old"})
    src = source(redis_url, stream, starting_position="latest")
    await src.start(SourceContext(pipe="p"))
    try:
        assert await src.read(10, 0.05) == []
        new_id = await redis_client.xadd(stream, {"data": "new"})
        events = await read_all(src, 1)
        assert [e.record["id"] for e in events] == [new_id]
    finally:
        await src.stop()


async def test_restart_redelivers_own_pending_first_and_counts_deliveries(
    redis_url: str, redis_client: redis.Redis, unique_key: Callable[[str], str]
) -> None:
    stream = unique_key("s")
    ids = [await redis_client.xadd(stream, {"data": str(n)}) for n in range(4)]
    first = source(redis_url, stream, max_deliveries=2)
    await first.start(SourceContext(pipe="p"))
    try:
        assert len(await read_all(first, 3, max_events=3)) == 3
    finally:
        await first.stop()  # "crash": nothing acknowledged

    for attempt in (2, 3):
        again = source(redis_url, stream, max_deliveries=2)
        await again.start(SourceContext(pipe="p"))
        try:
            events = await read_all(again, 4 if attempt == 2 else 3)
        finally:
            await again.stop()
        if attempt == 2:
            # Own pending entries come back first, in id order, then the new one.
            assert [e.record["id"] for e in events] == ids
            assert [e.fault for e in events] == [None] * 4
        else:
            # The first three were delivered a third time: more than max_deliveries=2.
            assert [e.record["id"] for e in events[:3]] == ids[:3]
            for event in events[:3]:
                assert isinstance(event.fault, FatalError)
                assert "delivered 3 times, more than max_deliveries=2" in str(event.fault)


async def test_survivor_claims_idle_entries_of_another_consumer(
    redis_url: str, redis_client: redis.Redis, unique_key: Callable[[str], str]
) -> None:
    stream = unique_key("s")
    ids = [await redis_client.xadd(stream, {"data": str(n)}) for n in range(6)]
    dead = source(redis_url, stream, consumer="dead")
    await dead.start(SourceContext(pipe="p"))
    try:
        assert len(await read_all(dead, 4, max_events=4)) == 4
    finally:
        await dead.stop()
    survivor = source(redis_url, stream, consumer="survivor", claim_idle="200ms")
    await survivor.start(SourceContext(pipe="p"))
    try:
        # The dead consumer's entries are not idle long enough yet: only the new ones come.
        events = await read_all(survivor, 2)
        assert [e.record["id"] for e in events] == ids[4:]
        claimed: list[Event] = []
        await poll(lambda: len(claimed) >= 4, lambda: _extend(survivor, claimed))
        assert [e.record["id"] for e in claimed] == ids[:4]
        await survivor.commit({stream: claimed[-1].record["id"]})
        assert await pending_count(redis_client, stream) == 0
    finally:
        await survivor.stop()


async def test_entries_in_flight_are_not_claimed_again_by_their_holder(
    redis_url: str, redis_client: redis.Redis, unique_key: Callable[[str], str]
) -> None:
    stream = unique_key("s")
    for n in range(3):
        await redis_client.xadd(stream, {"data": str(n)})
    src = source(redis_url, stream, claim_idle="100ms")
    await src.start(SourceContext(pipe="p"))
    try:
        assert len(await read_all(src, 3)) == 3
        # Held past claim_idle (a slow target): reads keep returning nothing new.
        extra: list[Event] = []
        deadline_reads = 0
        while deadline_reads < 10:
            extra.extend(await src.read(10, 0.05))
            deadline_reads += 1
        assert extra == []
        pending: Any = await redis_client.xpending_range(stream, "g", "-", "+", 10)
        assert [p["times_delivered"] for p in pending] == [1, 1, 1]
    finally:
        await src.stop()


async def test_once_is_caught_up_at_the_end_seen_at_start(
    redis_url: str, redis_client: redis.Redis, unique_key: Callable[[str], str]
) -> None:
    stream = unique_key("s")
    for n in range(5):
        await redis_client.xadd(stream, {"data": str(n)})
    src = source(redis_url, stream)
    await src.start(SourceContext(pipe="p", once=True))
    try:
        assert not src.caught_up()
        events = await read_all(src, 5)
        await redis_client.xadd(stream, {"data": "later"})
        assert len(events) == 5
        assert await src.read(10, 0.05) == []
        assert src.caught_up()
    finally:
        await src.stop()


async def test_group_recreated_when_it_vanished(
    redis_url: str, redis_client: redis.Redis, unique_key: Callable[[str], str]
) -> None:
    stream = unique_key("s")
    src = source(redis_url, stream)
    await src.start(SourceContext(pipe="p"))
    try:
        await redis_client.delete(stream)  # the group goes with the stream
        assert await src.read(10, 0.05) == []
        new_id = await redis_client.xadd(stream, {"data": "after"})
        events = await read_all(src, 1)
        assert [e.record["id"] for e in events] == [new_id]
    finally:
        await src.stop()


async def test_unreachable_server_is_retryable(unique_key: Callable[[str], str]) -> None:
    from redis_server import free_port

    url = f"redis://127.0.0.1:{free_port()}/0"
    src = source(url, unique_key("s"))
    with pytest.raises(RetryableError):
        await src.start(SourceContext(pipe="p"))
    await src.stop()
    # A target connects at start: an unreachable server is a start failure naming the server
    # (retried by the runner; a --once run gives up after --start-timeout).
    target = RedisStreamTarget(RedisStreamTargetOptions(url=url, stream="x"))
    try:
        with pytest.raises(RetryableError, match=url.removesuffix("/0")):
            await target.start(ConnectorContext(pipe="p"))
    finally:
        await target.stop()


async def test_target_adds_payload_fields_and_trims(
    redis_url: str, redis_client: redis.Redis, unique_key: Callable[[str], str]
) -> None:
    stream = unique_key("out")
    target = RedisStreamTarget(
        RedisStreamTargetOptions(
            url=redis_url,
            stream=stream,
            fields={"order": "<$.body.order>", "kind": "fixed"},
            maxlen=1000,
        )
    )
    await target.start(ConnectorContext(pipe="p"))
    try:
        events = [
            Event({"body": {"order": f"o{n}"}}, "p", n, payload={"order": f"o{n}", "n": n}) for n in range(3)
        ]
        events.append(Event({"body": "x"}, "p", 3, payload="raw text"))
        assert await target.write(events) == [None] * 4
        entries: Any = await redis_client.xrange(stream)
        assert [fields for _, fields in entries] == [
            {"data": '{"order":"o0","n":0}', "order": "o0", "kind": "fixed"},
            {"data": '{"order":"o1","n":1}', "order": "o1", "kind": "fixed"},
            {"data": '{"order":"o2","n":2}', "order": "o2", "kind": "fixed"},
            {"data": "raw text", "order": "", "kind": "fixed"},
        ]
    finally:
        await target.stop()


async def test_target_reports_wrong_type_per_event_as_fatal(
    redis_url: str, redis_client: redis.Redis, unique_key: Callable[[str], str]
) -> None:
    key = unique_key("not-a-stream")
    await redis_client.set(key, "x")
    target = RedisStreamTarget(RedisStreamTargetOptions(url=redis_url, stream=key))
    await target.start(ConnectorContext(pipe="p"))
    try:
        outcomes = await target.write([Event({}, "p", 0, payload=1), Event({}, "p", 1, payload=2)])
        assert all(isinstance(o, FatalError) and "WRONGTYPE" in str(o) for o in outcomes)
    finally:
        await target.stop()


async def _extend(src: RedisStreamSource, into: list[Event]) -> None:
    into.extend(await src.read(10, 0.05))


async def poll(done: Callable[[], bool], step: Callable[[], Any], timeout_s: float = 5.0) -> None:
    """Run ``step`` until ``done()`` or the deadline; fail at the deadline."""
    import time

    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, "condition not reached before the deadline"
        await step()
