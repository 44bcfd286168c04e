"""The values that travel through a pipe.

An ``Event`` is created by a source and carries the *record* that patterns and
templates address, the *partition* it is ordered within and its *position* in
that partition. The runner keeps its bookkeeping (attempts, settled flag) on the
same object so that the hot path allocates one object per event, not several.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["DELIVERED", "Event", "Outcome", "Position"]

#: A position within a partition: a Kafka offset, a byte offset, a Redis stream id.
#: Only the source that made it interprets it; the runner only stores and returns it.
type Position = int | str

#: What a target or enricher reports per event: ``None`` (delivered) or the error.
#: The error's type decides: ``FatalError`` is permanent, anything else is retried.
type Outcome = Exception | None

DELIVERED: Outcome = None


@dataclass(slots=True, eq=False)
class Event:
    """One event on its way through a pipe.

    ``record`` is the envelope dict (Kafka: topic, partition, offset, ..., value;
    other sources: their metadata beside ``body``). ``body_field`` names the key of
    the record that holds the body, which is the payload when no transform is set.
    An empty ``body_field`` means the whole record is the body (after an enrichment
    replaced the record, as AWS does).
    ``fault`` lets a source hand over an event it already knows is poisoned (e.g.
    delivered too many times); the runner dead-letters it with stage ``source``.
    """

    record: dict[str, Any]
    partition: str
    position: Position
    body_field: str = "body"
    payload: Any = None
    fault: Exception | None = None
    # Bookkeeping owned by the runner.
    received_at: float = 0.0  # monotonic seconds when the runner took it
    ingested_at: float = 0.0  # wall-clock seconds when the runner took it
    attempts: int = 0
    first_attempt_at: float = 0.0  # wall-clock
    last_attempt_at: float = 0.0  # wall-clock
    settled: bool = False
    parent: Event | None = None  # set on the events an enrichment fans out
    children: int = 0  # unsettled fan-out children of this event

    @property
    def body(self) -> Any:
        """The source body, decoded (JSON when it was JSON)."""
        if not self.body_field:
            return self.record
        return self.record.get(self.body_field)

    def derive(self, record: dict[str, Any], body_field: str) -> Event:
        """A child event carrying ``record``, settled through this event (fan-out)."""
        child = Event(
            record=record,
            partition=self.partition,
            position=self.position,
            body_field=body_field,
            received_at=self.received_at,
            ingested_at=self.ingested_at,
            attempts=self.attempts,
            first_attempt_at=self.first_attempt_at,
            parent=self,
        )
        self.children += 1
        return child
