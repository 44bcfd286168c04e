"""The ``generator`` source: the standard "shopping cart" workload, made up on the fly.

Every event is a pure function of ``(index, seed)`` (see ``cart_event``), so a
re-run, a resumed run and a benchmark preload all see byte-identical events, and
resuming from a checkpoint needs no replay of earlier indexes.
"""

from __future__ import annotations

import functools
import hashlib
import struct
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import Field

from pipes.clock import Clock, SystemClock
from pipes.connector import Connector, ConnectorOptions, Source, SourceContext
from pipes.errors import FatalError
from pipes.events import Event, Position
from pipes.replay import PartitionMove, ReplayPoint, is_after

__all__ = ["GeneratorOptions", "GeneratorSource", "cart_event", "connector"]

PARTITION = "generator"

_BASE_TIME = datetime(2024, 5, 1, tzinfo=UTC)
_TIERS = ("gold", "silver", "bronze")
_CHANNELS = ("web", "app", "pos")
_METHODS = ("standard", "express", "pickup")
_COUNTRIES = ("DE", "FR", "NL", "ES", "IT", "AT", "BE", "PL", "SE", "IE")
# Words: kind, item count, customer, tier, channel, method, country, spare, 5 x (qty, price, sku).
_WORDS = struct.Struct("<23I")
_DIGEST_BYTES = 16 + _WORDS.size
_HALF = 1 << 31
_VARIANT = {f"{n:x}": "89ab"[n & 3] for n in range(16)}
_EIGHT_TENTHS = int(0.8 * (1 << 32))


@functools.lru_cache(maxsize=64)
def _event_date(day: int) -> str:
    return (_BASE_TIME + timedelta(days=day)).strftime("%Y-%m-%dT")


def _event_time(index: int) -> str:
    # Arithmetic instead of datetime formatting: 4x cheaper, and this is per event.
    day, ms = divmod(50 * index, 86_400_000)
    seconds, ms = divmod(ms, 1000)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{_event_date(day)}{hours:02d}:{minutes:02d}:{seconds:02d}.{ms:03d}Z"


def _uuid4(raw: bytes) -> str:
    # Version nibble 4 and variant bits 10xx forced, so the id is a valid uuid4.
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}"


def cart_event(index: int, seed: int = 0) -> dict[str, Any]:
    """The standard workload event number ``index`` (``/work/shared/reference/workload.md``).

    Deterministic per ``(index, seed)``; costs the same for any index. About 39 %
    of events are ``OrderPlaced`` with ``detail.total > 100`` (measured over
    indexes 0..99,999 with seed 0: 38.8 %; pinned by ``tests/unit/test_generator.py``).
    Compact JSON size is 400-600 bytes, about 500 on average.
    """
    # One hash call yields every random draw: 16 bytes for the id, then 32-bit
    # words. Seeding a ``random.Random`` per event costs 4x more (MT state init).
    digest = hashlib.shake_128(f"{seed}:{index}".encode()).digest(_DIGEST_BYTES)
    words = _WORDS.unpack_from(digest, 16)
    kind = words[0]
    detail_type = (
        "OrderPlaced" if kind < _HALF else "CartUpdated" if kind < _EIGHT_TENTHS else "PaymentAuthorized"
    )
    items = []
    total_cents = 0
    w = 8
    for _ in range(1 + (words[1] * 5 >> 32)):
        qty = 1 + (words[w] * 3 >> 32)
        cents = 400 + (words[w + 1] * 6601 >> 32)  # 4.00 .. 70.00
        total_cents += qty * cents
        items.append({"sku": f"SKU-{words[w + 2] * 100000 >> 32:05d}", "qty": qty, "price": cents / 100})
        w += 3
    return {
        "version": "0",
        "id": _uuid4(digest[:16]),
        "detail-type": detail_type,
        "source": "shop.cart",
        "account": "123456789012",
        "time": _event_time(index),
        "region": "eu-west-1",
        "detail": {
            "order_id": f"ord-{index:09d}",
            "customer": {
                "id": f"cust-{words[2] * 10_000_000 >> 32:07d}",
                "tier": _TIERS[words[3] * 3 >> 32],
            },
            "channel": _CHANNELS[words[4] * 3 >> 32],
            "shipping": {
                "method": _METHODS[words[5] * 3 >> 32],
                "country": _COUNTRIES[words[6] * len(_COUNTRIES) >> 32],
            },
            "items": items,
            # Integer cents, so the total is exactly sum(qty * price) to 2 decimals.
            "total": total_cents / 100,
            "currency": "EUR",
        },
    }


class GeneratorOptions(ConnectorOptions):
    count: int | None = Field(
        default=1000,
        ge=0,
        description="How many events to make (indexes 0 to count-1); null for an endless stream.",
    )
    rate: float | None = Field(
        default=None,
        gt=0,
        description="Events per second on average; null makes them as fast as the pipe takes them.",
    )
    seed: int = Field(default=0, description="Varies the events; the same seed always gives the same events.")


def _next_index(last: Position | None) -> int:
    return 0 if last is None else int(last) + 1


class GeneratorSource(Source):
    """Emits ``cart_event(i, seed)`` as ``{"index": i, "body": event}``, one partition.

    The position is the index, so the checkpoint says where to continue: a re-run
    after a finished run emits nothing and duplicates nothing.
    """

    options_model = GeneratorOptions

    def __init__(self, options: GeneratorOptions) -> None:
        super().__init__(options)
        self.options: GeneratorOptions = options
        self._next = 0
        self._clock: Clock = SystemClock()
        self._once = False
        # Pacing anchor: the rate is an average since this (time, index) pair.
        self._paced_from = 0.0
        self._paced_index = 0

    async def start(self, context: SourceContext) -> None:
        if context.once and self.options.count is None:
            raise FatalError("generator: an endless generator (count: null) never finishes --once")
        last = context.checkpoint.get(PARTITION)
        self._next = 0 if last is None else int(last) + 1
        self._clock = context.clock
        self._once = context.once
        self._paced_from = self._clock.monotonic()
        self._paced_index = self._next

    def _remaining(self) -> int | None:
        count = self.options.count
        return None if count is None else max(0, count - self._next)

    def _due(self) -> float:
        """Events the rate allows by now (fractional); ``inf`` without a rate."""
        rate = self.options.rate
        if rate is None:
            return float("inf")
        elapsed = self._clock.monotonic() - self._paced_from
        # The first event is due at once, then one every 1/rate seconds.
        return elapsed * rate + 1 - (self._next - self._paced_index)

    async def read(self, max_events: int, timeout_s: float) -> list[Event]:
        remaining = self._remaining()
        if remaining == 0:
            if not self._once:
                await self._clock.sleep(timeout_s)
            return []
        due = self._due()
        if due < 1:
            rate = self.options.rate
            assert rate is not None  # only a rate limits what is due
            await self._clock.sleep(min(timeout_s, (1 - due) / rate))
            due = self._due()
            if due < 1:
                return []
        n = max_events if due == float("inf") else min(max_events, int(due))
        if remaining is not None:
            n = min(n, remaining)
        seed = self.options.seed
        start = self._next
        events = [
            Event(
                record={"index": i, "body": cart_event(i, seed)},
                partition=PARTITION,
                position=i,
            )
            for i in range(start, start + n)
        ]
        self._next = start + n
        return events

    def caught_up(self) -> bool:
        return self._remaining() == 0

    async def replay_plan(
        self, context: SourceContext, start: ReplayPoint, until: ReplayPoint | None
    ) -> list[PartitionMove]:
        """From index N (``--from N``: emit N again; ``beginning``: 0). Events have made-up times: no times."""
        for point in (start, until):
            if point is not None:
                point.no_times("generator", "beginning or an index (--from 500)")
                point.check_partitions([PARTITION])
        old = context.checkpoint.get(PARTITION)
        first = 0 if start.kind == "beginning" else start.number_for(PARTITION, "an index")
        if first is None:
            return []
        new = first - 1 if first > 0 else None
        move = PartitionMove(PARTITION, old, new, events=_next_index(old) - first)
        move.forward = is_after(new, old)
        if until is not None:
            stop = 0 if until.kind == "beginning" else until.number_for(PARTITION, "an index")
            if stop is not None:
                move.until = stop - 1
        return [move]

    def lag(self) -> Mapping[str, int] | None:
        remaining = self._remaining()
        return None if remaining is None else {PARTITION: remaining}


connector = Connector(
    name="generator",
    description="Makes the standard shopping-cart workload events, deterministically from a seed.",
    source=GeneratorSource,
)
