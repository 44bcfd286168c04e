"""The ``redis_stream`` source: a consumer in a Redis stream consumer group.

Where events come from, in the order ``read`` looks:

1. *Claims*: at start and every ``claim_idle / 2``, entries of any consumer of
   the group that were delivered but not acknowledged for longer than
   ``claim_idle`` (a crashed instance's) are claimed with XCLAIM and handed out.
   They are found with XPENDING ... IDLE rather than XAUTOCLAIM so that entries
   *this* instance still holds (a slow target) are seen before they are claimed
   and left alone: claiming them would bump their delivery count and hand them
   out twice within one run.
2. *Own backlog*: at start, and again after a lost connection, this consumer's
   own pending entries (a previous run's, or entries whose XREADGROUP reply was
   lost on the wire) are re-claimed by this consumer, which counts the delivery.
3. *New entries*: XREADGROUP ``>``.

Each entry is handed out once per run; ``commit`` XACKs the handed-out entries
in hand-out order up to the position it is given, so only the settled prefix
is ever acknowledged. Delivery counts come from XPENDING; an entry delivered
more than ``max_deliveries`` times is handed over with a fault, which the
runner dead-letters with stage ``source`` (and then acknowledges).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

import redis.asyncio as redis
from pydantic import Field
from redis.exceptions import ResponseError

from connectors.redis import stream_replay
from connectors.redis.client import (
    RedisOptions,
    close_client,
    default_consumer,
    is_nogroup,
    map_error,
    open_client,
    redis_errors,
    text,
)
from connectors.redis.wire import execute_packed, pack
from pipes.connector import Source, SourceContext
from pipes.errors import FatalError
from pipes.events import UNSET, Event, Position
from pipes.replay import PartitionMove, ReplayPoint
from pipes.units import Duration

__all__ = ["RedisStreamSource", "RedisStreamSourceOptions"]

#: Entries per XACK command; a commit sends them all in one pipelined round trip.
_ACK_CHUNK = 10_000


class RedisStreamSourceOptions(RedisOptions):
    """Options of the ``redis_stream`` source."""

    stream: str = Field(description="The stream key to read.")
    group: str = Field(description="Consumer group; created (with the stream) when missing.")
    consumer: str = Field(
        default_factory=default_consumer,
        description=(
            "Consumer name within the group; defaults to the host name so that a restarted "
            "instance re-delivers its own pending entries first. Instances sharing a host "
            "must be given distinct names."
        ),
    )
    starting_position: Literal["earliest", "latest"] = Field(
        default="latest",
        description="Where a newly created group starts: earliest (id 0) or latest ($).",
    )
    field: str = Field(
        default="data",
        description="The entry field whose value is the body (JSON-decoded when it is JSON).",
    )
    claim_idle: Duration = Field(
        default=60.0,
        gt=0,
        description=(
            "Entries pending longer than this (in any consumer of the group) are claimed and "
            "delivered again. Must exceed the longest time an event may spend in the pipe."
        ),
    )
    max_deliveries: int | None = Field(
        default=None,
        ge=1,
        description="Entries delivered more often than this go to the dead letter (no limit when unset).",
    )
    count: int = Field(default=500, ge=1, description="Most entries asked for per XREADGROUP call.")
    block: Duration = Field(
        default=1.0,
        description="Longest time one XREADGROUP waits for new entries (the runner may ask for less).",
    )


def _next_id(entry_id: str) -> str:
    """The smallest stream id after ``entry_id`` (for exclusive paging)."""
    ms, _, seq = entry_id.partition("-")
    return f"{ms}-{int(seq or 0) + 1}"


def _id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


class StreamLayout:
    """The record of a stream entry: ``{"stream", "id", "fields", "body"}``, built only when a stage needs it.

    ``meta`` is the entry's fields as read (a flat ``[field, value, ...]`` list, or
    a dict for claimed entries); ``fields`` in the record holds them as text, the
    body field included.
    """

    body_field = "body"

    def __init__(self, stream: str) -> None:
        self.stream = stream

    def record(self, event: Event, body: Any) -> dict[str, Any]:
        fields: Any = event.meta
        pairs = fields.items() if isinstance(fields, dict) else zip(fields[::2], fields[1::2], strict=False)
        return {
            "stream": self.stream,
            "id": event.position,
            "fields": {k.decode("utf-8", "replace"): v.decode("utf-8", "replace") for k, v in pairs},
            "body": body,
        }


class RedisStreamSource(Source):
    """Reads a stream through a consumer group; XACKs the settled prefix."""

    options_model: ClassVar[type[RedisStreamSourceOptions]] = RedisStreamSourceOptions
    tracks_position: ClassVar[bool] = True
    shared_by_group: ClassVar[bool] = True

    options: RedisStreamSourceOptions

    def __init__(self, options: RedisStreamSourceOptions) -> None:
        super().__init__(options)
        self._client: redis.Redis | None = None
        self._stream = options.stream
        self._field = options.field.encode()
        self._layout = StreamLayout(options.stream)
        self._consumer = options.consumer
        self._claim_idle_ms = max(1, int(options.claim_idle * 1000))
        # Handed out and not yet acknowledged, in hand-out order; the set mirrors it.
        self._handed: deque[str] = deque()
        self._outstanding: set[str] = set()
        # Own pending entries still to re-deliver: the next XPENDING start id, or None when done.
        self._backlog_from: str | None = "-"
        # Claim scan: the next XPENDING start id, or None while no scan is due.
        self._claim_from: str | None = "-"
        self._claim_due_at = 0.0
        self._first_claim_done = False
        self._end_id: tuple[int, int] | None = None
        self._reached_end = False
        self._lag: int | None = None
        self._once = False
        self._clock: Any = None
        self._log: Any = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self, context: SourceContext) -> None:
        if context.worker:
            # One consumer per worker process: two never share a consumer's pending entries.
            self._consumer = f"{self.options.consumer}-{context.worker}"
        self._clock = context.clock
        self._log = context.log
        self._once = context.once
        self._client = open_client(self.options, name=f"pipes:{context.pipe}")
        async with redis_errors(f"start on stream {self._stream!r}"):
            await self._ensure_group()
            if self._once:
                info = await self._client.xinfo_stream(self._stream)
                self._end_id = _id_key(text(info["last-generated-id"]))
        self._claim_due_at = self._clock.monotonic()

    async def stop(self) -> None:
        await close_client(self._client)
        self._client = None

    async def _ensure_group(self) -> None:
        """Create the group (and the stream) unless it exists; WRONGTYPE surfaces as fatal."""
        assert self._client is not None
        start_id = "0" if self.options.starting_position == "earliest" else "$"
        try:
            await self._client.xgroup_create(self._stream, self.options.group, id=start_id, mkstream=True)
        except ResponseError as exc:
            if not str(exc).startswith("BUSYGROUP"):
                raise

    # ------------------------------------------------------------------ reading

    async def read(self, max_events: int, timeout_s: float) -> list[Event]:
        try:
            return await self._read(max_events, timeout_s)
        except ResponseError as exc:
            if not is_nogroup(exc):
                raise map_error(exc, f"read from stream {self._stream!r}") from exc
            # The group (and maybe the stream) vanished: a server restarted without
            # persistence, or someone deleted it. Re-create it and go on; what we
            # handed out before is acknowledged into the void, which is harmless.
            self._log.warning("redis_group_recreated", stream=self._stream, group=self.options.group)
            async with redis_errors(f"re-create group on stream {self._stream!r}"):
                await self._ensure_group()
            self._backlog_from = "-"
            return []
        except redis.RedisError as exc:
            # A reply may have been lost on the wire, leaving entries pending for us
            # that we never handed out: look through our own pending list again.
            self._backlog_from = "-"
            raise map_error(exc, f"read from stream {self._stream!r}") from exc

    async def _read(self, max_events: int, timeout_s: float) -> list[Event]:
        count = min(max_events, self.options.count)
        now = self._clock.monotonic()
        if self._claim_from is None and now >= self._claim_due_at:
            self._claim_from = "-"
        if self._claim_from is not None:
            events = await self._claim(count)
            if events:
                return events
        while self._backlog_from is not None:
            events = await self._own_backlog(count)
            if events:
                return events
        if self._once and self._reached_end:
            return []
        return await self._read_new(count, timeout_s)

    async def _read_new(self, count: int, timeout_s: float) -> list[Event]:
        assert self._client is not None
        block_s = min(timeout_s, self.options.block, max(0.0, self.options.socket_timeout - 1.0))
        block_ms = int(block_s * 1000)
        command: tuple[Any, ...] = ("XREADGROUP", "GROUP", self.options.group, self._consumer, "COUNT", count)
        if block_ms > 0:
            command += ("BLOCK", block_ms)
        # Raw RESP2 reply: [[stream, [[id, [field, value, ...]], ...]]], or nil when nothing came.
        (reply,) = await execute_packed(self._client, pack([(*command, "STREAMS", self._stream, ">")]), 1)
        if isinstance(reply, Exception):
            raise reply
        if not reply:
            self._reached_end = True
            return []
        entries = reply[0][1]
        events = self._events(entries, None)
        if self._end_id is not None and _id_key(str(events[-1].position)) >= self._end_id:
            self._reached_end = True
        return events

    async def _own_backlog(self, count: int) -> list[Event]:
        """Re-claim this consumer's own pending entries (counting the delivery)."""
        assert self._client is not None and self._backlog_from is not None
        pending: Any = await self._client.xpending_range(
            self._stream, self.options.group, self._backlog_from, "+", count, self._consumer
        )
        self._backlog_from = _next_id(text(pending[-1]["message_id"])) if len(pending) >= count else None
        return await self._take_over(pending, min_idle_ms=0)

    async def _claim(self, count: int) -> list[Event]:
        """Claim entries idle longer than ``claim_idle`` from any consumer of the group."""
        assert self._client is not None and self._claim_from is not None
        pending: Any = await self._client.xpending_range(
            self._stream, self.options.group, self._claim_from, "+", count, idle=self._claim_idle_ms
        )
        if len(pending) >= count:
            self._claim_from = _next_id(text(pending[-1]["message_id"]))
        else:
            self._claim_from = None
            self._first_claim_done = True
            self._claim_due_at = self._clock.monotonic() + self.options.claim_idle / 2
            await self._refresh_lag()
        return await self._take_over(pending, min_idle_ms=self._claim_idle_ms)

    async def _refresh_lag(self) -> None:
        """The group's lag as the server counts it (Redis 7+; older servers do not say)."""
        assert self._client is not None
        groups: Any = await self._client.xinfo_groups(self._stream)
        for group in groups:
            if text(group["name"]) == self.options.group:
                lag = group.get("lag")
                self._lag = int(lag) if lag is not None else None

    async def _take_over(self, pending: Sequence[Mapping[str, Any]], min_idle_ms: int) -> list[Event]:
        """XCLAIM the listed entries this run does not hold; events for those that still exist."""
        assert self._client is not None
        deliveries: dict[str, int] = {}
        for item in pending:
            entry_id = text(item["message_id"])
            if entry_id not in self._outstanding:
                # XCLAIM counts this delivery: one more than XPENDING says.
                deliveries[entry_id] = int(item["times_delivered"]) + 1
        if not deliveries:
            return []
        ids: list[Any] = list(deliveries)
        claimed: Any = await self._client.xclaim(
            self._stream, self.options.group, self._consumer, min_idle_ms, ids
        )
        found = [(entry_id, fields) for entry_id, fields in claimed if entry_id is not None]
        gone = len(claimed) - len(found)
        if gone:
            # Entries trimmed or deleted while pending (Redis < 7 keeps them in the
            # PEL): nothing is left to deliver. When every id that did not come back
            # is accounted for by a gap, those are exactly the gone ones.
            returned = {text(entry_id) for entry_id, _ in found}
            missing = [i for i in ids if i not in returned]
            if len(missing) == gone:
                await self._client.xack(self._stream, self.options.group, *missing)
        return self._events(found, deliveries)

    def _events(self, entries: Sequence[Any], deliveries: Mapping[str, int] | None) -> list[Event]:
        """Events for entries as read: ``[id, [field, value, ...]]`` (raw) or ``(id, {field: value})``."""
        stream = self._stream
        body_field = self._field
        layout = self._layout
        unset = UNSET
        handed = self._handed
        outstanding = self._outstanding
        events = []
        for raw_id, fields in entries:
            entry_id = raw_id.decode()
            if type(fields) is not list:
                body = fields.get(body_field)
            elif fields and fields[0] == body_field:
                body = fields[1]  # the usual case: the body is the first field
            else:
                body = dict(zip(fields[::2], fields[1::2], strict=False)).get(body_field)
            events.append(Event(None, stream, entry_id, "body", unset, None, body, fields, layout))
            handed.append(entry_id)
            outstanding.add(entry_id)
        max_deliveries = self.options.max_deliveries
        if deliveries is not None and max_deliveries is not None:
            for event in events:
                times = deliveries.get(str(event.position), 1)
                if times > max_deliveries:
                    event.fault = FatalError(
                        f"delivered {times} times, more than max_deliveries={max_deliveries}"
                    )
        return events

    # ------------------------------------------------------------------ positions

    async def commit(self, positions: Mapping[str, Position]) -> None:
        position = positions.get(self._stream)
        if position is None or position not in self._outstanding or self._client is None:
            return
        ids: list[str] = []
        for entry_id in self._handed:
            ids.append(entry_id)
            if entry_id == position:
                break
        what = f"XACK on stream {self._stream!r}"
        commands = [
            ("XACK", self._stream, self.options.group, *ids[at : at + _ACK_CHUNK])
            for at in range(0, len(ids), _ACK_CHUNK)
        ]
        async with redis_errors(what):
            replies = await execute_packed(self._client, pack(commands), len(commands))
        for reply in replies:
            if isinstance(reply, Exception):
                raise map_error(reply, what)
        # Only after the acknowledgement: a failed XACK leaves everything to send again.
        for _ in ids:
            self._outstanding.discard(self._handed.popleft())

    async def replay_plan(
        self, context: SourceContext, start: ReplayPoint, until: ReplayPoint | None
    ) -> list[PartitionMove]:
        """The group's last-delivered id for a time or an entry id (``connectors.redis.stream_replay``)."""
        return await stream_replay.plan(self.options, context, start, until)

    async def replay_commit(self, context: SourceContext, moves: Sequence[PartitionMove]) -> None:
        """XGROUP SETID to the new id (the pipe is stopped)."""
        await stream_replay.commit(self.options, context, moves)

    def lag(self) -> Mapping[str, int] | None:
        """Entries not yet read by the group, as of the last claim scan (Redis 7+ only)."""
        return None if self._lag is None else {self._stream: self._lag}

    def caught_up(self) -> bool:
        return self._first_claim_done and self._backlog_from is None and self._reached_end
