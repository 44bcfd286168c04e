"""``GET /pipes/{name}/tap``: a live tap on a pipe, as server-sent events.

The stream (``text/event-stream``) starts with an ``attached`` event, then
sends a ``tap`` event per line the tap copied (``pipes.tap``), a ``dropped``
event whenever lines were lost because this viewer did not keep up, a comment
every few seconds while nothing happens (so that a viewer gone away is
noticed), and an ``end`` event when the tap ends: its ``limit`` was reached,
the pipe was removed, or the daemon is stopping. Each event's ``data`` is one
JSON object.

Query parameters: ``stage`` (one or more of ``pipes.tap.STAGES``, comma
separated or repeated; default all), ``where`` (an event pattern, as JSON,
over the tap line), ``limit`` (lines, then the tap ends), ``rate`` (lines per
second at most, default ``DEFAULT_RATE``; ``0`` for no limit).

The token and the other checks of ``pipes.admin_guard`` apply as to every
GET: a tap shows what events hold.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from pipes.patterns import EventFilter
from pipes.tap import BUFFER, DEFAULT_RATE, STAGES, Tap, TooManyTaps

if TYPE_CHECKING:
    from multidict import MultiMapping

    from pipes.daemon import PipeHandle

__all__ = ["HEARTBEAT_S", "serve_tap", "tap_options"]

#: Longest silence on the stream: a comment is sent then (proxies and viewers see it is alive).
HEARTBEAT_S = 5.0
#: How often a quiet tap checks whether its viewer went away (and frees its place).
GONE_CHECK_S = 0.5


class TapRequestError(ValueError):
    """A query parameter is wrong; the message says which and why."""


def tap_options(query: MultiMapping[str]) -> dict[str, Any]:
    """The ``TapHub.attach`` arguments of a query; ``TapRequestError`` naming the bad parameter."""
    stages: list[str] = []
    for value in query.getall("stage", []):
        stages.extend(part.strip() for part in value.split(",") if part.strip())
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise TapRequestError(f"stage {unknown[0]!r}: use one or more of {', '.join(STAGES)}")
    where: EventFilter | None = None
    if "where" in query:
        try:
            where = EventFilter.compile([query["where"]])
        except ValueError as exc:
            raise TapRequestError(f"where: {' '.join(str(exc).split())}") from None
    limit = _number(query, "limit", int)
    if limit is not None and limit < 1:
        raise TapRequestError("limit: give at least 1")
    rate = _number(query, "rate", float)
    if rate is not None and rate < 0:
        raise TapRequestError("rate: give lines per second, or 0 for no limit")
    return {
        "stages": stages or None,
        "where": where,
        "limit": limit,
        "rate": DEFAULT_RATE if rate is None else (rate or None),
    }


def _number[N: (int, float)](query: Mapping[str, str], name: str, kind: type[N]) -> N | None:
    text = query.get(name)
    if text is None or text == "":
        return None
    try:
        return kind(text)
    except ValueError:
        raise TapRequestError(
            f"{name}: {text!r} is not a{'n integer' if kind is int else ' number'}"
        ) from None


def _event(kind: str, data: Any) -> bytes:
    body = data if isinstance(data, bytes) else orjson.dumps(data)
    return b"event: " + kind.encode() + b"\ndata: " + body + b"\n\n"


async def serve_tap(request: web.Request, handle: PipeHandle) -> web.StreamResponse:
    """Attach a tap to the pipe of ``handle`` and stream it until it ends or the viewer goes."""
    try:
        options = tap_options(request.query)
        tap = handle.taps.attach(**options)
    except TooManyTaps as exc:
        return _json_error(str(exc), 429)
    except ValueError as exc:
        return _json_error(str(exc), 400)
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",  # a proxy in front must not hold the stream back
        }
    )
    try:
        await response.prepare(request)
        attached = {
            "pipe": handle.name,
            "state": handle.state,
            "stages": sorted(tap.stages, key=STAGES.index),
            "where": request.query.get("where"),
            "limit": tap.limit,
            "rate": tap.rate,
            "buffer": BUFFER,
        }
        await response.write(_event("attached", attached))
        await _pump(request, response, tap)
    except ConnectionError:
        pass  # the viewer went away: nothing to tell anyone
    finally:
        handle.taps.detach(tap, "viewer gone")
    return response


async def _pump(request: web.Request, response: web.StreamResponse, tap: Tap) -> None:
    reported = 0
    quiet_s = 0.0
    while True:
        lines = await tap.lines(GONE_CHECK_S)
        chunk = b"".join(_event("tap", line) for line in lines)
        if tap.dropped != reported:
            reported = tap.dropped
            chunk += _event("dropped", {"dropped": tap.dropped, "over_rate": tap.over_rate})
        if tap.ended and not lines:
            await response.write(chunk + _event("end", {"reason": tap.reason, **tap.counts()}))
            return
        if chunk:
            quiet_s = 0.0
            await response.write(chunk)
            continue
        # Nothing to send: find a viewer gone away without waiting for a write to fail.
        transport = request.transport
        if transport is None or transport.is_closing():
            return
        quiet_s += GONE_CHECK_S
        if quiet_s >= HEARTBEAT_S:
            quiet_s = 0.0
            await response.write(b": still here\n\n")


def _json_error(message: str, status: int) -> web.Response:
    return web.Response(body=orjson.dumps({"error": message}), status=status, content_type="application/json")
