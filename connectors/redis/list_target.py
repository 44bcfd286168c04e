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
from pipes.connector import Target, encode_each, payload_bytes
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

    reads_record = False

    def __init__(self, options: RedisListTargetOptions) -> None:
        super().__init__(options)

    async def write(self, events: Sequence[Event]) -> Sequence[Outcome]:
        assert self._client is not None, "write before start"
        key = self.options.list
        encoded, outcomes = encode_each(events, payload_bytes)
        sent = [i for i, value in enumerate(encoded) if value is not None]
        if not sent:
            return outcomes
        what = f"{'RPUSH' if self.options.push == 'right' else 'LPUSH'} to {key!r}"
        async with redis_errors(what), self._client.pipeline(transaction=False) as pipe:
            chunks = [sent[at : at + _PUSH_CHUNK] for at in range(0, len(sent), _PUSH_CHUNK)]
            for chunk in chunks:
                values = [encoded[i] for i in chunk]
                if self.options.push == "right":
                    pipe.rpush(key, *values)  # type: ignore[arg-type]
                else:
                    pipe.lpush(key, *values)  # type: ignore[arg-type]
            replies = await pipe.execute(raise_on_error=False)
        for chunk, reply in zip(chunks, replies, strict=True):
            if isinstance(reply, Exception):
                for i in chunk:
                    outcomes[i] = map_error(reply, what)
        return outcomes
