"""Small asyncio helpers the runner's loops share."""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["first"]


async def first(*aws: Any) -> None:
    """Wait until the first of ``aws`` completes; cancel the ones created here.

    Futures passed in are the caller's and are left running; coroutines are
    wrapped in tasks here and cancelled when another one finishes first.
    """
    owned = [asyncio.ensure_future(a) for a in aws if asyncio.iscoroutine(a)]
    shared = [a for a in aws if not asyncio.iscoroutine(a)]
    try:
        await asyncio.wait([*owned, *shared], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in owned:
            if not task.done():
                task.cancel()
            elif not task.cancelled():
                task.exception()  # retrieved, so nothing warns about it
