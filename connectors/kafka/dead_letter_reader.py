"""Reads back a ``kafka`` dead letter: the records of its topic, oldest first per partition.

The partitions are read one after the other from their beginning (or after
the given position) to the end each had when the scan began, by a consumer
outside any group (``connectors.kafka.reading``); partitions are named
``topic-N`` as the source names them, and a record's position is its offset.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from typing import TYPE_CHECKING

from connectors.kafka.reading import PartitionReader
from connectors.kafka.records import partition_name
from pipes.connector import ConnectorContext
from pipes.dead_letters import DeadLetter, DeadLetterReader
from pipes.errors import FatalError
from pipes.events import Position

if TYPE_CHECKING:
    from connectors.kafka.target import KafkaTargetOptions

__all__ = ["KafkaDeadLetterReader"]


class KafkaDeadLetterReader(DeadLetterReader):
    """The records of the dead-letter topic; partitions ``topic-N``, positions offsets."""

    options: KafkaTargetOptions

    def __init__(self, options: KafkaTargetOptions) -> None:
        super().__init__(options)
        if "<" in options.topic:
            raise FatalError(
                f"kafka: the dead-letter topic {options.topic!r} is a template; "
                "pipes can only read back a dead letter written to one named topic"
            )
        self._reader: PartitionReader | None = None

    async def start(self, context: ConnectorContext) -> None:
        reader = PartitionReader(self.options, context.pipe, "dlq")
        await reader.start()
        self._reader = reader

    async def stop(self) -> None:
        if self._reader is not None:
            await self._reader.stop()
            self._reader = None

    async def scan(self, after: Mapping[str, Position]) -> AsyncGenerator[list[DeadLetter]]:
        reader = self._reader
        assert reader is not None, "scan before start"
        tps = await reader.partitions([self.options.topic])
        beginnings = await reader.beginnings(tps)
        ends = {tp: await reader.end(tp) for tp in tps}
        for tp in tps:
            name = partition_name(tp.topic, tp.partition)
            start = int(after[name]) + 1 if name in after else beginnings[tp]
            async for records in reader.read(tp, max(start, beginnings[tp]), ends[tp]):
                yield [DeadLetter.decode(name, r.offset, r.value or b"") for r in records]
