"""Leases in Redis for ``--coordination redis://...`` (see ``pipes.coordination``).

One key per pipe, ``<prefix><pipe>``, holding the owner's name with an expiry:
``SET NX PX`` takes it, and a script renews or deletes it only if the value is
still this owner's, so a daemon whose lease expired can never extend or drop
the lease another daemon has taken since.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as redis

from connectors.redis.client import RedisOptions, close_client, open_client, redis_errors, text
from pipes.coordination import default_owner

__all__ = ["RedisLeases"]

DEFAULT_PREFIX = "pipes:lease:"

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisLeases:
    """``pipes.coordination.Leases`` in a Redis server (connects on first use)."""

    def __init__(self, url: str, *, owner: str | None = None, prefix: str = DEFAULT_PREFIX) -> None:
        self.options = RedisOptions(url=url)
        self.owner = owner or default_owner()
        self.prefix = prefix
        self._client: redis.Redis | None = None
        self._renew: Any = None
        self._release: Any = None

    def _key(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def _connected(self) -> redis.Redis:
        if self._client is None:
            self._client = open_client(self.options, name="pipes:leases")
            self._renew = self._client.register_script(_RENEW)
            self._release = self._client.register_script(_RELEASE)
        return self._client

    async def acquire(self, name: str, ttl_s: float) -> bool:
        async with redis_errors(f"take the lease of {name!r}"):
            done = await self._connected().set(
                self._key(name), self.owner, nx=True, px=max(1, int(ttl_s * 1000))
            )
        return bool(done)

    async def renew(self, name: str, ttl_s: float) -> bool:
        self._connected()
        async with redis_errors(f"renew the lease of {name!r}"):
            kept = await self._renew(keys=[self._key(name)], args=[self.owner, max(1, int(ttl_s * 1000))])
        return bool(kept)

    async def release(self, name: str) -> None:
        self._connected()
        async with redis_errors(f"release the lease of {name!r}"):
            await self._release(keys=[self._key(name)], args=[self.owner])

    async def holder(self, name: str) -> str | None:
        async with redis_errors(f"read the lease of {name!r}"):
            value = await self._connected().get(self._key(name))
        return None if value is None else text(value)

    async def close(self) -> None:
        await close_client(self._client)
        self._client = None
