"""The Kafka source: a consumer-group member that commits only settled offsets.

Auto-commit is always off. The runner hands ``commit`` the last settled
position of each partition and we commit the next offset, so a restart (or a
partition's new owner after a rebalance) resumes right after the last settled
event: at-least-once, with at most the uncommitted tail delivered again.
"""

from __future__ import annotations

import re
import time
from collections.abc import Collection, Mapping, Sequence
from typing import Literal, Self

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaConnectionError, KafkaError
from pydantic import Field, model_validator

from connectors.kafka import replay
from connectors.kafka.options import KafkaConnectionOptions, client_kwargs
from connectors.kafka.records import build_events, partition_name
from pipes.connector import Source, SourceContext
from pipes.errors import FatalError, RetryableError
from pipes.events import Event, Position
from pipes.replay import PartitionMove, ReplayPoint
from pipes.units import Duration

__all__ = ["KafkaSource", "KafkaSourceOptions"]


class KafkaSourceOptions(KafkaConnectionOptions):
    """Options of the Kafka source (a consumer-group member)."""

    topics: list[str] | None = Field(
        default=None, description="Topics to consume. Give `topics` or `topic_pattern`."
    )
    topic_pattern: str | None = Field(
        default=None,
        description="Regular expression: consume every topic whose whole name matches "
        "(new matching topics are picked up on metadata refresh).",
    )
    group_id: str = Field(
        min_length=1,
        description="Consumer group: offsets are committed under it, and several `pipes run` "
        "processes with the same group share the partitions.",
    )
    starting_position: Literal["earliest", "latest"] = Field(
        default="latest",
        description="Where a group with no committed offset starts: `earliest` (AWS "
        "TRIM_HORIZON) or `latest`. Ignored once the group has committed offsets.",
    )
    session_timeout: Duration = Field(
        default=10.0,
        description="The group considers this member dead after this long without a heartbeat.",
    )
    heartbeat_interval: Duration | None = Field(
        default=None,
        description="Heartbeat period; must be below `session_timeout` (default: a third of it).",
    )
    fetch_max_bytes: int = Field(
        default=1048576,
        gt=0,
        description="Most bytes a fetch response may carry (a record larger than this still comes). "
        "The pipe holds at most `max_in_flight` events, so prefetching more only costs memory.",
    )
    max_partition_fetch_bytes: int = Field(
        default=1048576, gt=0, description="Most bytes fetched from one partition per request."
    )
    fetch_max_wait: Duration = Field(
        default=0.5,
        description="How long the broker may hold a fetch waiting for data (long poll).",
    )
    max_poll_records: int | None = Field(
        default=None,
        gt=0,
        description="Most records one read returns (default: the runner's batch size).",
    )

    @model_validator(mode="after")
    def _source(self) -> Self:
        if (self.topics is None) == (self.topic_pattern is None):
            raise ValueError("give exactly one of topics (a list) or topic_pattern (a regex)")
        if self.topics is not None and not [t for t in self.topics if t]:
            raise ValueError("topics: give at least one topic name")
        if self.topic_pattern is not None:
            try:
                re.compile(self.topic_pattern)
            except re.error as exc:
                raise ValueError(f"topic_pattern is not a valid regex: {exc}") from None
        if self.session_timeout <= 0:
            raise ValueError("session_timeout must be positive")
        if self.heartbeat_interval is not None and not (0 < self.heartbeat_interval < self.session_timeout):
            raise ValueError("heartbeat_interval must be positive and below session_timeout")
        return self


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """Hands revoked partitions to the runner before the group moves them elsewhere."""

    def __init__(self, source: KafkaSource) -> None:
        self._source = source

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        if revoked:
            await self._source._revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._source._assigned(assigned)


class KafkaSource(Source):
    """Reads a consumer group's partitions; commits the offset after each settled prefix."""

    options_model = KafkaSourceOptions
    tracks_position = True
    shared_by_group = True
    options: KafkaSourceOptions

    def __init__(self, options: KafkaSourceOptions) -> None:
        super().__init__(options)
        self._consumer: AIOKafkaConsumer | None = None
        self._context: SourceContext | None = None
        self._tps: dict[str, TopicPartition] = {}
        # --once bookkeeping: end offsets seen when a partition was first assigned,
        # where each partition stood at the last empty read, and when (wall ms) a
        # read last moved each partition's position.
        self._ends: dict[TopicPartition, int] = {}
        self._idle_at: dict[TopicPartition, int] = {}
        self._moved_ms: dict[TopicPartition, int] = {}
        self._next: dict[TopicPartition, int] = {}
        self._assigned_once = False

    async def start(self, context: SourceContext) -> None:
        o = self.options
        self._context = context
        await self.stop()  # a start retried after a failed one begins afresh
        heartbeat = o.heartbeat_interval or o.session_timeout / 3
        consumer = AIOKafkaConsumer(
            group_id=o.group_id,
            enable_auto_commit=False,
            auto_offset_reset=o.starting_position,
            session_timeout_ms=int(o.session_timeout * 1000),
            heartbeat_interval_ms=int(heartbeat * 1000),
            fetch_max_bytes=o.fetch_max_bytes,
            max_partition_fetch_bytes=o.max_partition_fetch_bytes,
            fetch_max_wait_ms=int(o.fetch_max_wait * 1000),
            **client_kwargs(o, context.pipe),
        )
        self._consumer = consumer
        listener = _Rebalance(self)
        if o.topics is not None:
            consumer.subscribe(topics=o.topics, listener=listener)
        else:
            consumer.subscribe(pattern=o.topic_pattern, listener=listener)
        try:
            await consumer.start()
        except Exception as exc:
            await self.stop()
            if isinstance(exc, KafkaConnectionError):
                raise RetryableError(f"kafka source: cannot reach {o.servers()}: {exc}") from exc
            if isinstance(exc, KafkaError) and not exc.retriable:
                raise FatalError(f"kafka source: the broker refused the consumer: {exc}") from exc
            raise RetryableError(f"kafka source: {type(exc).__name__}: {exc}") from exc

    async def read(self, max_events: int, timeout_s: float) -> list[Event]:
        consumer = self._consumer
        assert consumer is not None, "read() before start()"
        limit = max_events
        if self.options.max_poll_records is not None:
            limit = min(limit, self.options.max_poll_records)
        try:
            batches = await consumer.getmany(timeout_ms=max(int(timeout_s * 1000), 0), max_records=limit)
        except KafkaError as exc:
            raise RetryableError(f"kafka source: fetch failed: {exc}") from exc
        events: list[Event] = []
        now_ms = int(time.time() * 1000)
        for tp, messages in batches.items():
            if not messages:
                continue
            events.extend(build_events(tp.topic, tp.partition, messages))
            self._next[tp] = messages[-1].offset + 1
            self._moved_ms[tp] = now_ms
            self._tps[partition_name(tp.topic, tp.partition)] = tp
        if not events and self._context is not None and self._context.once:
            await self._note_idle(consumer)
        return events

    async def _note_idle(self, consumer: AIOKafkaConsumer) -> None:
        """After an empty read: take end offsets of new partitions, note where each one stands."""
        assignment = consumer.assignment()
        missing = [tp for tp in assignment if tp not in self._ends]
        if missing:
            try:
                ends = await consumer.end_offsets(missing)
            except KafkaError as exc:
                raise RetryableError(f"kafka source: cannot read end offsets: {exc}") from exc
            self._ends.update(ends)
        for tp in assignment:
            try:
                self._idle_at[tp] = await consumer.position(tp)
            except Exception:  # revoked meanwhile, or its position is being reset
                self._idle_at.pop(tp, None)

    def caught_up(self) -> bool:
        """Every assigned partition reached its end offset seen at start, and a fetch there came back empty.

        The broker's end offset alone is not trusted (Tansu under-reports it after
        multi-record batches). The consumer stamps a partition each time a fetch
        response for its current position arrives; a stamp newer than the last
        read that moved the position, while reads come back empty, means a fetch
        at that position found nothing.
        """
        consumer = self._consumer
        if consumer is None or not self._assigned_once:
            return False
        for tp in consumer.assignment():
            end = self._ends.get(tp)
            at = self._idle_at.get(tp)
            if end is None or at is None or at < end:
                return False
            try:
                fetched_ms = consumer.last_poll_timestamp(tp)
            except Exception:  # revoked meanwhile
                return False
            if fetched_ms is None or fetched_ms <= self._moved_ms.get(tp, 0):
                return False
        return True

    def idle_s(self) -> float | None:
        """Seconds since a fetch response last came for any assigned partition (a frozen broker sends none)."""
        consumer = self._consumer
        if consumer is None:
            return None
        newest = 0
        for tp in consumer.assignment():
            try:
                stamp = consumer.last_poll_timestamp(tp)
            except Exception:  # revoked meanwhile
                continue
            if stamp:
                newest = max(newest, stamp)
        if not newest:
            return None
        return max(0.0, time.time() - newest / 1000)

    def lag(self) -> Mapping[str, int] | None:
        consumer = self._consumer
        if consumer is None:
            return None
        lag: dict[str, int] = {}
        for tp in consumer.assignment():
            position = self._next.get(tp)
            if position is None:
                continue
            try:
                high = consumer.highwater(tp)
            except Exception:
                high = None
            end = max(high or 0, self._ends.get(tp, 0))
            lag[partition_name(tp.topic, tp.partition)] = max(end - position, 0)
        return lag

    def pause(self, partitions: Collection[str]) -> None:
        """Stop fetching partitions held up by a retrying event (the others go on)."""
        tps = self._owned(partitions)
        if tps and self._consumer is not None:
            self._consumer.pause(*tps)

    def resume(self, partitions: Collection[str]) -> None:
        tps = self._owned(partitions)
        if tps and self._consumer is not None:
            self._consumer.resume(*tps)

    def _owned(self, partitions: Collection[str]) -> list[TopicPartition]:
        consumer = self._consumer
        if consumer is None:
            return []
        assignment = consumer.assignment()
        found = (self._tps.get(name) or _parse_partition(name) for name in partitions)
        return [tp for tp in found if tp is not None and tp in assignment]

    async def commit(self, positions: Mapping[str, Position]) -> None:
        consumer = self._consumer
        if consumer is None or not positions:
            return
        assignment = consumer.assignment()
        offsets: dict[TopicPartition, int] = {}
        for name, position in positions.items():
            tp = self._tps.get(name) or _parse_partition(name)
            # A partition that moved to another member is not ours to commit: its
            # new owner resumes from the last commit made while we held it.
            if tp is not None and tp in assignment:
                offsets[tp] = int(position) + 1
        if not offsets:
            return
        try:
            await consumer.commit(offsets)
        except KafkaError as exc:
            raise RetryableError(f"kafka source: offset commit failed: {exc}") from exc

    async def replay_plan(
        self, context: SourceContext, start: ReplayPoint, until: ReplayPoint | None
    ) -> list[PartitionMove]:
        """The group's offsets for a time, offsets or the beginning (``connectors.kafka.replay``)."""
        return await replay.plan(self.options, context, start, until)

    async def replay_commit(self, context: SourceContext, moves: Sequence[PartitionMove]) -> None:
        """Commit the moved offsets to the group (the pipe is stopped: the group has no members)."""
        await replay.commit(self.options, context, moves)

    async def _revoked(self, revoked: set[TopicPartition]) -> None:
        names = [partition_name(tp.topic, tp.partition) for tp in revoked]
        context = self._context
        if context is not None:
            try:
                await context.revoke(names)
            except Exception as exc:
                context.log.warning(
                    "kafka.revoke_failed", pipe=context.pipe, partitions=names, error=str(exc)
                )
        for tp in revoked:
            self._next.pop(tp, None)
            self._idle_at.pop(tp, None)
            self._moved_ms.pop(tp, None)

    def _assigned(self, assigned: set[TopicPartition]) -> None:
        self._assigned_once = True
        # Positions are (re)set from the committed offsets now: only fetches from
        # here on say anything about them.
        now_ms = int(time.time() * 1000)
        for tp in assigned:
            self._tps[partition_name(tp.topic, tp.partition)] = tp
            self._moved_ms[tp] = now_ms
            self._idle_at.pop(tp, None)

    async def stop(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is None:
            return
        try:
            await consumer.stop()
        except Exception as exc:
            if self._context is not None:
                self._context.log.warning("kafka.source_stop_failed", error=str(exc))


def _parse_partition(name: str) -> TopicPartition | None:
    topic, sep, number = name.rpartition("-")
    if not sep or not number.isdigit():
        return None
    return TopicPartition(topic, int(number))
