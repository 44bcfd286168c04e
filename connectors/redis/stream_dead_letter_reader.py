"""Reads back a ``redis_stream`` dead letter: its entries, oldest first (``pipes dlq``).

Entries are read with XRANGE in pages, up to the last entry there was when
the scan began; the position of a record is its entry id. The record is the
JSON in the entry's ``field`` (``data`` by default), as the target wrote it.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from typing import TYPE_CHECKING, Any

import redis.asyncio as redis

from connectors.redis.client import close_client, open_client, redis_errors, text
from pipes.connector import ConnectorContext
from pipes.dead_letters import DeadLetter, DeadLetterReader, position_key
from pipes.events import Position

if TYPE_CHECKING:
    from connectors.redis.stream_target import RedisStreamTargetOptions

__all__ = ["RedisStreamDeadLetterReader"]

#: Entries per XRANGE page.
PAGE = 500


def _after(entry_id: str) -> str:
    """The smallest stream id after ``entry_id`` (exclusive paging on any Redis version)."""
    ms, seq = position_key(entry_id)
    return f"{ms}-{seq + 1}"


class RedisStreamDeadLetterReader(DeadLetterReader):
    """The entries of the dead-letter stream; the partition is the stream key."""

    options: RedisStreamTargetOptions
    _client: redis.Redis | None = None

    async def start(self, context: ConnectorContext) -> None:
        self._client = open_client(self.options, name=f"pipes:{context.pipe}:dlq")

    async def stop(self) -> None:
        await close_client(self._client)
        self._client = None

    async def scan(self, after: Mapping[str, Position]) -> AsyncGenerator[list[DeadLetter]]:
        client = self._client
        assert client is not None, "scan before start"
        stream = self.options.stream
        field = self.options.field.encode()
        what = f"XRANGE on dead-letter stream {stream!r}"
        async with redis_errors(what):
            newest: Any = await client.xrevrange(stream, "+", "-", count=1)
        if not newest:
            return
        end = text(newest[0][0])
        start = _after(str(after[stream])) if stream in after else "-"
        while True:
            async with redis_errors(what):
                entries: Any = await client.xrange(stream, start, end, count=PAGE)
            if not entries:
                return
            out = []
            for raw_id, fields in entries:
                entry_id = text(raw_id)
                out.append(DeadLetter.decode(stream, entry_id, fields.get(field, b"")))
            yield out
            last = out[-1].position
            if last == end or len(entries) < PAGE:
                return
            start = _after(str(last))
