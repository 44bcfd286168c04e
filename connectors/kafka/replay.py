"""Replay of a Kafka source: the group's offsets moved to a time or to given offsets.

The pipe is stopped (it left the group), so the offsets are committed by a
client outside the group (``PartitionReader``). Offsets for a time come from
the consumer's ``offsets_for_times`` per partition; its answer is checked by
reading the record it names, and where the broker answers wrongly (Tansu
ignores the time) the offset is found by reading: a binary search over the
records' timestamps, which assumes they grow with the offsets, as they do
when the broker or the producers stamp them.

Positions, as everywhere in ``pipes.replay``: the last settled offset (the
group's committed offset minus one), None before the first record.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from connectors.kafka.reading import PartitionReader
from connectors.kafka.records import partition_name
from pipes.connector import SourceContext
from pipes.errors import RetryableError
from pipes.events import Position
from pipes.replay import CannotReplay, PartitionMove, ReplayPoint, is_after

if TYPE_CHECKING:
    from connectors.kafka.source import KafkaSourceOptions

__all__ = ["commit", "plan"]


async def _partitions(reader: PartitionReader, options: KafkaSourceOptions) -> list[TopicPartition]:
    if options.topics is not None:
        topics = list(options.topics)
    else:
        assert options.topic_pattern is not None
        pattern = re.compile(options.topic_pattern)
        topics = sorted(t for t in await reader.topics() if pattern.fullmatch(t))
    return await reader.partitions(topics)


class _Partition:
    """One partition's bounds, read once."""

    def __init__(self, tp: TopicPartition, begin: int, end: int) -> None:
        self.tp = tp
        self.name = partition_name(tp.topic, tp.partition)
        self.begin = begin
        self.end = end


async def _offset_for(reader: PartitionReader, part: _Partition, point: ReplayPoint) -> int | None:
    """The next offset to read for ``point`` in this partition (None: the point names another partition)."""
    if point.kind == "beginning":
        return part.begin
    if point.kind == "positions":
        offset = point.number_for(part.name, "an offset")
        if offset is None:
            return None
        if not part.begin <= offset <= part.end:
            raise CannotReplay(
                f"{point.text!r}: offset {offset} of {part.name} is outside {part.begin}..{part.end}"
            )
        return offset
    return await _offset_for_time(reader, part, point.time_ms)


async def _offset_for_time(reader: PartitionReader, part: _Partition, time_ms: int) -> int:
    """The first offset whose record is stamped at or after ``time_ms`` (the end when none is)."""
    if part.begin >= part.end:
        return part.end
    try:
        found = (await reader.offsets_for_times({part.tp: time_ms})).get(part.tp)
    except KafkaError as exc:
        raise RetryableError(f"kafka: offsets_for_times failed for {part.name}: {exc}") from exc
    if found is None:
        last = await reader.record_at(part.tp, part.end - 1, part.end)
        if last is None or last.timestamp < time_ms:
            return part.end  # the broker says no record is that late, and the last one agrees
    else:
        record = await reader.record_at(part.tp, found.offset, part.end)
        if record is not None and record.offset == found.offset and record.timestamp == found.timestamp:
            return int(found.offset)
    return await _search(reader, part, time_ms)


async def _search(reader: PartitionReader, part: _Partition, time_ms: int) -> int:
    """Binary search over the records' timestamps (a broker whose time index cannot be trusted)."""
    lo, hi = part.begin, part.end
    while lo < hi:
        mid = (lo + hi) // 2
        record = await reader.record_at(part.tp, mid, part.end)
        if record is None or record.timestamp >= time_ms:
            hi = mid
        else:
            lo = record.offset + 1
    return lo


def _position(next_offset: int | None) -> Position | None:
    """The checkpoint position for a next offset (the last settled offset), None before the first."""
    return None if next_offset is None or next_offset <= 0 else next_offset - 1


async def plan(
    options: KafkaSourceOptions, context: SourceContext, start: ReplayPoint, until: ReplayPoint | None
) -> list[PartitionMove]:
    reader = PartitionReader(options, context.pipe, "replay", group_id=options.group_id)
    await reader.start()
    try:
        tps = await _partitions(reader, options)
        if not tps:
            raise CannotReplay(f"kafka: no partitions of {options.topics or options.topic_pattern} exist")
        names = [partition_name(tp.topic, tp.partition) for tp in tps]
        for point in (start, until):
            if point is not None:
                point.check_partitions(names)
        beginnings = await reader.beginnings(tps)
        moves = []
        for tp in tps:
            part = _Partition(tp, beginnings[tp], await reader.end(tp))
            new_next = await _offset_for(reader, part, start)
            if new_next is None:
                continue
            committed = await reader.committed(tp)
            old_next = committed if committed is not None else part.begin
            move = PartitionMove(
                part.name, _position(committed), _position(new_next), events=old_next - new_next
            )
            move.forward = is_after(move.new, move.old) if committed is not None else new_next > part.begin
            if until is not None:
                stop = await _offset_for(reader, part, until)
                if stop is not None:
                    move.until = stop - 1
            moves.append(move)
        return moves
    finally:
        await reader.stop()


async def commit(options: KafkaSourceOptions, context: SourceContext, moves: Sequence[PartitionMove]) -> None:
    reader = PartitionReader(options, context.pipe, "replay", group_id=options.group_id)
    await reader.start()
    try:
        tps = {partition_name(tp.topic, tp.partition): tp for tp in await _partitions(reader, options)}
        offsets = {tps[m.partition]: (int(m.new) + 1 if m.new is not None else 0) for m in moves}
        if offsets:
            await reader.commit(offsets)
    finally:
        await reader.stop()
