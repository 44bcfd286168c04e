"""The Kafka source and target against a real broker, without the runner."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Collection
from typing import Any

import orjson
import pytest
from kafka_broker import KafkaBroker

from connectors.kafka import KafkaSource, KafkaSourceOptions, KafkaTarget, KafkaTargetOptions
from pipes.codec import Base64Body
from pipes.connector import ConnectorContext, SourceContext
from pipes.errors import FatalError, RetryableError
from pipes.events import Event

pytestmark = pytest.mark.integration


def source_for(kafka: KafkaBroker, topic: str, group: str, **extra: Any) -> KafkaSource:
    options = KafkaSourceOptions(
        bootstrap_servers=kafka.bootstrap,
        topics=[topic],
        group_id=group,
        starting_position="earliest",
        session_timeout="2s",
        fetch_max_wait="100ms",
        **extra,
    )
    return KafkaSource(options)


def target_for(kafka: KafkaBroker, **extra: Any) -> KafkaTarget:
    extra.setdefault("idempotent", False)
    return KafkaTarget(KafkaTargetOptions(bootstrap_servers=kafka.bootstrap, **extra))


async def read_n(source: KafkaSource, n: int, timeout_s: float = 20.0) -> list[Event]:
    events: list[Event] = []
    deadline = time.monotonic() + timeout_s
    while len(events) < n:
        assert time.monotonic() < deadline, f"read {len(events)} of {n} events"
        events.extend(await source.read(500, 0.2))
    return events


async def test_source_reads_records_in_the_aws_layout(kafka: KafkaBroker) -> None:
    topic = await kafka.create_topic(partitions=1)
    values = [b'{"a": 1, "b": [true, null]}', b"plain text", b"\xff\xfe\x00binary", b'"json string"']
    keys = [b"cust-1", None, b'{"id": 7}', b"\xc3\x28"]
    headers = [[("trace", b"abc"), ("n", b"\x01\x02")], [], [("trace", b"")], []]
    produced = await kafka.produce(topic, values, keys=keys, headers=headers)
    source = source_for(kafka, topic, kafka.group_id())
    await source.start(SourceContext(pipe="p"))
    try:
        events = await read_n(source, 4)
    finally:
        await source.stop()
    assert [(e.partition, e.position) for e in events] == [(f"{topic}-0", o) for _, o in produced]
    assert all(e.body_field == "value" for e in events)
    first = events[0].record
    assert first["topic"] == topic and first["partition"] == 0 and first["offset"] == 0
    assert isinstance(first["timestamp"], int) and first["timestamp"] > 1_600_000_000_000
    assert first["timestampType"] == "CREATE_TIME"
    assert first["key"] == "cust-1"
    assert first["headers"] == [{"trace": [97, 98, 99]}, {"n": [1, 2]}]
    assert first["value"] == {"a": 1, "b": [True, None]}
    assert events[0].body == {"a": 1, "b": [True, None]}
    assert events[1].record["key"] is None
    assert events[1].record["headers"] == []
    assert events[1].record["value"] == "plain text"
    assert events[2].record["key"] == {"id": 7}
    assert events[2].record["headers"] == [{"trace": []}]
    assert events[2].record["value"] == {"$base64": base64.b64encode(values[2]).decode()}
    assert events[3].record["key"] == {"$base64": base64.b64encode(keys[3]).decode()}
    assert events[3].record["value"] == "json string"


async def test_commit_commits_next_offset_of_given_partitions_only(kafka: KafkaBroker) -> None:
    topic = await kafka.create_topic(partitions=2)
    await kafka.produce(topic, [b"%d" % i for i in range(10)], partition=0)
    await kafka.produce(topic, [b"%d" % i for i in range(6)], partition=1)
    group = kafka.group_id()
    source = source_for(kafka, topic, group)
    await source.start(SourceContext(pipe="p"))
    try:
        events = await read_n(source, 16)
        assert sorted((e.partition, e.position) for e in events) == sorted(
            [(f"{topic}-0", i) for i in range(10)] + [(f"{topic}-1", i) for i in range(6)]
        )
        await source.commit({f"{topic}-0": 3})
        assert await kafka.committed(group, topic, 2) == {0: 4, 1: None}
        await source.commit({f"{topic}-1": 5, f"{topic}-0": 9})
        assert await kafka.committed(group, topic, 2) == {0: 10, 1: 6}
    finally:
        await source.stop()
    # A new member of the group resumes right after the commit.
    await kafka.produce(topic, [b"late"], partition=1)
    source = source_for(kafka, topic, group)
    await source.start(SourceContext(pipe="p"))
    try:
        events = await read_n(source, 1)
        assert [(e.partition, e.position, e.body) for e in events] == [(f"{topic}-1", 6, "late")]
    finally:
        await source.stop()


async def test_once_reads_everything_despite_under_reported_end_offsets(kafka: KafkaBroker) -> None:
    topic = await kafka.create_topic(partitions=3)
    # Pipelined sends travel in multi-record batches: Tansu then reports an end
    # offset below the real one, which must not end the read early.
    produced = await kafka.produce(topic, [b'{"i": %d}' % i for i in range(300)])
    source = source_for(kafka, topic, kafka.group_id())
    await source.start(SourceContext(pipe="p", once=True))
    events: list[Event] = []
    try:
        deadline = time.monotonic() + 30
        while True:
            assert time.monotonic() < deadline, f"not caught up after {len(events)} events"
            batch = await source.read(100, 0.2)
            events.extend(batch)
            if not batch and source.caught_up():
                break
        lag = source.lag()
    finally:
        await source.stop()
    assert sorted((e.partition, e.position) for e in events) == sorted(
        (f"{topic}-{p}", o) for p, o in produced
    )
    assert sorted(e.body["i"] for e in events) == list(range(300))
    assert lag is not None and set(lag.values()) <= {0}


async def test_once_with_an_empty_topic_is_caught_up(kafka: KafkaBroker) -> None:
    topic = await kafka.create_topic(partitions=2)
    source = source_for(kafka, topic, kafka.group_id())
    await source.start(SourceContext(pipe="p", once=True))
    try:
        deadline = time.monotonic() + 20
        while not source.caught_up():
            assert time.monotonic() < deadline
            assert await source.read(100, 0.2) == []
    finally:
        await source.stop()


async def test_revoked_partitions_go_to_the_runner_and_can_still_be_committed(
    kafka: KafkaBroker,
) -> None:
    topic = await kafka.create_topic(partitions=2)
    await kafka.produce(topic, [b"a%d" % i for i in range(5)], partition=0)
    await kafka.produce(topic, [b"b%d" % i for i in range(5)], partition=1)
    group = kafka.group_id()
    first = source_for(kafka, topic, group)
    revoked: list[list[str]] = []

    async def revoke(partitions: Collection[str]) -> None:
        revoked.append(sorted(partitions))
        # What the runner does: commit what was settled before letting go.
        await first.commit({p: 2 for p in partitions})

    await first.start(SourceContext(pipe="p", revoke=revoke))
    second = source_for(kafka, topic, group)
    try:
        assert len(await read_n(first, 10)) == 10
        await second.start(SourceContext(pipe="p"))
        got: list[Event] = []
        deadline = time.monotonic() + 30
        # The second member joins; the first gives its partitions up (eager
        # rebalance) and the group splits them.
        while not got:
            assert time.monotonic() < deadline, "second member never got a partition"
            got, _ = await asyncio.gather(second.read(100, 0.2), first.read(100, 0.2))
        assert revoked and revoked[0] == [f"{topic}-0", f"{topic}-1"]
        # The new owner resumed right after the commit made during revoke.
        assert {e.position for e in got} == {3, 4}
    finally:
        await second.stop()
        await first.stop()


async def test_target_writes_payloads_with_carried_key_and_headers(kafka: KafkaBroker) -> None:
    source_topic = await kafka.create_topic(partitions=1)
    out = await kafka.create_topic(partitions=2)
    await kafka.produce(
        source_topic,
        [b'{"n": 1}', b"\x00\xff raw", b"text"],
        keys=[b"k1", b"\x80bin", None],
        headers=[[("h", b"v1"), ("h", b"v2")], [], [("x", b"\xfe")]],
    )
    source = source_for(kafka, source_topic, kafka.group_id())
    target = target_for(kafka, topic=out)
    await source.start(SourceContext(pipe="p"))
    await target.start(ConnectorContext(pipe="p"))
    try:
        events = await read_n(source, 3)
        for event in events:
            event.payload = event.body
        assert list(await target.write(events)) == [None, None, None]
    finally:
        await target.stop()
        await source.stop()
    records = sorted(await kafka.consume_all(out, 3), key=lambda r: r.value)
    by_value = {r.value: r for r in records}
    assert set(by_value) == {b'{"n":1}', b"\x00\xff raw", b"text"}
    assert by_value[b'{"n":1}'].key == b"k1"
    assert list(by_value[b'{"n":1}'].headers) == [("h", b"v1"), ("h", b"v2")]
    assert by_value[b"\x00\xff raw"].key == b"\x80bin"
    assert by_value[b"text"].key is None
    assert list(by_value[b"text"].headers) == [("x", b"\xfe")]


async def test_target_renders_topic_key_and_header_templates(kafka: KafkaBroker) -> None:
    prefix = kafka.topic_name("orders")
    for region in ("eu", "us"):
        await kafka.create_topic(f"{prefix}.{region}", partitions=1)
    target = target_for(
        kafka,
        topic=prefix + ".<$.value.region>",
        key="<$.value.customer>",
        headers={"source": "pipes", "order": "<$.value.id>"},
    )
    events = []
    for i, region in enumerate(["eu", "us", "eu"]):
        record = {"topic": "in", "offset": i, "key": "ignored", "headers": [], "value": {}}
        record["value"] = {"region": region, "customer": f"c{i}", "id": f"o{i}"}
        event = Event(record=record, partition="in-0", position=i, body_field="value")
        event.payload = {"id": f"o{i}"}
        events.append(event)
    await target.start(ConnectorContext(pipe="p"))
    try:
        assert list(await target.write(events)) == [None, None, None]
    finally:
        await target.stop()
    eu = await kafka.consume_all(f"{prefix}.eu", 2)
    us = await kafka.consume_all(f"{prefix}.us", 1)
    assert [(r.key, r.value, list(r.headers)) for r in eu] == [
        (b"c0", b'{"id":"o0"}', [("source", b"pipes"), ("order", b"o0")]),
        (b"c2", b'{"id":"o2"}', [("source", b"pipes"), ("order", b"o2")]),
    ]
    assert [(r.key, r.value) for r in us] == [(b"c1", b'{"id":"o1"}')]


async def test_target_fails_only_the_event_that_is_too_large(kafka: KafkaBroker) -> None:
    out = await kafka.create_topic(partitions=1)
    target = target_for(kafka, topic=out, max_request_size=10_000, max_batch_size=10_000)
    events = []
    for i, payload in enumerate(["small", "x" * 20_000, {"ok": True}]):
        event = Event(record={"body": payload}, partition="m", position=i)
        event.payload = payload
        events.append(event)
    await target.start(ConnectorContext(pipe="p"))
    try:
        outcomes = list(await target.write(events))
    finally:
        await target.stop()
    assert outcomes[0] is None and outcomes[2] is None
    assert isinstance(outcomes[1], FatalError)
    records = await kafka.consume_all(out, 2)
    assert [r.value for r in records] == [b"small", b'{"ok":true}']
    assert all(r.key is None for r in records)


async def test_idempotent_producer_refused_by_the_broker_names_the_option(
    kafka: KafkaBroker,
) -> None:
    if kafka.process is None:
        pytest.skip("only Tansu refuses idempotent producers")
    target = target_for(kafka, topic="anything", idempotent=True)
    try:
        with pytest.raises(FatalError) as info:
            await target.start(ConnectorContext(pipe="p"))
    finally:
        await target.stop()
    message = str(info.value)
    assert "\n" not in message
    assert "idempotent: false" in message


async def test_round_trip_keeps_non_utf8_bytes(kafka: KafkaBroker) -> None:
    out = await kafka.create_topic(partitions=1)
    raw = bytes(range(256))
    target = target_for(kafka, topic=out)
    event = Event(record={}, partition="m", position=0)
    event.payload = Base64Body.of(raw)  # what decoding made of a body that is not UTF-8
    await target.start(ConnectorContext(pipe="p"))
    try:
        assert list(await target.write([event])) == [None]
    finally:
        await target.stop()
    (record,) = await kafka.consume_all(out, 1)
    assert record.value == raw
    assert orjson.dumps(None) == b"null"


async def test_topic_pattern_reads_every_matching_topic(kafka: KafkaBroker) -> None:
    prefix = kafka.topic_name("pat")
    first = await kafka.create_topic(f"{prefix}.a", partitions=1)
    second = await kafka.create_topic(f"{prefix}.b", partitions=2)
    other = await kafka.create_topic(f"{prefix}-other", partitions=1)
    await kafka.produce(first, [b"1", b"2"])
    await kafka.produce(second, [b"3", b"4", b"5"])
    await kafka.produce(other, [b"nope"])
    options = KafkaSourceOptions(
        bootstrap_servers=kafka.bootstrap,
        topic_pattern=rf"{prefix}\..*",
        group_id=kafka.group_id(),
        starting_position="earliest",
        session_timeout="2s",
        fetch_max_wait="100ms",
    )
    source = KafkaSource(options)
    await source.start(SourceContext(pipe="p", once=True))
    events: list[Event] = []
    try:
        deadline = time.monotonic() + 30
        while True:
            assert time.monotonic() < deadline, f"not caught up after {len(events)} events"
            batch = await source.read(100, 0.2)
            events.extend(batch)
            if not batch and source.caught_up():
                break
    finally:
        await source.stop()
    assert sorted(e.body for e in events) == [1, 2, 3, 4, 5]
    assert {e.record["topic"] for e in events} == {first, second}


async def test_unreachable_broker_at_start_is_retryable(kafka: KafkaBroker) -> None:
    from kafka_broker import free_port

    nowhere = f"127.0.0.1:{free_port()}"
    source = KafkaSource(KafkaSourceOptions(bootstrap_servers=nowhere, topics=["t"], group_id="g"))
    target = KafkaTarget(KafkaTargetOptions(bootstrap_servers=nowhere, topic="t"))
    for connector, context in ((source, SourceContext(pipe="p")), (target, ConnectorContext(pipe="p"))):
        with pytest.raises(RetryableError) as info:
            await connector.start(context)  # type: ignore[attr-defined]
        assert nowhere in str(info.value)
        await connector.stop()  # type: ignore[attr-defined]
