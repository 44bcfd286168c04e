"""A real HTTP server on loopback for the HTTP connector tests (importable as ``http_kit``).

It records every request it gets and answers through ``respond``, a function
the test sets (200 with an empty JSON object by default). Times are read from
the clock it is given, so that a test on a ``ManualClock`` sees the clock's
time of each arrival.
"""

from __future__ import annotations

import asyncio
import inspect
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from multidict import CIMultiDict, MultiDict

from pipes.clock import Clock, SystemClock

__all__ = ["Recorder", "Seen"]


@dataclass
class Seen:
    method: str
    path: str
    query: MultiDict[str]
    headers: CIMultiDict[str]
    body: bytes
    at: float
    extra: dict[str, Any] = field(default_factory=dict)

    def json(self) -> Any:
        import orjson

        return orjson.loads(self.body)


type Respond = Callable[[Seen], web.StreamResponse | Awaitable[web.StreamResponse]]


def ok(seen: Seen) -> web.StreamResponse:
    return web.json_response({})


class Recorder:
    """``async with Recorder() as server``: ``server.url``, ``server.seen``, ``server.respond``."""

    def __init__(self, clock: Clock | None = None, ssl_context: ssl.SSLContext | None = None) -> None:
        self.clock = clock or SystemClock()
        self.ssl_context = ssl_context
        self.seen: list[Seen] = []
        self.respond: Respond = ok
        self.arrived = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0
        #: Set to release handlers that wait on it (a server that hangs until the test ends).
        self.release = asyncio.Event()

    @property
    def url(self) -> str:
        return f"{'https' if self.ssl_context else 'http'}://127.0.0.1:{self.port}"

    def paths(self) -> list[str]:
        return [s.path for s in self.seen]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        seen = Seen(
            request.method,
            request.path,
            MultiDict(request.query),
            CIMultiDict(request.headers),
            body,
            self.clock.monotonic(),
        )
        self.seen.append(seen)
        self.arrived.set()
        answer = self.respond(seen)
        if inspect.isawaitable(answer):
            answer = await answer
        return answer

    async def hang(self, seen: Seen) -> web.StreamResponse:
        """A ``respond`` that does not answer until ``release`` is set."""
        await self.release.wait()
        return web.json_response({})

    async def __aenter__(self) -> Recorder:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.ssl_context)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release.set()
        if self._runner is not None:
            await self._runner.cleanup()
