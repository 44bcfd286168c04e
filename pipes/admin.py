"""The admin HTTP API: health, readiness, metrics, and per-pipe state and control.

Bound to 127.0.0.1 by default: it can stop pipes, so it is not for the open
network. Who may call it (Host, Origin, JSON for changes, the
``PIPES_ADMIN_TOKEN`` bearer token) is checked by ``pipes.admin_guard`` before
any handler runs. Every error is JSON ``{"error": "..."}``, so clients never
parse HTML.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import orjson
import yaml
from aiohttp import web

from pipes.admin_guard import AUTHORIZED, AdminGuard
from pipes.admin_openapi import openapi_document
from pipes.admin_site import AppServer
from pipes.admin_tap import serve_tap
from pipes.console.settings import ConsoleSettings
from pipes.console.systems import system_map
from pipes.console.written import Written, read_written
from pipes.daemon import RUNNING, STOPPED, Daemon, PipeHandle
from pipes.metrics import CONTENT_TYPE
from pipes.rates import RateMeter

__all__ = ["DEFAULT_ADMIN", "TOKEN_ENV", "AdminServer", "ConsoleSettings", "make_app", "parse_admin"]

DEFAULT_ADMIN = "127.0.0.1:9900"
TOKEN_ENV = "PIPES_ADMIN_TOKEN"

_DAEMON: web.AppKey[Daemon] = web.AppKey("daemon", Daemon)
_RATES: web.AppKey[RateMeter] = web.AppKey("rates", RateMeter)

type Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def parse_admin(value: str) -> tuple[str, int] | None:
    """``HOST:PORT`` (or ``off``) to an address; ``ValueError`` with a readable message."""
    if value.strip().lower() == "off":
        return None
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{value!r}: use HOST:PORT (e.g. {DEFAULT_ADMIN}) or off")
    return host.strip("[]"), int(port)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def _error(message: str, status: int) -> web.Response:
    return _json({"error": message}, status)


@web.middleware
async def _json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.content_type == "application/json":
            raise
        return _error(exc.reason, exc.status)


async def _healthz(request: web.Request) -> web.Response:
    return _json({"status": "ok"})


async def _readyz(request: web.Request) -> web.Response:
    daemon = request.app[_DAEMON]
    # Open to probes without the token; then it says whether, not which pipes.
    not_ready = daemon.not_ready()
    waiting: dict[str, str] | int = not_ready if request.get(AUTHORIZED, True) else len(not_ready)
    if daemon.stopping:
        return _json({"status": "stopping", "not_ready": waiting}, 503)
    if waiting:
        return _json({"status": "not ready", "not_ready": waiting}, 503)
    return _json({"status": "ready"})


async def _metrics(request: web.Request) -> web.Response:
    body = request.app[_DAEMON].metrics.render()
    response = web.Response(body=body)
    response.headers["Content-Type"] = CONTENT_TYPE
    return response


def _summary(handle: PipeHandle) -> dict[str, Any]:
    lag = handle.lag()
    return {
        "name": handle.name,
        "file": handle.definition.file,
        "state": handle.state,
        "desired_state": handle.desired,
        "counters": handle.counters(),
        "last_error": handle.last_error,
        # Why it is not plainly RUNNING now (failing, stalled: DEGRADED, standing by), or null.
        "reason": handle.reason,
        "in_flight": handle.in_flight(),
        "lag": sum(lag.values()) if lag is not None else None,
    }


async def _pipes(request: web.Request) -> web.Response:
    daemon = request.app[_DAEMON]
    return _json({"pipes": [_summary(h) for h in daemon.pipes.values()]})


def _lookup(request: web.Request) -> PipeHandle:
    name = request.match_info["name"]
    handle = request.app[_DAEMON].pipes.get(name)
    if handle is None:
        raise web.HTTPNotFound(
            text=orjson.dumps({"error": f"no pipe named {name!r}"}).decode(), content_type="application/json"
        )
    return handle


async def _pipe(request: web.Request) -> web.Response:
    handle = _lookup(request)
    detail = _summary(handle)
    positions = handle.positions()
    if positions is None:
        try:
            positions = await request.app[_DAEMON].store.load(handle.name)
        except Exception:  # the store may be down; the rest of the answer is still useful
            positions = None
    detail["checkpoint"] = positions
    lag = handle.lag()
    detail["source_lag"] = dict(lag) if lag is not None else None
    return _json(detail)


async def _set(request: web.Request, desired: str) -> web.Response:
    handle = _lookup(request)
    daemon = request.app[_DAEMON]
    if daemon.stopping:
        return _error("the daemon is shutting down", 409)
    unchanged = handle.desired == desired and (handle.alive == (desired == RUNNING))
    daemon.set_desired(handle.name, desired)
    return _json(
        {"name": handle.name, "desired_state": handle.desired, "state": handle.state},
        200 if unchanged else 202,
    )


async def _stop(request: web.Request) -> web.Response:
    return await _set(request, STOPPED)


async def _start(request: web.Request) -> web.Response:
    return await _set(request, RUNNING)


async def _reload(request: web.Request) -> web.Response:
    """Read the pipe files again, as SIGHUP does, and answer with what changed."""
    daemon = request.app[_DAEMON]
    if daemon.stopping:
        return _error("the daemon is shutting down", 409)
    report = await daemon.reload()
    body: dict[str, Any] = {
        "added": report.added,
        "removed": report.removed,
        "restarted": report.restarted,
        "unchanged": report.unchanged,
        "errors": report.errors,
    }
    if report.errors:
        # Invalid files changed nothing of their own; the rest was applied.
        body["error"] = f"{len(report.errors)} error(s); first: {report.errors[0]}"
        return _json(body, 422)
    return _json(body)


async def _tap(request: web.Request) -> web.StreamResponse:
    """A live tap on one pipe, as server-sent events (``pipes.admin_tap``)."""
    return await serve_tap(request, _lookup(request))


async def _end_taps(app: web.Application) -> None:
    # Open taps would hold the server's shutdown up: end them first.
    for handle in app[_DAEMON].pipes.values():
        handle.taps.close("daemon stopping")


async def _definition(request: web.Request) -> web.Response:
    """The pipe's file as written (``${VAR}`` unexpanded, plain secrets masked) and the pipe in it."""
    handle = _lookup(request)
    file = handle.definition.file
    body: dict[str, Any] = {"name": handle.name, "file": file, "yaml": None, "pipe": None, "pipes_in_file": 0}
    try:
        written = await asyncio.to_thread(_read_written, Path(file))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        body["error"] = f"cannot read {file}: {' '.join(str(exc).split())}"
        return _json(body)
    body.update(yaml=written.text, pipe=written.pipes.get(handle.name), pipes_in_file=len(written.pipes))
    if body["pipe"] is None:
        body["error"] = f"{file} no longer defines {handle.name!r} (reload to apply the file as it is)"
    return _json(body)


def _read_written(path: Path) -> Written:
    return read_written(path.read_text(encoding="utf-8"), None, path.resolve().parent)


async def _systems(request: web.Request) -> web.Response:
    """Each system once and each pipe's ends, for the console's map (``pipes.console.systems``)."""
    daemon = request.app[_DAEMON]
    handles = list(daemon.pipes.values())
    found = system_map(h.definition for h in handles).as_dict()
    for pipe, handle in zip(found["pipes"], handles, strict=True):
        pipe["state"] = handle.state
        pipe["desired_state"] = handle.desired
    return _json(found)


async def _rates(request: web.Request) -> web.Response:
    """Events per second per pipe over the last seconds, with in-flight events and source lag."""
    daemon = request.app[_DAEMON]
    handles = list(daemon.pipes.values())
    rates = request.app[_RATES].observe(daemon.clock.monotonic(), {h.name: h.counters() for h in handles})
    probes = {p.pipe: p for p in daemon.probes()}
    pipes: dict[str, Any] = {}
    for handle in handles:
        probe = probes.get(handle.name)
        lag = dict(probe.lag) if probe is not None and probe.lag is not None else None
        pipes[handle.name] = {
            "state": handle.state,
            "per_s": rates.per_pipe.get(handle.name),
            "in_flight": probe.in_flight if probe is not None else 0,
            "lag": sum(lag.values()) if lag is not None else None,
            "lag_by_partition": lag,
        }
    return _json({"window_s": rates.window_s, "pipes": pipes})


async def _openapi(request: web.Request) -> web.Response:
    return _json(openapi_document())


def make_app(
    daemon: Daemon,
    token: str | None = None,
    guard: AdminGuard | None = None,
    console: ConsoleSettings | None = None,
) -> web.Application:
    """The API as an aiohttp application (``AdminServer`` serves it; tests use it directly).

    ``guard`` says who may call it; by default, loopback clients (and ``token``).
    The console is served at ``/ui`` (``pipes.console.routes``) with ``console``'s
    settings, or its defaults (it never writes files then).
    """
    from pipes.console.routes import console_app

    guard = guard or AdminGuard(token=token or None)
    app = web.Application(middlewares=[guard.middleware, _json_errors])
    app[_DAEMON] = daemon
    app.on_shutdown.append(_end_taps)
    app[_RATES] = RateMeter()
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/pipes", _pipes)
    app.router.add_get("/pipes/{name}", _pipe)
    app.router.add_post("/pipes/{name}/stop", _stop)
    app.router.add_post("/pipes/{name}/start", _start)
    app.router.add_get("/pipes/{name}/tap", _tap)
    app.router.add_get("/pipes/{name}/definition", _definition)
    app.router.add_post("/reload", _reload)
    app.router.add_get("/systems", _systems)
    app.router.add_get("/rates", _rates)
    app.router.add_get("/openapi.json", _openapi)
    from pipes.admin_failures import FailureRoutes  # its handlers build on pipes.redrive and pipes.replay

    FailureRoutes(daemon).add_to(app)

    app.add_subapp("/ui", console_app(daemon, guard, console or ConsoleSettings()))
    return app


class AdminServer(AppServer):
    """Serves ``make_app`` on HOST:PORT; port 0 picks a free port (see ``port`` after start).

    With ``ssl_context`` it serves HTTPS; ``allowed_hosts`` are names the Host
    header may give besides loopback and ``host`` (see ``pipes.admin_guard``).
    """

    def __init__(
        self,
        daemon: Daemon,
        host: str,
        port: int,
        token: str | None = None,
        *,
        ssl_context: ssl.SSLContext | None = None,
        allowed_hosts: Iterable[str] = (),
        console: ConsoleSettings | None = None,
    ) -> None:
        guard = AdminGuard(bind_host=host, token=token or None, allowed_hosts=tuple(allowed_hosts))
        settings = console or ConsoleSettings()
        settings = settings.over_tls(ssl_context is not None)
        super().__init__(make_app(daemon, guard=guard, console=settings), host, port, ssl_context)
