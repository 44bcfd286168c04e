"""Reads back a ``redis_list`` dead letter in place, oldest first (``pipes dlq``).

Nothing is popped: the list stays as it is, and what a redrive sent again is
remembered by pipes (``pipes.redrive_ledger``). A record's position is its
place counted from the oldest end: from the left for a list written with
RPUSH (``push: right``, the default), from the right for LPUSH. Either stays
the same as more is pushed; popping from the dead-letter list while using
``pipes dlq`` would shift them.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from typing import TYPE_CHECKING, Any

import redis.asyncio as redis

from connectors.redis.client import close_client, open_client, redis_errors
from pipes.connector import ConnectorContext
from pipes.dead_letters import DeadLetter, DeadLetterReader
from pipes.events import Position

if TYPE_CHECKING:
    from connectors.redis.list_target import RedisListTargetOptions

__all__ = ["RedisListDeadLetterReader"]

#: Items per LRANGE page.
PAGE = 500


class RedisListDeadLetterReader(DeadLetterReader):
    """The items of the dead-letter list; the partition is the list key."""

    options: RedisListTargetOptions
    _client: redis.Redis | None = None

    async def start(self, context: ConnectorContext) -> None:
        self._client = open_client(self.options, name=f"pipes:{context.pipe}:dlq")

    async def stop(self) -> None:
        await close_client(self._client)
        self._client = None

    async def _page(self, first: int, count: int) -> list[bytes]:
        """Items ``first`` .. ``first + count - 1`` counted from the oldest end, oldest first."""
        assert self._client is not None
        key = self.options.list
        if self.options.push == "right":
            items: Any = await self._client.lrange(key, first, first + count - 1)
            return list(items)
        # LPUSH: the oldest item is the rightmost; negative indexes count from there.
        items = await self._client.lrange(key, -(first + count), -(first + 1))
        return list(reversed(items))

    async def scan(self, after: Mapping[str, Position]) -> AsyncGenerator[list[DeadLetter]]:
        assert self._client is not None, "scan before start"
        key = self.options.list
        what = f"LRANGE on dead-letter list {key!r}"
        async with redis_errors(what):
            end = int(await self._client.llen(key))
        at = int(after[key]) + 1 if key in after else 0
        while at < end:
            async with redis_errors(what):
                items = await self._page(at, min(PAGE, end - at))
            if not items:
                return
            yield [DeadLetter.decode(key, at + i, item) for i, item in enumerate(items)]
            at += len(items)
