"""Checkpoints kept in Redis, for sources that cannot keep their own (``--state redis://...``).

One string per pipe at ``<prefix><pipe>`` holding ``{"pipe": ..., "positions": {...}}``
as JSON. A SET replaces it whole, so a reader sees the old or the new mapping,
never a mix. Durable as far as the server is (persistence is the server's
configuration: AOF with ``appendfsync always`` for no loss at all).
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson
import redis.asyncio as redis

from connectors.redis.client import RedisOptions, close_client, open_client, redis_errors
from pipes.checkpoints import parse_checkpoint
from pipes.events import Position

__all__ = ["DEFAULT_PREFIX", "RedisCheckpointStore"]

DEFAULT_PREFIX = "pipes:checkpoint:"


class RedisCheckpointStore:
    """A ``pipes.checkpoints.CheckpointStore`` in a Redis server; connects on first use."""

    def __init__(self, url: str, *, prefix: str = DEFAULT_PREFIX) -> None:
        self.options = RedisOptions(url=url)
        self.prefix = prefix
        self._client: redis.Redis | None = None

    def key(self, pipe: str) -> str:
        return f"{self.prefix}{pipe}"

    def _connected(self) -> redis.Redis:
        if self._client is None:
            self._client = open_client(self.options, name="pipes:checkpoints")
        return self._client

    async def load(self, pipe: str) -> dict[str, Position]:
        async with redis_errors(f"load checkpoint of {pipe!r}"):
            raw = await self._connected().get(self.key(pipe))
        if raw is None:
            return {}
        return parse_checkpoint(raw, f"key {self.key(pipe)!r}", pipe)

    async def reset(self, pipe: str) -> bool:
        async with redis_errors(f"reset checkpoint of {pipe!r}"):
            return bool(await self._connected().delete(self.key(pipe)))

    async def save(self, pipe: str, positions: Mapping[str, Position]) -> None:
        data = orjson.dumps({"pipe": pipe, "positions": dict(positions)})
        async with redis_errors(f"save checkpoint of {pipe!r}"):
            await self._connected().set(self.key(pipe), data)

    async def close(self) -> None:
        await close_client(self._client)
        self._client = None
