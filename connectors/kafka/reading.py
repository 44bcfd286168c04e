"""Reading partitions between offsets, outside any consumer group.

For what is not a pipe's consumption: reading a dead-letter topic back, and
finding the offset for a time when ``offsets_for_times`` cannot be trusted.
The consumer joins no group and commits nothing.

A partition's end is taken from the high watermark of a fetch response, not
from ListOffsets alone: Tansu under-reports the latter after a produce request
that carried several records (docs/connectors/kafka.md), and reading "up to
the end" must not stop early.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Iterable
from contextlib import aclosing, suppress
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import (
    CommitFailedError,
    IllegalGenerationError,
    KafkaConnectionError,
    KafkaError,
    RebalanceInProgressError,
    UnknownMemberIdError,
)

from connectors.kafka.options import KafkaConnectionOptions, client_kwargs
from pipes.errors import FatalError, RetryableError

__all__ = ["PartitionReader"]

#: Longest wait for a fetch that must bring something (a record known to be there).
FETCH_DEADLINE_S = 15.0
#: Longest wait for a group to hand every partition to a member that joined to commit.
JOIN_DEADLINE_S = 60.0


class PartitionReader:
    """A consumer that reads given partitions between offsets, never joining a group.

    With ``group_id`` it can also read and set that group's committed offsets
    (as a client outside the group: only while the group has no members).
    """

    def __init__(
        self, options: KafkaConnectionOptions, pipe: str, purpose: str, group_id: str | None = None
    ) -> None:
        self.options = options
        self.group_id = group_id
        self._pipe = pipe
        self._consumer = AIOKafkaConsumer(
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=100,
            **{**client_kwargs(options, pipe), "client_id": f"pipes-{pipe}-{purpose}"},
        )
        self._started = False

    async def start(self) -> None:
        try:
            await self._consumer.start()
        except KafkaError as exc:
            with suppress(Exception):  # a consumer that failed to start still holds its client
                await self._consumer.stop()
            if isinstance(exc, KafkaConnectionError):
                raise RetryableError(f"kafka: cannot reach {self.options.servers()}: {exc}") from exc
            raise FatalError(f"kafka: the broker refused the client: {exc}") from exc
        self._started = True

    async def stop(self) -> None:
        if self._started:
            self._started = False
            with suppress(Exception):  # stop must not raise
                await self._consumer.stop()

    async def partitions(self, topics: Iterable[str]) -> list[TopicPartition]:
        """Every partition of ``topics`` that exist, in topic and partition order."""
        consumer = self._consumer
        found: list[TopicPartition] = []
        for topic in topics:
            ids = consumer.partitions_for_topic(topic)
            if ids is None:
                await consumer.topics()  # refresh metadata once
                ids = consumer.partitions_for_topic(topic)
            found.extend(TopicPartition(topic, p) for p in sorted(ids or ()))
        return found

    async def topics(self) -> set[str]:
        return set(await self._consumer.topics())

    async def beginnings(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return dict(await self._consumer.beginning_offsets(tps)) if tps else {}

    async def offsets_for_times(self, times: dict[TopicPartition, int]) -> dict[TopicPartition, Any]:
        """The broker's answer: per partition the first offset stamped at or after the time, or None."""
        return dict(await self._consumer.offsets_for_times(times))

    async def end(self, tp: TopicPartition) -> int:
        """The offset after the last record of ``tp`` now (the high watermark of a fetch)."""
        consumer = self._consumer
        begin = int((await consumer.beginning_offsets([tp]))[tp])
        reported = int((await consumer.end_offsets([tp]))[tp])
        if reported <= begin:
            return reported  # empty: nothing was ever written, or all of it expired
        consumer.assign([tp])
        consumer.seek(tp, reported - 1)  # a record is there: the fetch answers with the watermark
        deadline = time.monotonic() + FETCH_DEADLINE_S
        while True:
            await consumer.getmany(tp, timeout_ms=200, max_records=1)
            high = consumer.highwater(tp)
            if high is not None:
                return max(int(high), reported)
            if time.monotonic() > deadline:
                raise RetryableError(f"kafka: no fetch answer for {tp.topic}-{tp.partition}")

    async def read(
        self, tp: TopicPartition, start: int, end: int, batch: int = 500
    ) -> AsyncGenerator[list[Any]]:
        """The records of ``tp`` from offset ``start`` to before ``end``, in batches."""
        if start >= end:
            return
        consumer = self._consumer
        consumer.assign([tp])
        consumer.seek(tp, start)
        deadline = time.monotonic() + FETCH_DEADLINE_S
        while True:
            got = await consumer.getmany(tp, timeout_ms=500, max_records=batch)
            records = [r for r in got.get(tp, ()) if r.offset < end]
            if records:
                deadline = time.monotonic() + FETCH_DEADLINE_S
                yield records
            if await consumer.position(tp) >= end:
                return
            if time.monotonic() > deadline:
                raise RetryableError(
                    f"kafka: {tp.topic}-{tp.partition}: no records came from offset "
                    f"{await consumer.position(tp)} (expected up to {end})"
                )

    async def committed(self, tp: TopicPartition) -> int | None:
        """The group's committed offset of ``tp`` (the next offset it reads), or None."""
        try:
            offset = await self._consumer.committed(tp)
        except KafkaError as exc:
            raise RetryableError(f"kafka: cannot read the offsets of group {self.group_id!r}: {exc}") from exc
        return None if offset is None else int(offset)

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        """Commit ``offsets`` for the group: from outside it, else as its only member.

        Kafka takes a commit from outside a group that has no members. When the
        broker refuses it (a group with members; Tansu, for any group that ever
        had one), a member joins for the purpose: it commits when the group
        hands it every partition, and refuses when some went to another member.
        """
        consumer = self._consumer
        consumer.assign(list(offsets))
        try:
            await consumer.commit(offsets)
            return
        except (CommitFailedError, UnknownMemberIdError, IllegalGenerationError, RebalanceInProgressError):
            pass
        except KafkaError as exc:
            raise FatalError(
                f"kafka: cannot commit offsets for group {self.group_id!r}: {type(exc).__name__}: {exc}"
            ) from exc
        await self._commit_as_member(offsets)

    async def _commit_as_member(self, offsets: dict[TopicPartition, int]) -> None:
        member = AIOKafkaConsumer(
            *sorted({tp.topic for tp in offsets}),
            group_id=self.group_id,
            enable_auto_commit=False,
            **{**client_kwargs(self.options, self._pipe), "client_id": f"pipes-{self._pipe}-replay"},
        )
        try:
            await member.start()
            deadline = time.monotonic() + JOIN_DEADLINE_S
            while not set(offsets) <= member.assignment():
                if member.assignment():
                    # Some partitions went to another member: the group is in use elsewhere.
                    raise FatalError(
                        f"kafka: group {self.group_id!r} has other members (another process runs "
                        "this pipe?): stop every member of the group first"
                    )
                if time.monotonic() > deadline:
                    raise FatalError(
                        f"kafka: group {self.group_id!r} did not hand every partition to pipes within "
                        f"{JOIN_DEADLINE_S:.0f}s: is another process of the group running? Stop every member first"
                    )
                await member.getmany(timeout_ms=100, max_records=1)
            await member.commit(offsets)
        except KafkaError as exc:
            raise FatalError(
                f"kafka: cannot commit offsets for group {self.group_id!r}: {type(exc).__name__}: {exc}"
            ) from exc
        finally:
            with suppress(Exception):
                await member.stop()

    async def record_at(self, tp: TopicPartition, offset: int, end: int) -> Any | None:
        """The first record of ``tp`` at or after ``offset`` (before ``end``), or None."""
        async with aclosing(self.read(tp, offset, end, batch=1)) as batches:
            async for records in batches:
                return records[0]
        return None
