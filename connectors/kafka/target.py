"""The Kafka target: one producer, every record batch of a write in flight together.

Each event gets the outcome of the record batch it travelled in (one per
topic-partition per write), so when a partition's send fails only its events
are retried by the runner; a record that can never be written fails alone. Topic, key and headers may be
templates over the event's record; by default the key and headers of a Kafka
source record are carried over to the written record.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Literal, Self

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    CorruptRecordException,
    InvalidTopicError,
    KafkaConnectionError,
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
    TopicAuthorizationFailedError,
    UnknownError,
    UnsupportedVersionError,
)
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from pydantic import Field, model_validator

from connectors.kafka.options import KafkaConnectionOptions, client_kwargs
from connectors.kafka.partitioner import partition_for
from connectors.kafka.records import LAYOUT as KAFKA_LAYOUT
from connectors.kafka.records import headers_from_record, is_kafka_record, key_from_record
from pipes.connector import ConnectorContext, Target
from pipes.errors import FatalError, RetryableError
from pipes.events import Event, Outcome
from pipes.templates import InputTemplate
from pipes.units import Duration

__all__ = ["KafkaTarget", "KafkaTargetOptions"]

#: Errors retrying the same record cannot fix: the event goes to the dead letter.
_PERMANENT: tuple[type[Exception], ...] = (
    MessageSizeTooLargeError,
    RecordTooLargeError,
    RecordListTooLargeError,
    CorruptRecordException,
    InvalidTopicError,
    TopicAuthorizationFailedError,
)


#: What a broker answers InitProducerId with when it cannot or will not do idempotence
#: (Tansu: UnknownError; old brokers: UnsupportedVersion; no IdempotentWrite ACL).
_NO_PRODUCER_ID: tuple[type[Exception], ...] = (
    UnknownError,
    UnsupportedVersionError,
    ClusterAuthorizationFailedError,
)


def _template(text: str | None) -> InputTemplate | None:
    return InputTemplate(text) if text is not None and "<" in text else None


class KafkaTargetOptions(KafkaConnectionOptions):
    """Options of the Kafka target (a producer)."""

    topic: str = Field(
        min_length=1,
        description="Topic to write to: a name, or a template over the record such as "
        "`orders.<$.value.region>`.",
    )
    key: str | None = Field(
        default=None,
        description="Record key: text or a template (`<$.value.detail.customer.id>`). Default: the "
        "key of the Kafka source record, when the event came from Kafka; else no key.",
    )
    headers: dict[str, str] | None = Field(
        default=None,
        description="Record headers, name to text or template. Default: the headers of the Kafka "
        "source record, when the event came from Kafka. `{}` writes no headers.",
    )
    partition: int | None = Field(
        default=None,
        ge=0,
        description="Write every record to this partition (default: by key hash, as Kafka does).",
    )
    acks: Literal[0, 1, "all"] = Field(
        default="all",
        description="Acknowledgement to wait for: `all` (every in-sync replica), `1` (the "
        "leader) or `0` (none; delivery is then not confirmed).",
    )
    idempotent: bool = Field(
        default=True,
        description="Idempotent producer (no duplicates from producer retries). Needs `acks: all` "
        "and a broker that supports InitProducerId.",
    )
    compression_type: Literal["gzip", "snappy", "lz4", "zstd"] | None = Field(
        default=None, description="Compress record batches with this codec."
    )
    linger: Duration = Field(
        default=0.0,
        description="Wait this long for more records before sending a partial batch.",
    )
    max_batch_size: int = Field(
        default=262144, gt=0, description="Largest record batch per partition, in bytes."
    )
    max_request_size: int = Field(
        default=1048576, gt=0, description="Largest produce request (and record), in bytes."
    )
    request_timeout: Duration = Field(
        default=30.0,
        description="How long a send may wait for the broker (retrying inside) before it fails "
        "and the runner retries it.",
    )
    metadata_timeout: Duration = Field(
        default=5.0,
        description="How long a write waits for a topic that the cluster does not know (yet) "
        "before those events fail with a retryable error.",
    )

    @model_validator(mode="after")
    def _target(self) -> Self:
        if self.idempotent and self.acks != "all":
            raise ValueError(
                f"idempotent: true needs acks: all (got acks: {self.acks}); "
                "set idempotent: false to use other acks"
            )
        if self.max_batch_size > self.max_request_size:
            raise ValueError("max_batch_size must not exceed max_request_size")
        # Compile the templates now: a bad template is a load-time error.
        _template(self.topic)
        _template(self.key)
        for value in (self.headers or {}).values():
            _template(value)
        return self


class KafkaTarget(Target):
    """Produces each event's payload as one Kafka record."""

    options_model = KafkaTargetOptions
    options: KafkaTargetOptions

    def __init__(self, options: KafkaTargetOptions) -> None:
        super().__init__(options)
        self._producer: AIOKafkaProducer | None = None
        self._context: ConnectorContext | None = None
        self._topic = _template(options.topic)
        self._key = _template(options.key)
        self._headers: list[tuple[str, str, InputTemplate | None]] | None = (
            None
            if options.headers is None
            else [(name, text, _template(text)) for name, text in options.headers.items()]
        )
        #: No key or headers option: a Kafka source record's key and headers go on unchanged.
        self._carry_only = options.key is None and options.headers is None
        # Without templates the record is never read: bodies are freed right after the transform.
        self.reads_record = (
            self._topic is not None
            or self._key is not None
            or any(t is not None for _, _, t in self._headers or ())
        )

    async def start(self, context: ConnectorContext) -> None:
        o = self.options
        self._context = context
        await self.stop()  # a start retried after a failed one begins afresh
        producer = AIOKafkaProducer(
            acks=o.acks,
            enable_idempotence=o.idempotent,
            compression_type=o.compression_type,
            linger_ms=int(o.linger * 1000),
            max_batch_size=o.max_batch_size,
            max_request_size=o.max_request_size,
            request_timeout_ms=int(o.request_timeout * 1000),
            **client_kwargs(o, context.pipe),
        )
        self._producer = producer
        try:
            await producer.start()
        except Exception as exc:
            await self.stop()
            if isinstance(exc, KafkaConnectionError):
                raise RetryableError(f"kafka target: cannot reach {o.servers()}: {exc}") from exc
            if isinstance(exc, KafkaError) and not exc.retriable:
                if o.idempotent and isinstance(exc, _NO_PRODUCER_ID):
                    raise FatalError(
                        "kafka target: the broker refused an idempotent producer "
                        f"({type(exc).__name__}); set idempotent: false in the target options"
                    ) from exc
                raise FatalError(f"kafka target: the broker refused the producer: {exc}") from exc
            raise RetryableError(f"kafka target: {type(exc).__name__}: {exc}") from exc

    async def write(self, events: Sequence[Event]) -> Sequence[Outcome]:
        """Build one record batch per topic-partition, submit them all, await them together.

        Building the batches ourselves instead of calling ``producer.send`` per
        event saves a coroutine chain per event (most of the producer's CPU);
        the producer still assigns sequence numbers (idempotence) and retries.
        An event's outcome is its batch's outcome.
        """
        producer = self._producer
        assert producer is not None, "write() before start()"
        outcomes: list[Outcome] = [None] * len(events)
        topics = self._topics(events, outcomes)
        await self._check_topics(producer, topics, outcomes)
        fixed = self.options.partition
        limit = self.options.max_request_size
        # A record this much below the limit cannot exceed it: only larger ones are measured.
        sure = limit // 2
        estimate = DefaultRecordBatchBuilder.estimate_size_in_bytes
        cluster = producer.client.cluster
        layouts: dict[str, tuple[list[int], list[int]]] = {}
        open_batches: dict[tuple[str, int], tuple[Any, list[int]]] = {}
        full: list[tuple[str, int, Any, list[int]]] = []
        for i, event in enumerate(events):
            if outcomes[i] is not None:
                continue
            try:
                # A Kafka tombstone passed through untransformed stays a tombstone.
                tombstone = event.raw is None and event.layout is KAFKA_LAYOUT and not event.transformed
                value = None if tombstone else event.payload_bytes()
            except Exception as exc:
                outcomes[i] = FatalError(f"payload cannot be encoded: {type(exc).__name__}: {exc}")
                continue
            try:
                key, headers = self._key_and_headers(event)
                size = (len(value) if value else 0) + (len(key) if key else 0)
                if size > sure and estimate(key, value, headers) > limit:
                    outcomes[i] = FatalError(
                        f"kafka target: record of {size} bytes exceeds max_request_size {limit}"
                    )
                    continue
                topic = topics[i]
                if fixed is not None:
                    partition = fixed
                else:
                    found = layouts.get(topic)
                    if found is None:
                        found = layouts[topic] = (
                            sorted(cluster.partitions_for_topic(topic) or ()),
                            list(cluster.available_partitions_for_topic(topic) or ()),
                        )
                    partition = partition_for(key, *found)
                slot = open_batches.get((topic, partition))
                if (
                    slot is None
                    or slot[0].append(timestamp=None, key=key, value=value, headers=headers) is None
                ):
                    if slot is not None:
                        full.append((topic, partition, *slot))
                    batch = producer.create_batch()
                    batch.append(timestamp=None, key=key, value=value, headers=headers)
                    slot = open_batches[(topic, partition)] = (batch, [])
                slot[1].append(i)
            except Exception as exc:
                outcomes[i] = _outcome(exc)
        full.extend((topic, partition, *slot) for (topic, partition), slot in open_batches.items())
        futures: list[asyncio.Future[Any]] = []
        members: list[list[int]] = []
        for topic, partition, batch, indexes in full:
            batch.close()
            try:
                futures.append(await producer.send_batch(batch, topic, partition=partition))
            except Exception as exc:
                for i in indexes:
                    outcomes[i] = _outcome(exc)
                continue
            members.append(indexes)
        results = await asyncio.gather(*futures, return_exceptions=True)
        for indexes, result in zip(members, results, strict=True):
            if isinstance(result, BaseException):
                for i in indexes:
                    outcomes[i] = _outcome(result)
        return outcomes

    def _topics(self, events: Sequence[Event], outcomes: list[Outcome]) -> list[str]:
        template = self._topic
        if template is None:
            return [self.options.topic] * len(events)
        topics: list[str] = []
        for i, event in enumerate(events):
            try:
                topic = template.render(event.record)
            except Exception as exc:
                outcomes[i] = FatalError(f"kafka target: topic template failed: {exc}")
                topic = ""
            else:
                if not topic:
                    outcomes[i] = FatalError(
                        f"kafka target: topic template {self.options.topic!r} rendered empty"
                    )
            topics.append(topic)
        return topics

    async def _check_topics(
        self, producer: AIOKafkaProducer, topics: list[str], outcomes: list[Outcome]
    ) -> None:
        """Fail (retryably) the events of topics whose metadata does not come in time.

        Without this, ``send`` would wait for an unknown topic for the whole
        request timeout per event, holding up every other event of the batch.
        """
        distinct = set(topics) if self._topic is not None else {self.options.topic}
        unavailable: dict[str, Exception] = {}
        cluster = producer.client.cluster
        for topic in distinct:
            if not topic or cluster.partitions_for_topic(topic) is not None:
                continue  # known (the usual case): no wait, no task
            try:
                await asyncio.wait_for(producer.partitions_for(topic), timeout=self.options.metadata_timeout)
            except TimeoutError:
                unavailable[topic] = RetryableError(
                    f"kafka target: topic {topic!r} unknown to the cluster after "
                    f"{self.options.metadata_timeout}s"
                )
            except Exception as exc:
                unavailable[topic] = _outcome(exc)
        if unavailable:
            for i, topic in enumerate(topics):
                if outcomes[i] is None and topic in unavailable:
                    outcomes[i] = unavailable[topic]

    def _key_and_headers(self, event: Event) -> tuple[bytes | None, list[tuple[str, bytes]]]:
        if self._carry_only and event.layout is KAFKA_LAYOUT:
            # A Kafka source record, carried over as read: its key and headers bytes as they are.
            message = event.meta
            read = message.headers
            return message.key, list(read) if read else []
        carry = is_kafka_record(event)
        if self.options.key is not None:
            text = self._key.render(event.record) if self._key is not None else self.options.key
            key = text.encode("utf-8") if text else None
        else:
            key = key_from_record(event) if carry else None
        headers: list[tuple[str, bytes]] | None
        if self._headers is not None:
            headers = [
                (name, (template.render(event.record) if template else text).encode("utf-8"))
                for name, text, template in self._headers
            ]
        else:
            headers = headers_from_record(event) if carry else None
        return key, headers or []

    async def stop(self) -> None:
        producer, self._producer = self._producer, None
        if producer is None:
            return
        try:
            await producer.stop()
        except Exception as exc:
            if self._context is not None:
                self._context.log.warning("kafka.target_stop_failed", error=str(exc))


def _outcome(exc: BaseException) -> Exception:
    """Map a send failure onto the runner's retry decision."""
    if isinstance(exc, FatalError | RetryableError):
        return exc
    if isinstance(exc, _PERMANENT):
        return FatalError(f"kafka target: {type(exc).__name__}: {exc}")
    if isinstance(exc, KafkaError):
        return RetryableError(f"kafka target: {type(exc).__name__}: {exc}")
    if isinstance(exc, Exception):
        return exc
    return RetryableError(f"kafka target: {exc!r}")
