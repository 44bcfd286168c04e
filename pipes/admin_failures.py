"""The admin API for when things fail: a pipe's dead letters, redrive, replay.

- ``GET /pipes/{name}/dead-letters``: what is waiting in the dead letter
  (``pipes dlq ls``);
- ``GET /pipes/{name}/dead-letters/records``: the records, as JSON lines
  (``pipes dlq show``);
- ``POST /pipes/{name}/redrive``: send them through the pipe again, answering
  with JSON lines of progress as it goes and a summary at the end
  (``pipes dlq redrive``); one redrive per pipe at a time. A client that goes
  away stops it after the batch in hand (it resumes where it stopped);
- ``POST /pipes/{name}/replay``: stop the pipe (drained and committed), move
  its positions, start it again (``pipes replay``); with ``to``, the pipe is
  stopped again once it has settled that far.

They run in the daemon, with its environment, checkpoint store and clock, on
fresh connector instances: the running pipe is not touched, except by replay,
which must stop it. Who may call them is ``pipes.admin_guard``'s business, as
for every endpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
from contextlib import aclosing
from typing import Any

import orjson
import structlog
from aiohttp import web

from pipes.admin import _error, _json, _lookup  # the house's JSON answers
from pipes.bounded_source import bounded
from pipes.config import PipeDefinition
from pipes.daemon import RUNNING, Daemon, PipeHandle
from pipes.dead_letters import CannotReadBack, DeadLetterLog, Selection, reader_for
from pipes.errors import PipesError
from pipes.redrive import Redrive, RedriveProgress, open_log
from pipes.replay import CannotReplay, PartitionMove, ReplayRefused, parse_point, reached, replay

__all__ = ["NDJSON", "FailureRoutes"]

#: JSON lines, one object per line: what the streaming endpoints answer with.
NDJSON = "application/x-ndjson"
#: How often a replay with ``to`` looks whether the pipe got there.
WATCH_INTERVAL_S = 0.1


def _line(data: Any) -> bytes:
    return orjson.dumps(data) + b"\n"


class FailureRoutes:
    """The endpoints above, for one daemon; ``add_to(app)`` registers them."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        #: Pipes with a redrive under way (one at a time per pipe).
        self.redriving: set[str] = set()
        #: Replays waiting for their pipe to reach ``to``.
        self.watchers: set[asyncio.Task[None]] = set()
        self.log = structlog.get_logger().bind(component="admin")

    def add_to(self, app: web.Application) -> None:
        app.router.add_get("/pipes/{name}/dead-letters", self.dead_letters)
        app.router.add_get("/pipes/{name}/dead-letters/records", self.records)
        app.router.add_post("/pipes/{name}/redrive", self.redrive)
        app.router.add_post("/pipes/{name}/replay", self.replay)
        app.on_cleanup.append(self._cleanup)

    async def _cleanup(self, app: web.Application) -> None:
        for task in list(self.watchers):
            task.cancel()
        await asyncio.gather(*self.watchers, return_exceptions=True)

    def _selection(self, where: Any, since: Any, limit: Any) -> Selection:
        try:
            return Selection.parse(where, since, limit, now_s=self.daemon.clock.wall())
        except ValueError as exc:
            raise web.HTTPBadRequest(
                text=orjson.dumps({"error": str(exc)}).decode(), content_type="application/json"
            ) from None

    def _context(self, handle: PipeHandle) -> Any:
        from pipes.connector import ConnectorContext

        return ConnectorContext(pipe=handle.name, clock=self.daemon.clock, state_dir=self.daemon.state_dir)

    # ------------------------------------------------------------------ dead letters

    async def _open_log(self, handle: PipeHandle) -> DeadLetterLog | web.Response:
        """The pipe's dead letter opened for reading, or the answer that says why it cannot be."""
        try:
            return await open_log(handle.definition, self.daemon.store, self._context(handle))
        except CannotReadBack as exc:
            return _error(str(exc), 422)
        except PipesError as exc:
            return _error(f"dead letter: {exc}", 502)

    async def dead_letters(self, request: web.Request) -> web.Response:
        handle = _lookup(request)
        log = await self._open_log(handle)
        if isinstance(log, web.Response):
            return log
        try:
            summary = await log.summary()
        except PipesError as exc:
            return _error(f"dead letter: {exc}", 502)
        finally:
            await log.reader.stop()
        return _json({"name": handle.name, **summary.as_dict()})

    async def records(self, request: web.Request) -> web.StreamResponse:
        handle = _lookup(request)
        query = request.query
        selection = self._selection(query.get("where"), query.get("since"), query.get("limit"))
        redriven = query.get("redriven", "").lower() in ("1", "true", "yes")
        log = await self._open_log(handle)
        if isinstance(log, web.Response):
            return log
        response = web.StreamResponse(headers={"Content-Type": NDJSON})
        await response.prepare(request)
        try:
            async with aclosing(log.scan(selection, redriven=redriven)) as batches:
                async for batch in batches:
                    lines = []
                    for pending in batch:
                        letter = pending.letter
                        if letter.record is not None:
                            lines.append(_line(letter.record))
                        else:
                            unreadable = {"unreadable": letter.raw.decode("utf-8", "replace")}
                            lines.append(_line({**unreadable, "position": letter.position}))
                    await response.write(b"".join(lines))
        except PipesError as exc:
            await response.write(_line({"error": f"dead letter: {exc}"}))
        finally:
            await log.reader.stop()
        await response.write_eof()
        return response

    # ------------------------------------------------------------------ redrive

    async def redrive(self, request: web.Request) -> web.StreamResponse:
        handle = _lookup(request)
        body = await _body(request)
        selection = self._selection(body.get("where"), body.get("since"), body.get("limit"))
        if self.daemon.stopping:
            return _error("the daemon is shutting down", 409)
        try:
            reader_for(handle.definition)
        except CannotReadBack as exc:
            return _error(str(exc), 422)
        if handle.name in self.redriving:
            return _error(f"a redrive of pipe {handle.name!r} is under way", 409)
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        job = Redrive(
            handle.definition,
            store=self.daemon.store,
            selection=selection,
            dry_run=bool(body.get("dry_run")),
            clock=self.daemon.clock,
            drain_timeout_s=self.daemon.drain_timeout_s,
            on_progress=lambda progress: queue.put_nowait({"progress": progress.as_dict()}),
            on_dry_run=lambda report: queue.put_nowait({"dry_run": report}),
        )
        self.redriving.add(handle.name)
        response = web.StreamResponse(headers={"Content-Type": NDJSON})
        try:
            await response.prepare(request)
            await self._stream(job, queue, response)
        finally:
            self.redriving.discard(handle.name)
        return response

    async def _stream(
        self, job: Redrive, queue: asyncio.Queue[dict[str, Any]], response: web.StreamResponse
    ) -> None:
        """Run the job, writing what it reports as it goes; a client gone or a daemon stopping stops it."""
        task: asyncio.Task[RedriveProgress] = asyncio.create_task(job.run())
        writing = True
        try:
            while not task.done():
                getter = asyncio.ensure_future(queue.get())
                await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
                got: Any
                if not getter.done():
                    getter.cancel()  # the job ended; what it reported last is drained below
                    (got,) = await asyncio.gather(getter, return_exceptions=True)
                    if isinstance(got, BaseException):
                        continue
                else:
                    got = getter.result()
                writing = await _write(response, _line(got)) if writing else False
                if not writing or self.daemon.stopping:
                    job.request_stop()
            while not queue.empty():
                line = _line(queue.get_nowait())
                writing = await _write(response, line) if writing else False
            try:
                summary: dict[str, Any] = {"summary": task.result().as_dict()}
            except PipesError as exc:
                summary = {"error": str(exc)}
            if writing:
                await _write(response, _line(summary))
                with contextlib.suppress(ConnectionResetError):
                    await response.write_eof()
        except asyncio.CancelledError:
            # The server is closing: let the batch in hand finish and the ledger be saved.
            job.request_stop()
            await asyncio.wait({task})
            raise

    # ------------------------------------------------------------------ replay

    async def replay(self, request: web.Request) -> web.Response:
        handle = _lookup(request)
        body = await _body(request)
        daemon = self.daemon
        now_s = daemon.clock.wall()
        try:
            start = parse_point(str(body.get("from") or ""), now_s)
            until = parse_point(str(body["to"]), now_s) if body.get("to") else None
        except ValueError as exc:
            return _error(f"from/to: {exc}", 400)
        if daemon.stopping:
            return _error("the daemon is shutting down", 409)
        force = bool(body.get("force"))

        original = handle.definition

        async def move(pipe: PipeHandle) -> list[PartitionMove]:
            moves = await replay(
                pipe.definition,
                daemon.store,
                start,
                until,
                force=force,
                clock=daemon.clock,
                state_dir=daemon.state_dir,
            )
            limits = {m.partition: m.until for m in moves if m.until is not None}
            if limits and pipe.desired == RUNNING:
                # The replayed run goes no further than --to (then it is stopped, below).
                pipe.definition = bounded(pipe.definition, limits)
            return moves

        try:
            moves = await daemon.with_pipe_stopped(handle.name, move)
        except ReplayRefused as exc:
            return _json({"error": str(exc), "partitions": [m.as_dict() for m in exc.moves]}, 409)
        except CannotReplay as exc:
            return _error(str(exc), 422)
        except PipesError as exc:
            return _error(f"replay: {exc}", 502)
        watching = handle.definition is not original
        if watching:
            task = asyncio.create_task(self._stop_when_reached(handle, original, moves))
            self.watchers.add(task)
            task.add_done_callback(self.watchers.discard)
        await asyncio.sleep(0)  # the restarted runner takes its first step (STARTING)
        return _json(
            {
                "name": handle.name,
                "state": handle.state,
                "desired_state": handle.desired,
                "partitions": [m.as_dict() for m in moves],
                "stops_at_to": watching,
            }
        )

    async def _stop_when_reached(
        self, handle: PipeHandle, original: PipeDefinition, moves: list[PartitionMove]
    ) -> None:
        """Stop the replayed pipe once every partition settled through its ``until`` position."""
        daemon = self.daemon
        bounded_definition = handle.definition
        limits = {m.partition: (m.until, m.new) for m in moves if m.until is not None}
        try:
            while not daemon.stopping:
                if daemon.pipes.get(handle.name) is not handle or handle.desired != RUNNING:
                    return  # removed, or stopped by someone else meanwhile
                if handle.definition is not bounded_definition:
                    return  # reloaded with a changed definition: that one runs unbounded
                positions = handle.positions() or {}
                # A partition with nothing to deliver again has reached its end from the start.
                if all(reached(positions.get(p, new), until) for p, (until, new) in limits.items()):
                    self.log.info("replay_reached_to", pipe=handle.name, positions=positions)
                    await daemon.stop_pipe(handle.name)
                    return
                await daemon.clock.sleep(WATCH_INTERVAL_S)
        finally:
            if handle.definition is bounded_definition:
                handle.definition = original  # the next start runs the pipe as defined


async def _body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(
            text=orjson.dumps({"error": "the body must be a JSON object"}).decode(),
            content_type="application/json",
        )
    return body


async def _write(response: web.StreamResponse, data: bytes) -> bool:
    """Write to a streaming answer; False when the client went away."""
    try:
        await response.write(data)
    except (ConnectionResetError, ConnectionError):
        return False
    return True
