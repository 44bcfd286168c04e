"""``pipes replay``: move a pipe back (or, forced, forward) to a time or a position.

Each source that can move says how, behind two optional methods (the
``Replayer`` protocol), so that this module never asks what type a source
is:

- ``replay_plan(context, start, until)``: per partition, where the pipe
  stands (``old``), where it would go (``new``) and, with ``--to``, the last
  position to deliver (``until``). It is called on a source built for the
  purpose and never started: it opens its own short-lived clients (never
  joining a consumer group) and closes them before it returns. Sources that
  keep no position of their own find the pipe's checkpoint in
  ``context.checkpoint``.
- ``replay_commit(context, moves)`` writes the new positions where the source
  keeps them (Kafka group offsets, the Redis stream group's last-delivered
  id); only sources with ``tracks_position`` have it. For the others this
  module saves the new positions in the checkpoint store.

Positions are the pipe's checkpoint positions, as ``GET /pipes/NAME`` shows
them: the last settled position of each partition (a Kafka offset, a stream
entry id, the byte offset after a file's line, a generator index), None when
nothing is settled. A move that would go forward, past events that were never
settled, is refused unless forced: those events would be skipped.

The pipe must not run meanwhile: the daemon stops it (drained and committed)
around the move (``Daemon.with_pipe_stopped``); without a daemon, stop it
first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import structlog

from pipes.checkpoints import CheckpointStore
from pipes.clock import Clock, SystemClock
from pipes.config import PipeDefinition
from pipes.connector import Source, SourceContext
from pipes.dead_letters import position_key
from pipes.events import Position
from pipes.times import looks_like_time, parse_time

__all__ = [
    "CannotReplay",
    "PartitionMove",
    "ReplayPoint",
    "ReplayRefused",
    "Replayer",
    "parse_point",
    "reached",
    "replay",
]

_BEGINNING = frozenset({"beginning", "earliest", "start"})


class CannotReplay(ValueError):
    """The source cannot move as asked (no replay at all, or not to a time). One line."""


class ReplayRefused(Exception):
    """The move would skip unsettled events and was not forced; ``moves`` says where."""

    def __init__(self, message: str, moves: Sequence[PartitionMove]) -> None:
        super().__init__(message)
        self.moves = list(moves)


@dataclass(frozen=True)
class ReplayPoint:
    """Where to replay from (or up to), as the operator wrote it.

    ``kind`` is ``beginning``, ``time`` (``time_s``, epoch seconds) or
    ``positions``: per partition name the position as text, where the key
    ``""`` stands for every partition (a bare position, ``--from 500``).
    """

    text: str
    kind: Literal["beginning", "time", "positions"]
    time_s: float | None = None
    positions: Mapping[str, str] = field(default_factory=dict)

    @property
    def time_ms(self) -> int:
        assert self.time_s is not None
        return round(self.time_s * 1000)

    def position_for(self, partition: str) -> str | None:
        """The position written for ``partition`` (or for every partition); None when not given."""
        return self.positions.get(partition, self.positions.get(""))

    def number_for(self, partition: str, what: str) -> int | None:
        """The position written for ``partition`` as a whole number (``what``: "an offset"); None if not given.

        ``CannotReplay`` in one line when it is not a whole number of 0 or more.
        """
        text = self.position_for(partition)
        if text is None:
            return None
        if not text.isdigit():
            raise CannotReplay(f"{self.text!r}: {text!r} is not {what} (a whole number, 0 or more)")
        return int(text)

    def check_partitions(self, known: Sequence[str]) -> None:
        """``CannotReplay`` for a partition name that the source does not have."""
        unknown = [p for p in self.positions if p and p not in known]
        if unknown:
            raise CannotReplay(
                f"{self.text!r}: no partition named {', '.join(unknown)} (partitions: {', '.join(known) or 'none'})"
            )

    def no_times(self, source: str, instead: str) -> None:
        """``CannotReplay`` when a time was given to a source whose events carry none."""
        if self.kind == "time":
            raise CannotReplay(
                f"{self.text!r}: the {source} source cannot replay from a time; give {instead}"
            )


def parse_point(text: str, now_s: float) -> ReplayPoint:
    """``beginning``, a time (``pipes.times``), a position, or ``PARTITION=POSITION,...``; ``ValueError`` if none."""
    value = text.strip()
    if not value:
        raise ValueError("give a time (2026-11-26T08:00:00Z, now-1h), beginning, or positions (P=N,...)")
    if value.lower() in _BEGINNING:
        return ReplayPoint(text, "beginning")
    if looks_like_time(value):
        return ReplayPoint(text, "time", time_s=parse_time(value, now_s))
    positions: dict[str, str] = {}
    for part in value.split(","):
        name, sep, position = part.strip().rpartition("=")
        if sep and not name.strip():
            raise ValueError(f"{text!r}: {part.strip()!r} names no partition; write PARTITION=POSITION")
        if not position.strip():
            raise ValueError(f"{text!r}: {part.strip()!r} gives no position; write PARTITION=POSITION")
        positions[name.strip()] = position.strip()
    if "" in positions and len(positions) > 1:
        raise ValueError(f"{text!r}: give one position for every partition, or PARTITION=POSITION for each")
    return ReplayPoint(text, "positions", positions=positions)


@dataclass
class PartitionMove:
    """One partition of a replay: from ``old`` to ``new`` (checkpoint positions; None: before the first).

    ``events``: how many events will be delivered again (negative: skipped),
    where the source can tell. ``until``: with ``--to``, the last position to
    deliver; the daemon stops the pipe once every partition settled it.
    """

    partition: str
    old: Position | None
    new: Position | None
    events: int | None = None
    until: Position | None = None
    #: Set by the source: whether ``new`` lies after ``old`` (the move would skip unsettled events).
    forward: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "partition": self.partition,
            "old": self.old,
            "new": self.new,
            "events": self.events,
            "until": self.until,
            "forward": self.forward,
        }


def is_after(new: Position | None, old: Position | None) -> bool:
    """Whether position ``new`` lies after ``old`` (None is before every position)."""
    if new is None:
        return False
    if old is None:
        return True
    return position_key(new) > position_key(old)


def reached(settled: Position | None, until: Position) -> bool:
    """Whether a partition settled through ``until``."""
    return settled is not None and position_key(settled) >= position_key(until)


@runtime_checkable
class Replayer(Protocol):
    """What a source offers to be replayed (see the module docstring)."""

    async def replay_plan(
        self, context: SourceContext, start: ReplayPoint, until: ReplayPoint | None
    ) -> list[PartitionMove]: ...


async def replay(
    definition: PipeDefinition,
    store: CheckpointStore,
    start: ReplayPoint,
    until: ReplayPoint | None = None,
    *,
    force: bool = False,
    clock: Clock | None = None,
    state_dir: str = "state",
) -> list[PartitionMove]:
    """Move the (stopped) pipe's positions; the moves made. ``ReplayRefused``, ``CannotReplay`` else.

    Nothing is written when the move is refused.
    """
    source: Source = definition.source.build_source()
    if not isinstance(source, Replayer):
        raise CannotReplay(
            f"the {definition.source.type} source of pipe {definition.name!r} cannot replay "
            "(kafka, redis_stream, file and generator sources can)"
        )
    checkpoint = {} if source.tracks_position else await store.load(definition.name)
    log = structlog.get_logger().bind(pipe=definition.name, job="replay")
    context = SourceContext(
        pipe=definition.name,
        clock=clock or SystemClock(),
        log=log,
        checkpoint=checkpoint,
        state_dir=state_dir,
    )
    moves = await source.replay_plan(context, start, until)
    forward = [m for m in moves if m.forward]
    if forward and not force:
        skipped = sum(-m.events for m in forward if m.events is not None and m.events < 0)
        counted = f" ({skipped:,} events)" if skipped else ""
        raise ReplayRefused(
            f"replay {start.text!r} moves {', '.join(m.partition for m in forward)} forward, past events "
            f"that were never settled{counted}: they would be skipped; give --force to do it anyway",
            moves,
        )
    if source.tracks_position:
        commit = getattr(source, "replay_commit", None)
        if commit is None:
            raise CannotReplay(f"the {definition.source.type} source plans a replay but cannot commit one")
        await commit(context, moves)
    else:
        positions = dict(checkpoint)
        for move in moves:
            if move.new is None:
                positions.pop(move.partition, None)
            else:
                positions[move.partition] = move.new
        await store.save(definition.name, positions)
    log.info(
        "replay_done",
        start=start.text,
        moves=[m.as_dict() for m in moves],
    )
    return moves
