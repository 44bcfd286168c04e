"""The ``redis_pubsub`` source: SUBSCRIBE / PSUBSCRIBE, at most once.

Redis Pub/Sub keeps nothing: a message published while this source is not
subscribed (before start, during a reconnect, after a crash) is gone, and a
message received is never acknowledged, so one that was in flight when the
process died is lost too. Use ``redis_stream`` or ``redis_list`` when every
event matters.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import redis.asyncio as redis
from pydantic import Field, model_validator

from connectors.redis.client import RedisOptions, close_client, map_error, open_client, text
from pipes.codec import decode_body
from pipes.connector import Source, SourceContext
from pipes.events import Event, Position

__all__ = ["RedisPubSubSource", "RedisPubSubSourceOptions"]


class RedisPubSubSourceOptions(RedisOptions):
    """Options of the ``redis_pubsub`` source."""

    channels: list[str] = Field(default_factory=list, description="Channels to SUBSCRIBE to.")
    patterns: list[str] = Field(
        default_factory=list, description="Glob-style patterns to PSUBSCRIBE to (e.g. orders.*)."
    )

    @model_validator(mode="after")
    def _something_to_hear(self) -> RedisPubSubSourceOptions:
        if not self.channels and not self.patterns:
            raise ValueError("give at least one of channels or patterns")
        return self


class RedisPubSubSource(Source):
    """Hands out published messages as they arrive; nothing to commit."""

    options_model: ClassVar[type[RedisPubSubSourceOptions]] = RedisPubSubSourceOptions
    #: Nothing can be replayed, so there is no position worth storing.
    tracks_position: ClassVar[bool] = True

    options: RedisPubSubSourceOptions

    def __init__(self, options: RedisPubSubSourceOptions) -> None:
        super().__init__(options)
        self._client: redis.Redis | None = None
        self._pubsub: Any = None
        self._seq = 0
        self._idle = False
        self._clock: Any = None

    async def start(self, context: SourceContext) -> None:
        self._clock = context.clock
        self._client = open_client(self.options, name=f"pipes:{context.pipe}")
        try:
            await self._subscribe()
        except redis.RedisError as exc:
            raise map_error(exc, "subscribe") from exc

    async def _subscribe(self) -> None:
        assert self._client is not None
        pubsub: Any = self._client.pubsub()
        try:
            if self.options.channels:
                await pubsub.subscribe(*self.options.channels)
            if self.options.patterns:
                await pubsub.psubscribe(*self.options.patterns)
        except BaseException:
            await pubsub.aclose()
            raise
        self._pubsub = pubsub

    async def _unsubscribe(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            try:
                await pubsub.aclose()
            except Exception:  # closing a broken connection may fail; it is dropped either way
                return

    async def stop(self) -> None:
        await self._unsubscribe()
        await close_client(self._client)
        self._client = None

    async def read(self, max_events: int, timeout_s: float) -> list[Event]:
        try:
            if self._pubsub is None:
                await self._subscribe()
            return await self._read(max_events, timeout_s)
        except redis.RedisError as exc:
            # Re-subscribe on the next read; what was published meanwhile is lost.
            await self._unsubscribe()
            raise map_error(exc, "read published messages") from exc

    async def _read(self, max_events: int, timeout_s: float) -> list[Event]:
        pubsub = self._pubsub
        deadline = self._clock.monotonic() + timeout_s
        events: list[Event] = []
        while len(events) < max_events:
            # Wait only for the first message; then take what is already buffered.
            wait = 0.0 if events else max(0.0, deadline - self._clock.monotonic())
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=wait)
            if message is None:
                if events or wait <= 0.0:
                    break
                continue  # a subscribe confirmation, not a message: keep waiting
            channel = text(message["channel"])
            pattern = message.get("pattern")
            data = message["data"]
            record = {
                "channel": channel,
                "pattern": text(pattern) if pattern is not None else None,
                "body": decode_body(data),
            }
            self._seq += 1
            events.append(Event(record, channel, self._seq, raw=data if isinstance(data, bytes) else None))
        self._idle = not events
        return events

    async def commit(self, positions: Mapping[str, Position]) -> None:
        return None

    def caught_up(self) -> bool:
        """``--once``: nothing is retained, so "the end" is a read that heard nothing."""
        return self._idle
