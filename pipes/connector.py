"""The connector contract: what a source, a target and an enricher promise.

Connectors are thin translators of I/O. Batching, retries, backoff, dead
letters, ordering, concurrency and checkpoints belong to the runner; a
connector only opens a client, reads or writes, and maps errors onto
``RetryableError`` / ``FatalError`` (see ``pipes.errors``).

A connector *name* (``type: kafka``) is a ``Connector`` that may offer a source,
a target and/or an enricher; the role is chosen by where the pipe uses it.
Each role class declares its options as a pydantic model (``options_model``),
so validation, docs and the JSON schema come from one place.

Lifecycle of every role, called by the runner from one task at a time:

1. ``__init__(options)`` -- no I/O; must not fail for valid options.
2. ``await start(context)`` -- open clients. May raise ``RetryableError`` when the
   other system is unreachable (the runner retries with backoff) or
   ``FatalError`` for a definition the other system refuses (the pipe fails).
3. the role's work calls (below). What may overlap: a target's ``write`` and an
   enricher's ``enrich`` for *different* partitions run at once (up to the
   pipe's ``concurrency``), while calls for one partition never overlap; a
   source's ``read`` never overlaps another ``read``, but ``commit`` (and
   ``pause``/``resume``) may be called while a ``read`` is under way.
4. ``await stop()`` -- close clients; called once, also after a failed start;
   must not raise. Nothing is called after ``stop``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import structlog
from pydantic import BaseModel, ConfigDict

from pipes.clock import Clock, SystemClock
from pipes.errors import FatalError
from pipes.events import Event, Outcome, Position

if TYPE_CHECKING:
    from pipes.dead_letters import DeadLetterReader

__all__ = [
    "Connector",
    "ConnectorContext",
    "ConnectorOptions",
    "Enricher",
    "NoOptions",
    "Source",
    "SourceContext",
    "Target",
    "encode_each",
    "payload_bytes",
]


class ConnectorOptions(BaseModel):
    """Base of every connector's options: frozen, and unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NoOptions(ConnectorOptions):
    """For connectors that take no options."""


async def _no_revoke(partitions: Collection[str]) -> None:
    return None


@dataclass(frozen=True)
class ConnectorContext:
    """What the runner hands every connector at ``start``."""

    pipe: str
    clock: Clock = field(default_factory=SystemClock)
    log: Any = field(default_factory=structlog.get_logger)
    #: ARN-like name of this connector, as templates see it (``aws.pipes.source-arn``).
    arn: str = ""
    #: Folder for files a connector keeps between runs (the ``--state-dir``).
    state_dir: str = "state"


@dataclass(frozen=True)
class SourceContext(ConnectorContext):
    """What a source gets at ``start`` besides the common context."""

    #: Last committed position per partition, from the checkpoint store. Empty for
    #: sources that track their own position (``tracks_position = True``).
    checkpoint: Mapping[str, Position] = field(default_factory=dict)
    #: ``pipes run --once``: the source reports ``caught_up()`` once it has returned
    #: everything up to the end it saw at start.
    once: bool = False
    #: Call (and await) when partitions are taken away (a consumer-group rebalance):
    #: the runner finishes or abandons in-flight work of those partitions within a
    #: bound, commits what was settled, and forgets them. Returns when that is done.
    revoke: Callable[[Collection[str]], Awaitable[None]] = _no_revoke
    #: The pipe's in-flight bound: the runner never holds more events than this, so a
    #: source need not buffer (or let its callers queue) more.
    max_in_flight: int = 1000
    #: Which worker process of ``pipes run --workers N`` this is ("" when there is one
    #: process): a source with a consumer name in a group appends it, so that two
    #: workers never share one consumer's pending entries.
    worker: str = ""


class Source(ABC):
    """Yields events; tells the runner how far it got; commits settled positions.

    Contract:

    - ``read(max_events, timeout_s)`` returns at most ``max_events`` events, in
      order within each partition, waiting at most about ``timeout_s`` when none
      are ready (return ``[]`` then). It must not return an event again unless
      the pipe restarted from an earlier checkpoint. May raise ``RetryableError``
      (the runner backs off and calls again) or ``FatalError`` (the pipe fails).
    - ``commit(positions)`` is called with, per partition, the position of the
      last event of the contiguous settled prefix: every event up to and
      including it was delivered, filtered out or dead-lettered. Sources with
      ``tracks_position = True`` persist it natively (Kafka offset commit, Redis
      XACK); for the others the runner keeps it in a checkpoint store and hands it
      back in ``SourceContext.checkpoint``, and ``commit`` is still called (so a
      source may release resources). May raise ``RetryableError``.
    - ``caught_up()`` (``--once`` only) -- after a ``read`` that returned nothing:
      has every event up to the end seen at start been returned?
    """

    options_model: ClassVar[type[ConnectorOptions]] = NoOptions
    #: True when the source persists positions itself (consumer groups).
    tracks_position: ClassVar[bool] = False
    #: True when several processes reading the same source share its events through the
    #: system itself (a Kafka consumer group, a Redis stream consumer group, a reliable
    #: Redis list): such a pipe may run in every worker and on every machine at once.
    #: Any other pipe runs in exactly one place (``--workers``, ``--coordination``).
    shared_by_group: ClassVar[bool] = False
    #: The ``batch.window`` this source wants when the pipe does not set one (None: the
    #: pipe's default). A source whose senders wait for each event's outcome (a webhook)
    #: says 0: a request must not wait for a batch to fill.
    batch_window_s: ClassVar[float | None] = None

    def __init__(self, options: Any) -> None:
        self.options = options

    async def start(self, context: SourceContext) -> None:  # noqa: B027 - optional hook
        """Open clients and seek to ``context.checkpoint`` (or the native position)."""

    @abstractmethod
    async def read(self, max_events: int, timeout_s: float) -> list[Event]:
        """Up to ``max_events`` events, waiting at most ~``timeout_s`` when none are ready."""

    async def commit(self, positions: Mapping[str, Position]) -> None:  # noqa: B027
        """Persist (natively) that every event up to ``positions[p]`` is settled."""

    def caught_up(self) -> bool:
        """``--once``: everything up to the end seen at start has been read."""
        return False

    def lag(self) -> Mapping[str, int] | None:
        """Events behind the end, per partition, where the source knows it."""
        return None

    def idle_s(self) -> float | None:
        """Seconds since the other system last answered, for a source that fetches in the background.

        A source whose ``read`` waits on the system directly need not say: the
        runner times its reads. One that reads from a buffer a background task
        fills (the Kafka consumer) returns empty reads while the system is
        frozen; this tells the runner (None: cannot tell). Cheap, no I/O.
        """
        return None

    def dead_lettered(self, partition: str, position: Position) -> None:  # noqa: B027 - optional hook
        """The event at ``position`` went to the dead letter (called before the commit that covers it).

        For a source that answers its sender per event (a webhook: 202 rather
        than 200). Cheap, no I/O.
        """

    def pause(self, partitions: Collection[str]) -> None:  # noqa: B027 - optional hook
        """Stop fetching these partitions until ``resume`` (a retrying event holds them up).

        Best effort and cheap (no I/O wait): events already fetched may still be
        returned. A source that cannot pause ignores it; then a partition held up
        by a failing event may fill the pipe's in-flight bound and hold the others.
        """

    def resume(self, partitions: Collection[str]) -> None:  # noqa: B027 - optional hook
        """Fetch these partitions again after ``pause``."""

    async def stop(self) -> None:  # noqa: B027 - optional hook
        """Close clients. Must not raise."""


class Target(ABC):
    """Writes payloads and reports an outcome per event.

    Contract:

    - ``write(events)`` gets a batch, in partition order; each event's
      ``payload`` is the transform's output, else the source body. A target that
      writes bytes calls ``event.payload_bytes()``: without a transform that is
      the source's bytes exactly as read. It returns one ``Outcome`` per event,
      in the same order: ``None`` when delivered, a ``FatalError`` when the event
      can never be written (a payload that cannot be encoded fails alone, at
      once), any other exception when it may succeed later (a ``RetryableError``
      may say when to try again: ``retry_after_s``). Raising instead fails the
      whole batch with that error. Writes of one batch should be issued together
      (pipelined), never one await per event. Delivered means durable as far as
      the target can tell (acked, fsynced): the checkpoint moves past it right
      after. Writes of one partition never overlap (the next starts after the
      previous one returned); writes of different partitions may.
    - ``reads_record``: whether ``write`` reads ``event.record`` or ``event.body``
      (templates over the record, say). When False, the runner frees each
      event's decoded body as soon as the transform is done with it.
    """

    options_model: ClassVar[type[ConnectorOptions]] = NoOptions
    reads_record: bool = True

    def __init__(self, options: Any) -> None:
        self.options = options

    async def start(self, context: ConnectorContext) -> None:  # noqa: B027 - optional hook
        """Open clients."""

    @abstractmethod
    async def write(self, events: Sequence[Event]) -> Sequence[Outcome]:
        """Write each event's ``payload``; one outcome per event."""

    async def stop(self) -> None:  # noqa: B027 - optional hook
        """Flush and close. Must not raise."""


class Enricher(ABC):
    """Looks things up for a batch and returns new records.

    Contract: ``enrich(events)`` returns one item per input event, in order:
    a list of records (empty: drop the event, as AWS does for an empty result;
    one: replace or merge; several: fan out), or an exception for that event
    (``FatalError`` permanent, any other retried). Raising fails the whole batch.
    """

    options_model: ClassVar[type[ConnectorOptions]] = NoOptions

    def __init__(self, options: Any) -> None:
        self.options = options

    async def start(self, context: ConnectorContext) -> None:  # noqa: B027 - optional hook
        """Open clients."""

    @abstractmethod
    async def enrich(self, events: Sequence[Event]) -> Sequence[list[Any] | Exception]:
        """Per event: the records it becomes, or its error."""

    async def stop(self) -> None:  # noqa: B027 - optional hook
        """Close clients. Must not raise."""


def encode_each[T](
    events: Sequence[Event], encode: Callable[[Event], T]
) -> tuple[list[T | None], list[Outcome]]:
    """``encode(event)`` for each event, and outcomes where those that could not be encoded failed for good.

    What every target does before it writes, so that one payload with no wire
    form (a value JSON cannot hold, a template that fails on it) fails alone, at
    once, and the rest of the batch is written.
    """
    data: list[T | None] = []
    outcomes: list[Outcome] = []
    for event in events:
        try:
            data.append(encode(event))
            outcomes.append(None)
        except Exception as exc:
            data.append(None)
            outcomes.append(FatalError(f"payload cannot be encoded: {type(exc).__name__}: {exc}"))
    return data, outcomes


def payload_bytes(event: Event) -> bytes:
    """``Event.payload_bytes`` as a function (for ``encode_each``)."""
    return event.payload_bytes()


@dataclass(frozen=True)
class Connector:
    """A connector name and the roles it offers; what an entry point points at.

    ``dead_letter_reader`` reads back what the target wrote when the target is
    a pipe's dead letter (``pipes dlq``; see ``pipes.dead_letters``).
    """

    name: str
    description: str
    source: type[Source] | None = None
    target: type[Target] | None = None
    enricher: type[Enricher] | None = None
    dead_letter_reader: type[DeadLetterReader] | None = None

    @property
    def roles(self) -> list[str]:
        return [
            role
            for role, cls in (("source", self.source), ("target", self.target), ("enricher", self.enricher))
            if cls is not None
        ]
