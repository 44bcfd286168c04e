"""A source that goes no further than given positions: ``pipes replay --to``.

The daemon runs a replayed pipe with its source wrapped in ``BoundedSource``
until every partition settled its last position; then it stops the pipe. The
wrapper hands out no event past a partition's bound (and pauses the partition
at the source once it saw one), so the pipe delivers exactly up to ``--to``
and its checkpoint ends there: no event after it is delivered or committed by
the replayed run. Everything else is the wrapped source's own doing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping
from typing import Any

from pydantic import ConfigDict

from pipes.config import BoundConnector, PipeDefinition
from pipes.connector import ConnectorOptions, Source, SourceContext
from pipes.dead_letters import position_key
from pipes.events import Event, Position

__all__ = ["BoundedSource", "bounded"]


class BoundedOptions(ConnectorOptions):
    """The wrapped source's binding and the bounds (not a user's options: never validated from YAML)."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    inner: Any
    limits: dict[str, Any]


class BoundedSource(Source):
    """Delegates to the wrapped source; drops what lies past each partition's bound."""

    options: BoundedOptions

    def __init__(self, options: BoundedOptions) -> None:
        super().__init__(options)
        self.inner: Source = options.inner.build_source()
        self.limits = {p: position_key(limit) for p, limit in options.limits.items()}
        self.tracks_position = self.inner.tracks_position  # type: ignore[misc]
        self._held: set[str] = set()

    async def start(self, context: SourceContext) -> None:
        await self.inner.start(context)

    async def read(self, max_events: int, timeout_s: float) -> list[Event]:
        events = await self.inner.read(max_events, timeout_s)
        limits = self.limits
        kept: list[Event] = []
        past: set[str] = set()
        for event in events:
            limit = limits.get(event.partition)
            if limit is not None and position_key(event.position) > limit:
                past.add(event.partition)
            else:
                kept.append(event)
        fresh = past - self._held
        if fresh:
            self._held |= fresh
            self.inner.pause(fresh)  # nothing more is wanted from there in this run
        return kept

    async def commit(self, positions: Mapping[str, Position]) -> None:
        await self.inner.commit(positions)

    def caught_up(self) -> bool:
        return self.inner.caught_up()

    def lag(self) -> Mapping[str, int] | None:
        return self.inner.lag()

    def idle_s(self) -> float | None:
        return self.inner.idle_s()

    def dead_lettered(self, partition: str, position: Position) -> None:
        self.inner.dead_lettered(partition, position)

    def pause(self, partitions: Collection[str]) -> None:
        self.inner.pause(partitions)

    def resume(self, partitions: Collection[str]) -> None:
        self.inner.resume([p for p in partitions if p not in self._held])

    async def stop(self) -> None:
        await self.inner.stop()


def bounded(definition: PipeDefinition, limits: Mapping[str, Position]) -> PipeDefinition:
    """The same pipe, its source bounded by ``limits`` (per partition, the last position to hand out)."""
    inner = definition.source
    options = BoundedOptions(inner=inner, limits=dict(limits))
    source = BoundConnector(inner.type, "source", BoundedSource, options, inner.raw)
    return dataclasses.replace(definition, source=source)
