"""The ``redis_list`` target: RPUSH (or LPUSH) a batch's payloads in one command."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Literal

import redis.asyncio as redis
from pydantic import Field

from connectors.redis.client import RedisOptions, close_client, map_error, open_client, redis_errors
from pipes.codec import encode_payload
from pipes.connector import ConnectorContext, Target
from pipes.events import Event, Outcome

__all__ = ["RedisListTarget", "RedisListTargetOptions"]

#: Values per push command; a batch is one pipelined round trip however large.
_PUSH_CHUNK = 1000


class RedisListTargetOptions(RedisOptions):
    """Options of the ``redis_list`` target."""

    list: str = Field(description="The list key to push to.")
    push: Literal["left", "right"] = Field(
        default="right", description="RPUSH (right: a FIFO queue for consumers that pop left) or LPUSH."
    )


class RedisListTarget(Target):
    """Pushes payloads in batch order; a push of many values is all-or-nothing."""

    options_model: ClassVar[type[RedisListTargetOptions]] = RedisListTargetOptions

    options: RedisListTargetOptions

    def __init__(self, options: RedisListTargetOptions) -> None:
        super().__init__(options)
        self._client: redis.Redis | None = None

    async def start(self, context: ConnectorContext) -> None:
        self._client = open_client(self.options, name=f"pipes:{context.pipe}")

    async def stop(self) -> None:
        await close_client(self._client)
        self._client = None

    async def write(self, events: Sequence[Event]) -> Sequence[Outcome]:
        assert self._client is not None, "write before start"
        key = self.options.list
        values = [encode_payload(event.payload) for event in events]
        what = f"{'RPUSH' if self.options.push == 'right' else 'LPUSH'} to {key!r}"
        async with redis_errors(what), self._client.pipeline(transaction=False) as pipe:
            chunks = [values[at : at + _PUSH_CHUNK] for at in range(0, len(values), _PUSH_CHUNK)]
            for chunk in chunks:
                if self.options.push == "right":
                    pipe.rpush(key, *chunk)
                else:
                    pipe.lpush(key, *chunk)
            replies = await pipe.execute(raise_on_error=False)
        outcomes: list[Outcome] = []
        for chunk, reply in zip(chunks, replies, strict=True):
            outcome = map_error(reply, what) if isinstance(reply, Exception) else None
            outcomes.extend([outcome] * len(chunk))
        return outcomes
