"""Commands packed and replies read in bulk, for the hot paths of the Redis connectors.

redis-py's asyncio client packs every command in Python and reads every reply
of a pipeline under its own timeout; for a batch of hundreds of XADDs that is
most of a pipe's CPU. Here a batch is packed by hiredis (C), sent on one of
the client's own pooled connections in one write, and its replies are read
under a single timeout, raw (bytes, as hiredis parses them). Connection set-up
(AUTH, SELECT, TLS, client name) stays redis-py's, through its pool.

Error replies come back in place, as ``ResponseError`` values, so that each
command's outcome is its own; anything that breaks the connection raises, and
the connection is dropped (never returned to the pool half-read).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable, Sequence
from typing import Any

import hiredis
import redis.asyncio as redis
from redis.exceptions import ResponseError

__all__ = ["execute_packed", "pack"]

type Argument = bytes | str | int | float


def pack(commands: Iterable[Sequence[Argument]]) -> bytes:
    """The RESP bytes of ``commands``, packed in C."""
    pack_command: Any = hiredis.pack_command  # typed for one argument; it takes any number
    return b"".join([pack_command(tuple(command)) for command in commands])


async def execute_packed(client: redis.Redis, packed: bytes, count: int) -> list[Any]:
    """Send ``count`` commands already packed in ``packed``; their replies, in order (errors as values)."""
    pool: Any = client.connection_pool
    connection: Any = await pool.get_connection()
    timeout = connection.socket_timeout
    try:
        await connection.send_packed_command(packed)
        replies: list[Any] = []
        append = replies.append
        async with asyncio.timeout(timeout):
            for _ in range(count):
                try:
                    append(await connection.read_response(disable_decoding=True, timeout=math.inf))
                except ResponseError as exc:
                    append(exc)
        return replies
    except BaseException:
        # A reply may be left unread on the wire: this connection must not be reused.
        await connection.disconnect(nowait=True)
        raise
    finally:
        await pool.release(connection)
