"""The admin API of ``pipes run --workers N``: the workers' APIs, as one.

The same paths as a single process's API (``pipes.admin``), answered by asking
every worker (on loopback, with the supervisor's token) and merging
(``pipes.workers.aggregate``): ``/pipes`` and ``/metrics`` sum the workers,
a stop or start is sent to each worker that has the pipe, a reload to all.
Other paths are passed on: a GET to the first worker that knows the pipe (a
dead-letter listing is the same from any), a POST to every worker, and a
stream of server-sent events (a tap) is merged from all. The same guard as a
single process's API decides who may call it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from pipes.admin_guard import AdminGuard
from pipes.admin_openapi import openapi_document
from pipes.admin_site import AppServer
from pipes.metrics import CONTENT_TYPE
from pipes.workers.aggregate import merge_detail, merge_metrics, merge_pipes
from pipes.workers.supervisor import Supervisor, Worker

__all__ = ["WorkersAdminServer", "make_workers_app"]

_SUPERVISOR: web.AppKey[Supervisor] = web.AppKey("supervisor", Supervisor)
_SESSION: web.AppKey[aiohttp.ClientSession] = web.AppKey("session", aiohttp.ClientSession)
_TIMEOUT = aiohttp.ClientTimeout(total=10)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


async def _ask(
    request: web.Request, worker: Worker, method: str, path: str, body: bytes | None = None
) -> tuple[int, Any]:
    """One worker's answer: (status, decoded JSON or text); (0, None) when it does not answer."""
    session = request.app[_SESSION]
    headers = {"Authorization": f"Bearer {request.app[_SUPERVISOR].token}"}
    if method != "GET":
        headers["Content-Type"] = "application/json"
    try:
        async with session.request(
            method, worker.url + path, headers=headers, data=body, timeout=_TIMEOUT
        ) as r:
            raw = await r.read()
            try:
                return r.status, orjson.loads(raw) if raw else None
            except orjson.JSONDecodeError:
                return r.status, raw.decode("utf-8", "replace")
    except (aiohttp.ClientError, TimeoutError, OSError):
        return 0, None


async def _all(
    request: web.Request, method: str, path: str, body: bytes | None = None
) -> list[tuple[Worker, int, Any]]:
    workers = request.app[_SUPERVISOR].workers
    answers = await asyncio.gather(*(_ask(request, w, method, path, body) for w in workers))
    return [(w, status, data) for w, (status, data) in zip(workers, answers, strict=True)]


def _answering(answers: Iterable[tuple[Worker, int, Any]]) -> dict[str, Any]:
    return {w.name: data for w, status, data in answers if status == 200 and isinstance(data, dict)}


async def _healthz(request: web.Request) -> web.Response:
    return _json({"status": "ok"})


async def _readyz(request: web.Request) -> web.Response:
    supervisor = request.app[_SUPERVISOR]
    answers = await _all(request, "GET", "/readyz")
    waiting = {w.name: (data if status else "not answering") for w, status, data in answers if status != 200}
    if supervisor.stopping:
        return _json({"status": "stopping", "not_ready": waiting}, 503)
    if waiting:
        return _json({"status": "not ready", "not_ready": waiting}, 503)
    return _json({"status": "ready", "workers": len(answers)})


async def _pipes(request: web.Request) -> web.Response:
    answers = _answering(await _all(request, "GET", "/pipes"))
    return _json({"pipes": merge_pipes(answers), "workers": sorted(answers)})


async def _pipe(request: web.Request) -> web.Response:
    path = f"/pipes/{request.match_info['name']}"
    answers = _answering(await _all(request, "GET", path))
    if not answers:
        return _json({"error": f"no pipe named {request.match_info['name']!r}"}, 404)
    return _json(merge_detail(answers))


async def _metrics(request: web.Request) -> web.Response:
    answers = await _all(request, "GET", "/metrics")
    texts = {w.name: data for w, status, data in answers if status == 200 and isinstance(data, str)}
    response = web.Response(body=merge_metrics(texts))
    response.headers["Content-Type"] = CONTENT_TYPE
    return response


async def _to_every_worker(request: web.Request) -> web.Response:
    """A POST (stop, start, reload, ...) sent to every worker; the answer of those that had it."""
    body = await request.read()
    answers = await _all(request, "POST", request.rel_url.path_qs, body or None)
    found = [(w, status, data) for w, status, data in answers if status not in (0, 404)]
    if not found:
        missing = next((data for _, status, data in answers if status == 404), None)
        return _json(missing or {"error": "no worker answered"}, 404 if missing else 503)
    worst = max(status for _, status, _ in found)
    merged: dict[str, Any] = {"workers": {w.name: data for w, _, data in found}}
    first = found[0][2]
    if isinstance(first, dict):
        merged = {**first, **merged}
    return _json(merged, worst)


async def _pass_get(request: web.Request) -> web.StreamResponse:
    """A GET the supervisor does not merge itself: a stream of events from every worker, else the first answer."""
    if "text/event-stream" in request.headers.get("Accept", "") or request.path.endswith("/tap"):
        return await _merge_streams(request)
    for _worker, status, data in await _all(request, "GET", request.rel_url.path_qs):
        if status == 200:
            return _json(data) if not isinstance(data, str) else web.Response(text=data)
    return _json({"error": f"no worker has {request.path}"}, 404)


async def _merge_streams(request: web.Request) -> web.StreamResponse:
    """Server-sent events from every worker, relayed as they come, until the client goes."""
    supervisor = request.app[_SUPERVISOR]
    session = request.app[_SESSION]
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)
    lock = asyncio.Lock()

    async def relay(worker: Worker) -> None:
        headers = {"Authorization": f"Bearer {supervisor.token}", "Accept": "text/event-stream"}
        try:
            async with session.get(
                worker.url + request.rel_url.path_qs, headers=headers, timeout=aiohttp.ClientTimeout()
            ) as upstream:
                if upstream.status != 200:
                    return
                event: list[bytes] = []
                async for line in upstream.content:
                    event.append(line)
                    if line in (b"\n", b"\r\n"):
                        async with lock:
                            await response.write(b"".join(event))
                        event = []
        except (aiohttp.ClientError, OSError, ConnectionResetError):
            return

    tasks = [asyncio.create_task(relay(w)) for w in supervisor.workers]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
    return response


async def _workers(request: web.Request) -> web.Response:
    """The worker processes: name, pid, restarts (what an operator checks after a crash)."""
    out = []
    for worker in request.app[_SUPERVISOR].workers:
        process = worker.process
        alive = process is not None and process.returncode is None
        out.append(
            {
                "name": worker.name,
                "pid": process.pid if process is not None else None,
                "alive": alive,
                "restarts": worker.restarts,
                "exit_codes": worker.history,
            }
        )
    return _json({"workers": out})


async def _no_console(request: web.Request) -> web.Response:
    return _json(
        {
            "error": "the console is not served with --workers yet (its map and composer need one "
            "daemon's view); run the daemon without --workers to use it"
        },
        501,
    )


async def _openapi(request: web.Request) -> web.Response:
    return _json(openapi_document())


def make_workers_app(supervisor: Supervisor, guard: AdminGuard) -> web.Application:
    app = web.Application(middlewares=[guard.middleware])
    app[_SUPERVISOR] = supervisor

    async def session_context(app: web.Application) -> Any:
        app[_SESSION] = aiohttp.ClientSession()
        yield
        await app[_SESSION].close()

    app.cleanup_ctx.append(session_context)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/pipes", _pipes)
    app.router.add_get("/pipes/{name}", _pipe)
    app.router.add_get("/openapi.json", _openapi)
    app.router.add_get("/workers", _workers)
    app.router.add_route("*", "/ui", _no_console)
    app.router.add_route("*", "/ui/{tail:.*}", _no_console)
    app.router.add_post("/{tail:.*}", _to_every_worker)
    app.router.add_get("/{tail:.*}", _pass_get)
    return app


class WorkersAdminServer(AppServer):
    """Serves ``make_workers_app`` on HOST:PORT (as ``pipes.admin.AdminServer`` serves one process)."""

    def __init__(
        self,
        supervisor: Supervisor,
        host: str,
        port: int,
        token: str | None = None,
        *,
        ssl_context: Any = None,
        allowed_hosts: Sequence[str] = (),
    ) -> None:
        guard = AdminGuard(bind_host=host, token=token or None, allowed_hosts=tuple(allowed_hosts))
        super().__init__(make_workers_app(supervisor, guard), host, port, ssl_context)
