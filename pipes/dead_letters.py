"""Reading a pipe's dead letter back: what failed, where, and which of it is still waiting.

A dead-letter target that can be read back offers a ``DeadLetterReader``
beside its target (``Connector.dead_letter_reader``), registered through the
same entry point as the connector, so ``pipes dlq`` finds the reader for a
pipe's ``dead_letter: {type: ...}`` the way ``pipes run`` finds the target.
The reader is built from the target's own validated options: it reads where
the target writes.

Dead letters are a log: nothing here deletes them. What a redrive sent again
is remembered in the ``RedriveLedger`` (``pipes.redrive_ledger``), and
``DeadLetterLog`` joins the two: by default ``ls`` and ``show`` see the
records still waiting, as a redrive would.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from pipes.connector import Connector, ConnectorContext
from pipes.events import Position
from pipes.imports import ImportFailed, import_object

if TYPE_CHECKING:
    from pipes.config import PipeDefinition
    from pipes.patterns import EventFilter
    from pipes.redrive_ledger import RedriveLedger
    from pipes.registry import Registry

__all__ = [
    "CannotReadBack",
    "DeadLetter",
    "DeadLetterLog",
    "DeadLetterReader",
    "Pending",
    "Selection",
    "Summary",
    "dead_lettered_at",
    "position_key",
    "reader_for",
]


class CannotReadBack(LookupError):
    """The pipe has no dead letter, or its type offers no reader. ``str()`` is one line."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One record of a dead letter, where it sits (``partition``, ``position``) and what it says.

    ``record`` is the dead-letter record as written (docs/delivery.md); None
    when what was read is not a JSON object (someone else wrote there), then
    ``raw`` holds it.
    """

    partition: str
    position: Position
    record: dict[str, Any] | None
    raw: bytes = b""

    @classmethod
    def decode(cls, partition: str, position: Position, data: bytes) -> DeadLetter:
        """A dead letter from the bytes a target wrote: the record when they hold a JSON object."""
        try:
            record = orjson.loads(data)
        except orjson.JSONDecodeError:
            record = None
        if isinstance(record, dict):
            return cls(partition, position, record)
        return cls(partition, position, None, bytes(data))


class DeadLetterReader(ABC):
    """Reads a dead-letter target's records back, oldest first.

    Contract, in the order of calls (one task at a time):

    1. ``__init__(options)`` with the dead-letter *target's* validated options;
       no I/O. May raise ``FatalError`` when those options cannot be read back
       (a topic written as a template names no topic).
    2. ``await start(context)``: open clients; ``RetryableError`` when the
       system is unreachable, ``FatalError`` when it refuses.
    3. ``scan(after)``: an async iterator of batches, in log order within each
       partition, from the first record after ``after[partition]`` (from the
       start where a partition is not in ``after``) up to the end of the log
       *as it was when the scan began*: records written meanwhile (a redrive
       that fails again appends) are left for the next scan. Positions are
       ints or Redis stream ids (``ms-seq``), growing along the log, and stay
       the same for a record between scans.
    4. ``await stop()``: close clients; must not raise.

    Counts, oldest and newest come from a scan (``DeadLetterLog.summary``):
    the counts by stage and error type need one anyway.
    """

    def __init__(self, options: Any) -> None:
        self.options = options

    async def start(self, context: ConnectorContext) -> None:  # noqa: B027 - optional hook
        """Open clients."""

    @abstractmethod
    def scan(self, after: Mapping[str, Position]) -> AsyncGenerator[list[DeadLetter]]:
        """Batches of records after ``after``, up to the end seen when the scan began."""

    async def stop(self) -> None:  # noqa: B027 - optional hook
        """Close clients. Must not raise."""


def reader_for(definition: PipeDefinition, registry: Registry | None = None) -> DeadLetterReader:
    """A reader (not started) for the pipe's dead letter; ``CannotReadBack`` saying why not."""
    bound = definition.dead_letter
    if bound is None:
        raise CannotReadBack(f"pipe {definition.name!r} has no dead_letter")
    cls = _reader_class(bound.type, definition.file, registry)
    if cls is None:
        raise CannotReadBack(
            f"pipe {definition.name!r}: its dead letter (type {bound.type}) cannot be read back; "
            "pipes reads back the file, kafka, redis_stream and redis_list dead letters"
        )
    return cls(bound.options)


def _reader_class(type_name: str, file: str, registry: Registry | None) -> type[DeadLetterReader] | None:
    if ":" in type_name:
        pipe_dir = Path(file).resolve().parent if file and not file.startswith("<") else None
        try:
            found = import_object(type_name, pipe_dir)
        except ImportFailed:
            return None
        return found.dead_letter_reader if isinstance(found, Connector) else None
    from pipes.registry import Registry

    return (registry or Registry()).connector(type_name).dead_letter_reader


def position_key(position: Position) -> tuple[int, int]:
    """The order of a reader's positions: ints, or Redis stream ids ``ms-seq``."""
    if isinstance(position, int):
        return (position, 0)
    ms, _, seq = position.partition("-")
    return (int(ms), int(seq or 0))


def dead_lettered_at(record: Mapping[str, Any]) -> float | None:
    """When the record was dead-lettered (its ``last_attempt_at``), in epoch seconds; None if unreadable."""
    text = record.get("last_attempt_at")
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


@dataclass(frozen=True)
class Selection:
    """Which dead letters a command takes: ``--where`` (an event pattern over the record), ``--since``, ``--limit``."""

    where: EventFilter | None = None
    since_s: float | None = None
    limit: int | None = None

    @classmethod
    def parse(
        cls, where: Any = None, since: str | None = None, limit: Any = None, *, now_s: float
    ) -> Selection:
        """From what an operator gave (``where``: a pattern, or its JSON text); ``ValueError`` in one line."""
        from pipes.patterns import EventFilter
        from pipes.times import parse_time

        compiled = None
        if where is not None and where != "":
            try:
                compiled = EventFilter.compile([where])
            except ValueError as exc:
                raise ValueError(f"--where: invalid pattern: {' '.join(str(exc).split())}") from None
        since_s = None
        if since:
            try:
                since_s = parse_time(since, now_s)
            except ValueError as exc:
                raise ValueError(f"--since {exc}") from None
        count = None
        if limit is not None and limit != "":
            try:
                count = int(limit)
            except (TypeError, ValueError):
                count = -1
            if count < 1:
                raise ValueError(f"--limit {limit!r}: give a whole number of records, 1 or more")
        return cls(compiled, since_s, count)

    @property
    def everything(self) -> bool:
        return self.where is None and self.since_s is None

    def matches(self, letter: DeadLetter) -> bool:
        record = letter.record
        if record is None:
            return self.everything  # unreadable: shown when nothing is asked of the record
        if self.where is not None and not self.where.matches(record):
            return False
        if self.since_s is not None:
            at = dead_lettered_at(record)
            if at is None or at < self.since_s:
                return False
        return True


@dataclass(frozen=True, slots=True)
class Pending:
    """A dead letter a redrive may take, and the position of the record before it in the log."""

    letter: DeadLetter
    #: The position just before it in its partition (None: it is the first record of the log).
    previous: Position | None


@dataclass
class Summary:
    """What ``pipes dlq ls`` reports: the records still waiting, and the redriven ones apart."""

    type: str
    count: int = 0
    redriven: int = 0
    unreadable: int = 0
    oldest: str | None = None
    newest: str | None = None
    by_stage: Counter[str] = field(default_factory=Counter)
    by_error: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "count": self.count,
            "redriven": self.redriven,
            "unreadable": self.unreadable,
            "oldest": self.oldest,
            "newest": self.newest,
            "by_stage": dict(self.by_stage.most_common()),
            "by_error": dict(self.by_error.most_common()),
        }


class DeadLetterLog:
    """A pipe's dead letter as its reader sees it, less what the ledger says was redriven."""

    def __init__(self, reader: DeadLetterReader, ledger: RedriveLedger, type_name: str = "") -> None:
        self.reader = reader
        self.ledger = ledger
        self.type_name = type_name

    async def scan(self, selection: Selection, *, redriven: bool = False) -> AsyncGenerator[list[Pending]]:
        """Batches of the selected records, oldest first, up to ``selection.limit``.

        Redriven records are left out unless ``redriven``. The reader starts
        after the prefix of the log the ledger covers whole, when it does not
        have to show redriven records.
        """
        ledger = self.ledger
        after = {} if redriven else ledger.covered_prefix()
        previous: dict[str, Position | None] = dict(after)
        left = selection.limit
        async with aclosing(self.reader.scan(after)) as batches:
            async for batch in batches:
                out: list[Pending] = []
                for letter in batch:
                    before = previous.get(letter.partition)
                    previous[letter.partition] = letter.position
                    if not redriven and ledger.contains(letter.partition, letter.position):
                        continue
                    if not selection.matches(letter):
                        continue
                    out.append(Pending(letter, before))
                    if left is not None:
                        left -= 1
                        if left <= 0:
                            break
                if out:
                    yield out
                if left is not None and left <= 0:
                    return

    async def summary(self) -> Summary:
        """Counts by stage and error type, oldest and newest of the records waiting, one scan."""
        summary = Summary(self.type_name)
        oldest: tuple[float, str] | None = None
        newest: tuple[float, str] | None = None
        async with aclosing(self.reader.scan({})) as batches:
            async for batch in batches:
                for letter in batch:
                    if self.ledger.contains(letter.partition, letter.position):
                        summary.redriven += 1
                        continue
                    record = letter.record
                    if record is None:
                        summary.unreadable += 1
                        continue
                    summary.count += 1
                    summary.by_stage[str(record.get("stage", "?"))] += 1
                    error = record.get("error")
                    kind = error.get("type") if isinstance(error, dict) else None
                    summary.by_error[str(kind or "?")] += 1
                    at = dead_lettered_at(record)
                    if at is not None:
                        text = str(record["last_attempt_at"])
                        if oldest is None or at < oldest[0]:
                            oldest = (at, text)
                        if newest is None or at > newest[0]:
                            newest = (at, text)
        summary.oldest = oldest[1] if oldest else None
        summary.newest = newest[1] if newest else None
        return summary
