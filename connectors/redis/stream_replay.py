"""Replay of a ``redis_stream`` source: the group's last-delivered id moved back (or forward).

Stream ids are times (milliseconds, then a sequence number), so a time needs
no lookup table: the new last-delivered id is the last entry before it, found
with one XREVRANGE, and ``XGROUP SETID`` sets it; the group then delivers
every entry after it again. Positions are entry ids; ``0-0`` is before the
first entry.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from redis.exceptions import ResponseError

from connectors.redis.client import close_client, open_client, redis_errors, text
from pipes.connector import SourceContext
from pipes.dead_letters import position_key
from pipes.replay import CannotReplay, PartitionMove, ReplayPoint, is_after

if TYPE_CHECKING:
    import redis.asyncio as redis

    from connectors.redis.stream_source import RedisStreamSourceOptions

__all__ = ["commit", "plan"]

BEFORE_FIRST = "0-0"
_MAX_SEQ = 18446744073709551615


def _first_id(point: ReplayPoint, stream: str) -> str | None:
    """The first entry id to deliver again for ``point`` (None: not given for this stream)."""
    if point.kind == "beginning":
        return BEFORE_FIRST
    if point.kind == "time":
        return f"{max(point.time_ms, 0)}-0"
    given = point.position_for(stream)
    if given is None:
        return None
    try:
        position_key(given)
    except ValueError:
        raise CannotReplay(
            f"{point.text!r}: {given!r} is not a stream id (MS-SEQ, e.g. 1700000000000-0)"
        ) from None
    return given if "-" in given else f"{given}-0"


async def _last_before(client: redis.Redis, stream: str, first: str) -> str:
    """The id of the last entry before ``first`` (``0-0`` when there is none)."""
    ms, seq = position_key(first)
    if (ms, seq) == (0, 0):
        return BEFORE_FIRST
    bound = f"{ms}-{seq - 1}" if seq > 0 else f"{ms - 1}-{_MAX_SEQ}"
    found: Any = await client.xrevrange(stream, bound, "-", count=1)
    return text(found[0][0]) if found else BEFORE_FIRST


async def _last_delivered(client: redis.Redis, stream: str, group: str) -> str | None:
    try:
        groups: Any = await client.xinfo_groups(stream)
    except ResponseError as exc:
        if "no such key" in str(exc).lower():
            return None
        raise
    for info in groups:
        if text(info["name"]) == group:
            return text(info["last-delivered-id"])
    return None


async def plan(
    options: RedisStreamSourceOptions, context: SourceContext, start: ReplayPoint, until: ReplayPoint | None
) -> list[PartitionMove]:
    stream = options.stream
    for point in (start, until):
        if point is not None:
            point.check_partitions([stream])
    first = _first_id(start, stream)
    if first is None:
        return []
    client = open_client(options, name=f"pipes:{context.pipe}:replay")
    try:
        async with redis_errors(f"replay on stream {stream!r}"):
            old = await _last_delivered(client, stream, options.group)
            new = await _last_before(client, stream, first)
            move = PartitionMove(stream, old, new)
            move.forward = is_after(new, old or BEFORE_FIRST)
            if until is not None:
                stop = _first_id(until, stream)
                if stop is not None:
                    move.until = await _last_before(client, stream, stop)
    finally:
        await close_client(client)
    return [move]


async def commit(
    options: RedisStreamSourceOptions, context: SourceContext, moves: Sequence[PartitionMove]
) -> None:
    client = open_client(options, name=f"pipes:{context.pipe}:replay")
    try:
        for move in moves:
            new = str(move.new) if move.new is not None else BEFORE_FIRST
            async with redis_errors(f"XGROUP SETID on stream {move.partition!r}"):
                if move.old is None:
                    await client.xgroup_create(move.partition, options.group, id=new, mkstream=True)
                else:
                    await client.xgroup_setid(move.partition, options.group, new)
    finally:
        await close_client(client)
