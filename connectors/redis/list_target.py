"""The ``redis_list`` target: RPUSH (or LPUSH) a batch's payloads in one command."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Literal

from pydantic import Field

from connectors.redis.client import (
    RedisClientLifecycle,
    RedisOptions,
    map_error,
    redis_errors,
)
from pipes.codec import encode_payload
from pipes.connector import Target
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


class RedisListTarget(RedisClientLifecycle, Target):
    """Pushes payloads in batch order; a push of many values is all-or-nothing."""

    options_model: ClassVar[type[RedisListTargetOptions]] = RedisListTargetOptions

    options: RedisListTargetOptions

    def __init__(self, options: RedisListTargetOptions) -> None:
        super().__init__(options)

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
