"""Who runs a pipe that cannot be shared, in a fleet of daemons with the same pipe files.

Pipes whose source shares its events through the system itself (consumer
groups: ``Source.shared_by_group``) run on every daemon at once. Any other pipe
(a file, a generator, a webhook, a schedule, pub/sub) must run in exactly one
place. With ``--coordination URL`` a daemon runs such a pipe only while it holds
the pipe's *lease*: an expiring claim in a shared system, renewed well before it
expires. A daemon that dies stops renewing; within the lease time another one
takes the lease and starts the pipe, resuming from the shared checkpoint store
(``--state redis://...``). A daemon that fails to renew in time stops the pipe
at once (no drain): by then another daemon may have it.

This module is the contract and the keeper; the Redis lease lives with the Redis
connectors (``connectors/redis/lease.py``) and registers through the
``pipes.coordination`` entry points (``pipes.plugins``).
"""

from __future__ import annotations

import os
import socket
import uuid
from typing import Protocol

__all__ = ["Leases", "default_owner"]


class Leases(Protocol):
    """Exclusive, expiring claims on names, shared by a fleet; ``owner`` names this daemon.

    ``acquire`` takes a free (or expired) lease for ``ttl_s`` seconds and says
    whether it did; ``renew`` extends a lease this owner still holds and returns
    False when it does not (it expired and someone else may hold it);
    ``release`` gives it up if held; ``holder`` tells who holds it. All may raise
    ``RetryableError`` when the shared system is unreachable: the keeper then
    treats an unrenewed lease as lost once its time is up.
    """

    owner: str

    async def acquire(self, name: str, ttl_s: float) -> bool: ...

    async def renew(self, name: str, ttl_s: float) -> bool: ...

    async def release(self, name: str) -> None: ...

    async def holder(self, name: str) -> str | None: ...

    async def close(self) -> None: ...


def default_owner() -> str:
    """This daemon's name in a fleet: host, process and a random part (a restart is a new owner)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
