"""Where each event's way through the stages is told: the pipe's TRACE log and its live taps.

The steps record, per event, what happened at each stage
(``pipes.pipeline.Tally.trace``) only when someone listens: the pipe logs at
TRACE, or a tap is attached (``wanted``, checked once per batch). This module
turns those records into TRACE log lines and tap lines.

A TRACE line says where the event is and what happened (``partition``,
``position``, the stage and the error of a failure). What the event holds
(``record``, ``payload``, an enrichment's ``records``, a target's
``execution_data``) is added only when the pipe's log includes execution data
(``log: {include_execution_data: true}``), since it can be personal data.
Taps always carry the data: a tap is asked for by an operator, live, through
the admin API and its token, and what it shows is not kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pipes.events import Event
from pipes.observe import PipeLog
from pipes.pipeline import Stage
from pipes.tap import TapHub

__all__ = ["EventTrace", "TraceEntry"]

#: (stage, what happened, the event, the detail): as ``Tally.trace`` records them.
type TraceEntry = tuple[str, str, Event, Any]


class EventTrace:
    """The pipe's TRACE log and its taps, fed with what the steps recorded."""

    def __init__(self, log: PipeLog, taps: TapHub) -> None:
        self.log = log
        self.taps = taps

    @property
    def wanted(self) -> bool:
        """Whether steps should record each event's way (the one check per batch)."""
        return self.log.tracing or self.taps.active

    def received(self, events: Sequence[Event]) -> None:
        """Events just taken from the source."""
        if self.taps.active and self.taps.wants("source"):
            self.taps.offer([("source", "received", event, None) for event in events])
        log = self.log
        if log.tracing:
            for event in events:
                log.trace(
                    "event_received",
                    partition=event.partition,
                    position=event.position,
                    **log.data(record=event.record),
                )

    def steps(self, trace: Sequence[TraceEntry]) -> None:
        """What one pass of steps recorded."""
        if self.taps.active:
            self.taps.offer(trace)
        log = self.log
        if not log.tracing:
            return
        for stage, what, event, detail in trace:
            fields: dict[str, Any] = {"partition": event.partition, "position": event.position}
            if what == "failed":
                fields["stage"] = str(stage)
                fields["error"] = f"{type(detail).__name__}: {detail}"
            if log.execution_data:
                fields.update(_execution_data(stage, what, event, detail))
            log.trace(f"event_{what}", **fields)

    def dead_lettered(self, events: Sequence[Event]) -> None:
        """Dead-letter events just written (their payload is the dead-letter record)."""
        if self.taps.active:
            self.taps.offer([("dead_letter", "dead_lettered", event, event.payload) for event in events])


def _execution_data(stage: str, what: str, event: Event, detail: Any) -> dict[str, Any]:
    """What the event held at this step, for a log line that includes execution data."""
    if what == "transformed":
        return {"payload": detail}
    if what == "enriched":
        return {"record": event.record, "records": detail}
    if stage == Stage.TARGET:
        data: dict[str, Any] = {"payload": event.payload}
    else:
        data = {"record": event.record}
    if what == "failed":
        reported = getattr(detail, "execution_data", None)
        if reported is not None:
            data["execution_data"] = reported
    return data
