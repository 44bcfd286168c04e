"""The ``redis_list`` source: a list read as a reliable queue.

Each item is moved atomically (LMOVE) from the list into this consumer's
*processing list* before it is handed out, and removed from there (LREM) only
once it is settled; a crash therefore leaves every unsettled item in the
processing list, and the next start hands those out again first, in the order
they were taken, before it takes anything new. Items are never pushed back
onto the list: whatever happens between two steps, an item is always in one of
the two lists.

Positions are per-run sequence numbers (partition = the list key); the values
themselves are kept in hand-out order so that ``commit`` can LREM the settled
prefix, one pipelined round trip per commit.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import redis.asyncio as redis
from pydantic import Field

from connectors.redis.client import (
    RedisOptions,
    close_client,
    default_consumer,
    map_error,
    open_client,
    redis_errors,
)
from pipes.connector import Source, SourceContext
from pipes.events import UNSET, Event, Position
from pipes.units import Duration

__all__ = ["RedisListSource", "RedisListSourceOptions"]

# Moves up to ARGV[1] items in one atomic step and stops at the first miss, so
# a short list costs one round trip, not one per item.
_MOVE_MANY = """
local out = {}
for i = 1, tonumber(ARGV[1]) do
  local v = redis.call('LMOVE', KEYS[1], KEYS[2], ARGV[2], 'RIGHT')
  if not v then break end
  out[i] = v
end
return out
"""


class RedisListSourceOptions(RedisOptions):
    """Options of the ``redis_list`` source."""

    list: str = Field(description="The list key to take items from.")
    consumer: str = Field(
        default_factory=default_consumer,
        description=(
            "This consumer's name, part of the default processing list's key; defaults to the host "
            "name. Instances sharing a host must be given distinct names."
        ),
    )
    processing_list: str | None = Field(
        default=None,
        description="Where taken items wait until settled; default <list>:processing:<consumer>.",
    )
    pop: Literal["left", "right"] = Field(
        default="left",
        description="The end items are taken from: left is FIFO for producers that RPUSH.",
    )
    count: int = Field(default=500, ge=1, description="Most items moved per round trip.")
    block: Duration = Field(
        default=1.0,
        description="Longest time one BLMOVE waits on an empty list (the runner may ask for less).",
    )


class ListLayout:
    """The record of a list item: ``{"list", "body"}``."""

    body_field = "body"

    def __init__(self, key: str) -> None:
        self.key = key

    def record(self, event: Event, body: Any) -> dict[str, Any]:
        return {"list": self.key, "body": body}


class RedisListSource(Source):
    """Takes items into a processing list; removes them from there once settled."""

    options_model: ClassVar[type[RedisListSourceOptions]] = RedisListSourceOptions
    #: The processing list is the native record of what is unsettled.
    tracks_position: ClassVar[bool] = True
    shared_by_group: ClassVar[bool] = True

    options: RedisListSourceOptions

    def __init__(self, options: RedisListSourceOptions) -> None:
        super().__init__(options)
        self._layout = ListLayout(options.list)
        self._key = options.list
        self._processing = options.processing_list or f"{options.list}:processing:{options.consumer}"
        self._side = options.pop.upper()
        self._client: redis.Redis | None = None
        self._mover: Any = None
        self._seq = 0
        # Handed out, not yet removed: (position, value) in hand-out order, and a
        # multiset of the values, to tell our items from stranded ones on a re-scan.
        self._handed: deque[tuple[int, bytes]] = deque()
        self._outstanding: Counter[bytes] = Counter()
        self._backlog: deque[bytes] | None = None
        self._rescan = True
        self._once = False
        self._to_take: int | None = None
        self._reached_end = False

    async def start(self, context: SourceContext) -> None:
        base = self.options.processing_list or f"{self.options.list}:processing:{self.options.consumer}"
        # Each worker process moves items into a processing list of its own.
        self._processing = f"{base}:{context.worker}" if context.worker else base
        self._once = context.once
        self._client = open_client(self.options, name=f"pipes:{context.pipe}")
        self._mover = self._client.register_script(_MOVE_MANY)
        if self._once:
            async with redis_errors(f"LLEN {self._key!r}"):
                self._to_take = int(await self._client.llen(self._key))

    async def stop(self) -> None:
        await close_client(self._client)
        self._client = None

    async def read(self, max_events: int, timeout_s: float) -> list[Event]:
        try:
            return await self._read(max_events, timeout_s)
        except redis.RedisError as exc:
            # A lost reply may have moved items we never saw: look at the processing list again.
            self._rescan = True
            raise map_error(exc, f"read from list {self._key!r}") from exc

    async def _read(self, max_events: int, timeout_s: float) -> list[Event]:
        assert self._client is not None
        if self._rescan:
            await self._scan_processing_list()
        count = min(max_events, self.options.count)
        if self._backlog:
            taken = [self._backlog.popleft() for _ in range(min(count, len(self._backlog)))]
            return self._events(taken)
        if self._once:
            if self._reached_end or (self._to_take is not None and self._to_take <= 0):
                self._reached_end = True
                return []
            if self._to_take is not None:
                count = min(count, self._to_take)
        moved: list[bytes] = await self._mover(keys=[self._key, self._processing], args=[count, self._side])
        if not moved:
            if self._once:
                self._reached_end = True
                return []
            block_s = min(timeout_s, self.options.block, max(0.0, self.options.socket_timeout - 1.0))
            if block_s <= 0:
                return []
            item: Any = await self._client.blmove(self._key, self._processing, block_s, self._side, "RIGHT")  # type: ignore[arg-type]
            if item is None:
                return []
            moved = [item]
        if self._to_take is not None:
            self._to_take -= len(moved)
        return self._events(moved)

    async def _scan_processing_list(self) -> None:
        """Queue the processing list's items that this run does not hold (a crash's leftovers)."""
        assert self._client is not None
        items: Any = await self._client.lrange(self._processing, 0, -1)
        ours = Counter(self._outstanding)
        backlog: deque[bytes] = deque()
        for item in items:
            if ours[item] > 0:
                ours[item] -= 1
            else:
                backlog.append(item)
        self._backlog = backlog
        self._rescan = False

    def _events(self, values: list[bytes]) -> list[Event]:
        key, layout, unset = self._key, self._layout, UNSET
        events = []
        for value in values:
            self._seq += 1
            self._handed.append((self._seq, value))
            self._outstanding[value] += 1
            events.append(Event(None, key, self._seq, "body", unset, None, value, None, layout))
        return events

    async def commit(self, positions: Mapping[str, Position]) -> None:
        position = positions.get(self._key)
        if not isinstance(position, int) or self._client is None:
            return
        done = [value for seq, value in self._handed if seq <= position]
        if not done:
            return
        async with (
            redis_errors(f"LREM {self._processing!r}"),
            self._client.pipeline(transaction=False) as pipe,
        ):
            for value in done:
                pipe.lrem(self._processing, 1, value)  # type: ignore[arg-type]  # bytes are fine
            await pipe.execute()
        for _ in done:
            _, value = self._handed.popleft()
            self._outstanding[value] -= 1
            if self._outstanding[value] <= 0:
                del self._outstanding[value]

    def caught_up(self) -> bool:
        return not self._rescan and not self._backlog and self._reached_end
