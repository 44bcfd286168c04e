"""The ``redis_pubsub`` target: PUBLISH each payload, a batch in one round trip.

Delivered means the server accepted the message; Redis tells how many clients
were subscribed at that moment, and zero is still delivered (at most once).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from pydantic import Field

from connectors.redis.client import (
    RedisClientLifecycle,
    RedisOptions,
    map_error,
    redis_errors,
)
from pipes.connector import Target, encode_each, payload_bytes
from pipes.events import Event, Outcome

__all__ = ["RedisPubSubTarget", "RedisPubSubTargetOptions"]


class RedisPubSubTargetOptions(RedisOptions):
    """Options of the ``redis_pubsub`` target."""

    channel: str = Field(description="The channel to PUBLISH to.")


class RedisPubSubTarget(RedisClientLifecycle, Target):
    """Publishes payloads in batch order."""

    options_model: ClassVar[type[RedisPubSubTargetOptions]] = RedisPubSubTargetOptions

    options: RedisPubSubTargetOptions

    reads_record = False

    def __init__(self, options: RedisPubSubTargetOptions) -> None:
        super().__init__(options)

    async def write(self, events: Sequence[Event]) -> Sequence[Outcome]:
        assert self._client is not None, "write before start"
        channel = self.options.channel
        what = f"PUBLISH to {channel!r}"
        encoded, outcomes = encode_each(events, payload_bytes)
        sent = [i for i, value in enumerate(encoded) if value is not None]
        if not sent:
            return outcomes
        async with redis_errors(what), self._client.pipeline(transaction=False) as pipe:
            for i in sent:
                pipe.publish(channel, encoded[i])  # type: ignore[arg-type]
            replies = await pipe.execute(raise_on_error=False)
        for i, reply in zip(sent, replies, strict=True):
            if isinstance(reply, Exception):
                outcomes[i] = map_error(reply, what)
        return outcomes
