"""Serving an admin aiohttp app on an address: shared by one process and by the supervisor.

Both admin servers (``pipes.admin`` for a single process, ``pipes.workers.api``
for ``--workers``) bind the same way, report the same URL and give the port
back when 0 asked for a free one; keeping that here keeps them alike.
"""

from __future__ import annotations

import ssl

from aiohttp import web

__all__ = ["AppServer"]


class AppServer:
    """Serves ``app`` on HOST:PORT; port 0 picks a free port (see ``port`` after start)."""

    def __init__(
        self, app: web.Application, host: str, port: int, ssl_context: ssl.SSLContext | None
    ) -> None:
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.ssl_context else 'http'}://{host}:{self.port}"

    async def start(self) -> None:
        """Bind and serve; ``OSError`` when the address is taken."""
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=self.ssl_context)
        try:
            await site.start()
        except OSError:
            await self._runner.cleanup()
            raise
        addresses = self._runner.addresses
        if addresses:
            self.port = int(addresses[0][1])

    async def stop(self) -> None:
        await self._runner.cleanup()
