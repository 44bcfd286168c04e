"""HTTP servers for webhook sources, one per listen address, shared by every webhook pipe of the process.

A port can be bound once, but several pipes may want webhooks on it (one
path each). The ``ListenerRegistry`` opens a ``Listener`` when the first pipe
attaches to an address, routes each path to the pipe that owns it, and closes
the server when the last pipe detaches. Keys include the event loop, so that
servers of one loop are never handed to another (tests run a loop each).

A request for a path no pipe serves gets 404; everything else is the route's
to answer (``WebhookSource.handle``).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from aiohttp import web

from pipes.errors import FatalError, RetryableError

__all__ = ["LISTENERS", "Listener", "ListenerRegistry", "Route", "TlsFiles", "parse_listen"]

type Route = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]

#: How long closing a server waits for requests still being answered (all are answered before).
_SHUTDOWN_S = 5.0


@dataclass(frozen=True)
class TlsFiles:
    cert_file: str
    key_file: str


def parse_listen(listen: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:8080`` for IPv6) as (host, port); ``ValueError`` saying what is wrong."""
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"listen must be host:port, e.g. 0.0.0.0:8080, not {listen!r}")
    return host.removeprefix("[").removesuffix("]"), int(port)


class Listener:
    """One aiohttp server and the routes (path -> handler) of the pipes it serves."""

    def __init__(self, listen: str, tls: TlsFiles | None) -> None:
        self.listen = listen
        self.host, self.port = parse_listen(listen)
        self.tls = tls
        self.routes: dict[str, tuple[str, Route]] = {}
        self.users = 0
        self._runner: web.ServerRunner | None = None
        self._lock = asyncio.Lock()

    @property
    def bound_port(self) -> int:
        """The port actually bound (differs from the configured one for port 0)."""
        runner = self._runner
        if runner is not None:
            for address in runner.addresses:
                if isinstance(address, tuple) and len(address) >= 2:
                    return int(address[1])
        return self.port

    @property
    def scheme(self) -> str:
        return "https" if self.tls is not None else "http"

    async def _dispatch(self, request: web.BaseRequest) -> web.StreamResponse:
        found = self.routes.get(request.path)
        if found is None:
            return web.json_response({"error": "no pipe serves this path"}, status=404)
        return await found[1](request)

    async def open(self) -> None:
        async with self._lock:
            if self._runner is not None:
                return
            context: ssl.SSLContext | None = None
            if self.tls is not None:
                try:
                    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
                    context.load_cert_chain(self.tls.cert_file, self.tls.key_file)
                except (OSError, ssl.SSLError) as exc:
                    raise FatalError(
                        f"webhook {self.listen}: cannot load tls_cert_file/tls_key_file: {exc}"
                    ) from None
            runner = web.ServerRunner(
                web.Server(self._dispatch, access_log=None),
                handle_signals=False,
                shutdown_timeout=_SHUTDOWN_S,
            )
            await runner.setup()
            site = web.TCPSite(
                runner,
                self.host,
                self.port,
                ssl_context=context,
                reuse_address=True,
            )
            try:
                await site.start()
            except OSError as exc:
                await runner.cleanup()
                raise RetryableError(
                    f"webhook: cannot listen on {self.listen}: {exc.strerror or exc}"
                ) from None
            self._runner = runner

    async def close(self) -> None:
        async with self._lock:
            runner, self._runner = self._runner, None
            if runner is not None:
                await runner.cleanup()


class ListenerRegistry:
    """Listeners by (event loop, listen address); a pipe attaches its paths and detaches them."""

    def __init__(self) -> None:
        self._listeners: dict[tuple[int, str], Listener] = {}
        self._closing: dict[tuple[int, str], asyncio.Task[None]] = {}

    @staticmethod
    def _key(listen: str) -> tuple[int, str]:
        return (id(asyncio.get_running_loop()), listen)

    async def attach(
        self, listen: str, tls: TlsFiles | None, paths: Iterable[str], owner: str, route: Route
    ) -> Listener:
        """Serve ``paths`` with ``route`` on ``listen``, opening the server if needed.

        ``RetryableError`` when a path is already served by another pipe, the
        address is served with other TLS files, or it cannot be bound: the
        other pipe may be on its way out (a reload that moves a path from one
        pipe to another starts the new one first), so the runner tries again.
        """
        key = self._key(listen)
        closing = self._closing.get(key)
        if closing is not None:
            await asyncio.shield(closing)  # the previous server of this address must let go of the port
        listener = self._listeners.get(key)
        if listener is None:
            listener = self._listeners[key] = Listener(listen, tls)
        listener.users += 1
        try:
            if listener.tls != tls:
                raise RetryableError(
                    f"webhook {listen} is already served with other TLS files by pipe "
                    f"{_owners(listener)}: pipes sharing an address must give the same tls_cert_file/tls_key_file"
                )
            for path in paths:
                taken = listener.routes.get(path)
                if taken is not None and taken[1] is not route:
                    raise RetryableError(
                        f"webhook path {path} on {listen} is already served by pipe {taken[0]}"
                    )
            await listener.open()
            if listener.port == 0:
                # Port 0 asked for any port: pipes that name the port it got share it too.
                self._listeners.setdefault(
                    self._key(f"{listen.rpartition(':')[0]}:{listener.bound_port}"), listener
                )
            for path in paths:
                listener.routes[path] = (owner, route)
        except BaseException:
            await self.detach(listener, ())
            raise
        return listener

    async def detach(self, listener: Listener, paths: Iterable[str]) -> None:
        """Stop serving ``paths``; the last user closes the server."""
        for path in paths:
            listener.routes.pop(path, None)
        listener.users -= 1
        if listener.users > 0:
            return
        key = self._key(listener.listen)
        for alias in [k for k, found in self._listeners.items() if found is listener]:
            del self._listeners[alias]
        task = asyncio.ensure_future(listener.close())
        self._closing[key] = task
        try:
            await asyncio.shield(task)
        finally:
            if self._closing.get(key) is task:
                del self._closing[key]


def _owners(listener: Listener) -> str:
    owners = sorted({owner for owner, _ in listener.routes.values()})
    return ", ".join(owners) or "(starting)"


#: The process's listeners (a port belongs to the process, so this is process-wide state by nature).
LISTENERS = ListenerRegistry()
