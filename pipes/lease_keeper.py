"""The daemon's side of ``--coordination``: take, renew and give up the leases of unshareable pipes.

Every third of the lease time the keeper renews the leases it holds and tries
to take those of unshareable pipes that should run and are not running
anywhere it can see. A pipe starts only once its lease is taken; a lease that
cannot be renewed before it expires is lost, and its pipe is stopped at once
(no drain: another daemon may already run it; what settled is committed and
the rest is delivered again by the new owner, at least once). See
``pipes.coordination`` for the contract and docs/scaling.md for the behaviour.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from pipes.coordination import Leases

if TYPE_CHECKING:
    from pipes.daemon import Daemon, PipeHandle

__all__ = ["LeaseKeeper"]


class LeaseKeeper:
    def __init__(self, leases: Leases, ttl_s: float, log: Any) -> None:
        self.leases = leases
        self.ttl_s = ttl_s
        self.log = log
        #: Leases held, by pipe: when they were last taken or renewed (monotonic).
        self.held: dict[str, float] = {}

    @staticmethod
    def needs(handle: PipeHandle) -> bool:
        """Whether the pipe runs in one place only (its source is not shared through a group)."""
        source: Any = handle.definition.source.cls
        return not getattr(source, "shared_by_group", False)

    def holds(self, name: str) -> bool:
        return name in self.held

    async def run(self, daemon: Daemon) -> None:
        """Keep leases until the daemon stops; its pipes are started and stopped through it."""
        interval = self.ttl_s / 3
        while not daemon.stopping:
            await self.tick(daemon)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(daemon.stopped(), interval)

    async def tick(self, daemon: Daemon) -> None:
        loop = asyncio.get_running_loop()
        for handle in list(daemon.pipes.values()):
            if not self.needs(handle):
                continue
            name = handle.name
            now = loop.time()
            if name in self.held:
                if handle.desired != "RUNNING" and not handle.alive:
                    await self.release(name)
                    continue
                renewed: bool | None
                try:
                    renewed = await self.leases.renew(name, self.ttl_s)
                except Exception as exc:
                    renewed = None  # unsure: keep running until the lease would have expired
                    self.log.warning("lease_renew_failed", pipe=name, error=f"{type(exc).__name__}: {exc}")
                if renewed:
                    self.held[name] = now
                elif renewed is False or now - self.held[name] >= self.ttl_s:
                    del self.held[name]
                    self.log.error("lease_lost", pipe=name, owner=self.leases.owner)
                    daemon.lose_lease(handle)
            elif handle.desired == "RUNNING" and not daemon.stopping:
                try:
                    taken = await self.leases.acquire(name, self.ttl_s)
                    holder = None if taken else await self.leases.holder(name)
                except Exception as exc:
                    self.log.warning("lease_acquire_failed", pipe=name, error=f"{type(exc).__name__}: {exc}")
                    continue
                if taken:
                    self.held[name] = now
                    handle.standby = None
                    self.log.info("lease_taken", pipe=name, owner=self.leases.owner)
                    await daemon.start_leased(handle)
                else:
                    handle.standby = f"runs where its lease is held ({holder or 'no one: expiring'})"

    async def release(self, name: str) -> None:
        if self.held.pop(name, None) is None:
            return
        try:
            await self.leases.release(name)
            self.log.info("lease_released", pipe=name)
        except Exception as exc:  # it expires by itself
            self.log.warning("lease_release_failed", pipe=name, error=f"{type(exc).__name__}: {exc}")

    async def close(self) -> None:
        for name in list(self.held):
            await self.release(name)
        await self.leases.close()
