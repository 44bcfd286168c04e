"""The connector conformance suite: the contract of ``pipes.connector``, as checks.

Every built-in source and target passes these, and a third-party connector
can run the same checks in its own tests::

    from pipes.conformance import check_source, check_target

    async def test_my_target_conforms():
        await check_target(lambda: MyTarget(MyOptions(...)))

Each check raises ``AssertionError`` saying which promise was broken.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from pipes.connector import ConnectorContext, Source, SourceContext, Target
from pipes.errors import FatalError
from pipes.events import Event, Position

__all__ = ["check_source", "check_target", "check_target_isolates_bad_payloads"]


class _NoWireForm:
    """A payload no target can encode (JSON has no form for it)."""

    def __repr__(self) -> str:
        return "<no wire form>"


async def check_target_isolates_bad_payloads(make: Callable[[], Target]) -> None:
    """A payload that cannot be encoded fails alone, for good (``FatalError``); the rest is delivered."""
    target = make()
    await target.start(ConnectorContext(pipe="conformance"))
    try:
        payloads: list[Any] = [{"n": 1}, {"bad": _NoWireForm()}, {"n": 3}]
        events = [Event({"body": p}, "p0", i, payload=p) for i, p in enumerate(payloads)]
        outcomes = list(await target.write(events))
        assert len(outcomes) == 3, f"write returned {len(outcomes)} outcomes for 3 events"
        assert outcomes[0] is None and outcomes[2] is None, (
            f"one payload that cannot be encoded failed the others too: {outcomes}"
        )
        assert isinstance(outcomes[1], FatalError), (
            f"a payload that cannot be encoded must fail for good (FatalError), got {outcomes[1]!r}"
        )
    finally:
        await target.stop()


async def check_target(
    make: Callable[[], Target],
    payloads: Sequence[Any] = ({"n": 1}, {"n": 2}, "text", [1, 2], 3.5),
    delivered: Callable[[], Awaitable[list[bytes]]] | None = None,
    *,
    encodes: bool = True,
) -> None:
    """A target returns one outcome per event, in order; stop works after start and after nothing.

    ``delivered`` (optional) reads back what the target wrote, as bytes per
    event, to check that delivered payloads arrived whole and in order. A
    target that writes bytes (``encodes``, the default) must also fail a payload
    that cannot be encoded alone (``check_target_isolates_bad_payloads``).
    """
    # stop() without start() must be harmless (the runner calls it after a failed start).
    await make().stop()
    target = make()
    await target.start(ConnectorContext(pipe="conformance"))
    try:
        events = [
            Event(record={"body": p}, partition="p0", position=i, payload=p) for i, p in enumerate(payloads)
        ]
        outcomes = await target.write(events)
        assert len(outcomes) == len(events), (
            f"write returned {len(outcomes)} outcomes for {len(events)} events"
        )
        for i, outcome in enumerate(outcomes):
            assert outcome is None or isinstance(outcome, Exception), (
                f"outcome {i} is {outcome!r}: it must be None (delivered) or an exception"
            )
        assert all(o is None for o in outcomes), f"a healthy target failed events: {outcomes}"
        assert await target.write([]) is not None, "write([]) must return an empty sequence"
        if delivered is not None:
            from pipes.codec import encode_payload

            got = await delivered()
            assert got == [encode_payload(p) for p in payloads], f"target wrote {got!r}"
    finally:
        await target.stop()
    if encodes:
        await check_target_isolates_bad_payloads(make)


async def check_source(
    make: Callable[[], Source],
    produce: Callable[[int], Awaitable[None]],
    *,
    count: int = 25,
    timeout_s: float = 20.0,
) -> None:
    """A source returns every produced event once, in order per partition, and resumes after a commit.

    ``produce(n)`` appends ``n`` new events to what the source reads, each with
    a distinct body. It is called before the source starts (in ``--once``
    mode, where a source need only read up to the end it saw at start), and
    again before a second instance starts from the first one's commit.
    """
    committed: dict[str, Position] = {}
    await produce(count)  # before start: a --once source reads up to the end it sees at start
    first = make()
    await first.start(SourceContext(pipe="conformance", once=True))
    try:
        seen = await _read_all(first, count, timeout_s)
        bodies = [e.body for e in seen]
        assert len(bodies) == count, f"read {len(bodies)} events, produced {count}"
        assert len({repr(b) for b in bodies}) == count, "an event was returned twice"
        by_partition: dict[str, list[Event]] = {}
        for event in seen:
            assert isinstance(event.record, dict), "record must be a dict"
            by_partition.setdefault(event.partition, []).append(event)
        for partition, events in by_partition.items():
            positions = [e.position for e in events]
            assert len(set(positions)) == len(positions), f"{partition}: positions repeat"
            committed[partition] = positions[-1]
        await first.commit(committed)
        empty = await first.read(10, 0.2)
        assert empty == [], f"read returned {len(empty)} events after everything was read"
    finally:
        await first.stop()

    # A new instance resumes after the commit: nothing old comes back.
    again = make()
    checkpoint: Mapping[str, Position] = {} if again.tracks_position else committed
    await produce(3)
    await again.start(SourceContext(pipe="conformance", once=True, checkpoint=checkpoint))
    try:
        more = await _read_all(again, 3, timeout_s)
        assert len(more) == 3, (
            f"after a commit and a restart read {len(more)} events, expected the 3 new ones"
        )
        assert not {repr(e.body) for e in more} & {repr(b) for b in bodies}, (
            "old events came back after a commit"
        )
    finally:
        await again.stop()


async def _read_all(source: Source, count: int, timeout_s: float) -> list[Event]:
    seen: list[Event] = []
    deadline = time.monotonic() + timeout_s
    while len(seen) < count and time.monotonic() < deadline:
        asked = max(1, min(10, count - len(seen)))
        batch = await source.read(asked, 0.2)
        assert len(batch) <= asked, f"read({asked}) returned {len(batch)} events"
        seen.extend(batch)
        if not batch:
            await asyncio.sleep(0)
    return seen
