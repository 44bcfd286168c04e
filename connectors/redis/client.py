"""What every Redis connector shares: connection options, the client, error mapping.

The client is made with redis-py's own retries switched off. A command that is
retried inside the client after its reply was lost (XREADGROUP ``>``, LMOVE)
may have run on the server already; the connector has to know that it happened
so that it can recover what the lost reply carried. So every connection error
surfaces once, as ``RetryableError``, and the runner's backoff does the rest.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import redis.asyncio as redis
from pydantic import Field, field_validator
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import (
    AuthenticationError,
    AuthorizationError,
    BusyLoadingError,
    ResponseError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from pipes.connector import ConnectorContext, ConnectorOptions
from pipes.errors import FatalError, RetryableError
from pipes.units import Duration

__all__ = [
    "RedisOptions",
    "close_client",
    "default_consumer",
    "is_nogroup",
    "map_error",
    "open_client",
    "redis_errors",
    "text",
]

_SCHEMES = ("redis://", "rediss://", "unix://")

#: Replies that mean "the server cannot do it now" rather than "it can never be done".
_TRANSIENT_REPLIES = ("OOM", "LOADING", "BUSY", "TRYAGAIN", "READONLY", "MASTERDOWN", "CLUSTERDOWN")


class RedisOptions(ConnectorOptions):
    """Connection options of every Redis connector."""

    url: str = Field(
        default="redis://localhost:6379/0",
        description=(
            "Server URL: redis://[[user]:password@]host[:port][/db], rediss:// for TLS, "
            "or unix:///path/to/socket. Options below override the URL's parts."
        ),
    )
    username: str | None = Field(default=None, description="ACL user name (overrides the URL's).")
    password: str | None = Field(
        default=None,
        description="Password (overrides the URL's; use `${ENV}` interpolation, not a literal).",
        json_schema_extra={"format": "password", "writeOnly": True},
    )
    db: int | None = Field(default=None, ge=0, description="Database number (overrides the URL's).")
    connect_timeout: Duration = Field(default=5.0, description="Timeout to open a connection.")
    socket_timeout: Duration = Field(
        default=30.0,
        description="Timeout of one command's reply; blocking reads wait less than this.",
    )

    def url_for_humans(self) -> str:
        """The server's address for messages: the URL without a password."""
        from urllib.parse import urlsplit

        parts = urlsplit(self.url)
        if parts.scheme == "unix":
            return self.url
        return f"{parts.scheme}://{parts.hostname or 'localhost'}:{parts.port or 6379}"

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, url: str) -> str:
        if not url.startswith(_SCHEMES):
            raise ValueError(f"url must start with one of {', '.join(_SCHEMES)}, got {url!r}")
        return url


def open_client(options: RedisOptions, *, name: str | None = None) -> redis.Redis:
    """A client for ``options`` (no I/O yet: connections open on first use)."""
    overrides: dict[str, Any] = {}
    if options.username is not None:
        overrides["username"] = options.username
    if options.password is not None:
        overrides["password"] = options.password
    if options.db is not None:
        overrides["db"] = options.db
    client = redis.Redis.from_url(
        options.url,
        socket_connect_timeout=options.connect_timeout,
        socket_timeout=options.socket_timeout,
        retry=Retry(NoBackoff(), 0),
        protocol=2,
        client_name=name,
    )
    # from_url lets the URL win over keyword arguments; the options must win.
    client.connection_pool.connection_kwargs.update(overrides)
    return client


async def close_client(client: redis.Redis | None) -> None:
    """Close ``client`` and its pool; never raises (``stop`` must not)."""
    if client is None:
        return
    # Closing a dead connection may fail; there is nothing left to do then.
    with contextlib.suppress(Exception):
        await client.aclose()


def map_error(exc: BaseException, what: str) -> Exception:
    """The pipes error for a redis-py error: the type decides retry or dead letter."""
    if isinstance(exc, AuthenticationError | AuthorizationError):
        return FatalError(f"redis {what}: {exc}")
    if isinstance(exc, RedisConnectionError | RedisTimeoutError | BusyLoadingError | OSError):
        return RetryableError(f"redis {what}: {type(exc).__name__}: {exc}")
    if isinstance(exc, ResponseError):
        if str(exc).startswith(_TRANSIENT_REPLIES):
            return RetryableError(f"redis {what}: {exc}")
        return FatalError(f"redis {what}: {exc}")
    if isinstance(exc, RetryableError | FatalError):
        return exc
    return RetryableError(f"redis {what}: {type(exc).__name__}: {exc}")


@asynccontextmanager
async def redis_errors(what: str) -> AsyncIterator[None]:
    """Raise redis-py errors inside as ``RetryableError`` / ``FatalError``."""
    try:
        yield
    except (RetryableError, FatalError):
        raise
    except (redis.RedisError, OSError) as exc:
        raise map_error(exc, what) from exc


def is_nogroup(exc: BaseException) -> bool:
    """The consumer group (or its stream) is gone, e.g. after a restart without persistence."""
    return isinstance(exc, ResponseError) and str(exc).startswith("NOGROUP")


def default_consumer() -> str:
    """The host name: stable across restarts, so a restarted instance finds its own pending work."""
    return socket.gethostname() or "pipes"


def text(value: bytes | str) -> str:
    """A reply as text; bytes that are not UTF-8 are replaced by U+FFFD (they stay JSON-safe)."""
    if isinstance(value, str):
        return value
    return value.decode("utf-8", "replace")


class RedisClientLifecycle:
    """The client lifecycle every Redis target and enricher shares.

    Mixed in before ``Target`` / ``Enricher``: the client is opened at ``start``
    (no I/O until first use) and closed at ``stop``, which never raises.
    """

    options: RedisOptions
    _client: redis.Redis | None = None

    async def start(self, context: ConnectorContext) -> None:
        self._client = open_client(self.options, name=f"pipes:{context.pipe}")
        # Connect now: an unreachable server is a start failure (retried, and a --once
        # run gives up after --start-timeout), not a write failure much later.
        async with redis_errors(f"connect to {self.options.url_for_humans()}"):
            await self._client.ping()

    async def stop(self) -> None:
        await close_client(self._client)
        self._client = None
