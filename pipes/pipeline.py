"""The stage chain of a pipe: filter, enrichment, transform, delivery, as steps.

Every step has one shape, ``await step.run(events, tally) -> events``: it takes
a batch's events, returns the ones that go on, and records in the ``Tally``
what it settled (filtered out, dropped, delivered), what it fanned out, and
what failed, with the index of the step to resume at. The lane runs the steps
over a batch as one unit; a retry resumes a failed event at its own step; and
``pipes test`` runs the very same steps over one event, with nothing written.

Without an enrichment between them, filter and transform run as one step
(``ShapeStep``) in one loop: each event's body is decoded, matched and shaped
while it is in the CPU cache, and freed right after unless a later step needs
it. A stage that reads only the body gets a one-key record holding it, so the
source's envelope is never built for it (``pipes.events``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson

from pipes.codec import InexactNumber, decode_body, decode_exact
from pipes.connector import Target
from pipes.errors import FatalError, RetryableError
from pipes.events import Event
from pipes.stages import EnrichmentStage, FilterStage, TransformStage, union_reads

__all__ = [
    "DeliverStep",
    "EnrichStep",
    "Failure",
    "FilterStep",
    "Pipeline",
    "ShapeStep",
    "Stage",
    "Step",
    "Tally",
    "TransformStep",
]


class Stage(StrEnum):
    """Where an event can fail, in the order events meet them."""

    SOURCE = "source"
    FILTER = "filter"
    ENRICHMENT = "enrichment"
    TRANSFORM = "transform"
    TARGET = "target"


@dataclass(slots=True, eq=False)
class Failure:
    """An event that failed in ``stage``; resumed at step ``step`` when retried."""

    event: Event
    stage: Stage
    step: int
    error: Exception
    attempts: int = 0
    #: Wall-clock seconds of the first and the latest failed attempt.
    first_attempt_at: float = 0.0
    last_attempt_at: float = 0.0
    #: Monotonic seconds when the event was taken from the source (for ``max_event_age``).
    received_at: float = 0.0
    #: Monotonic seconds before which trying again is pointless (the other system said so).
    not_before: float = 0.0


@dataclass(slots=True, eq=False)
class Tally:
    """What one pass of steps over a batch did. ``settled`` counts filtered + dropped + delivered."""

    variables: Mapping[str, Any] | None = None
    filtered: int = 0
    dropped: int = 0
    delivered: int = 0
    #: Extra events to settle because an enrichment fanned events out.
    grown: int = 0
    failures: list[Failure] = field(default_factory=list)
    #: When set, steps record per event what happened to it: (stage, what, event, detail).
    trace: list[tuple[Stage, str, Event, Any]] | None = None

    @property
    def settled(self) -> int:
        return self.filtered + self.dropped + self.delivered

    def fail(self, event: Event, stage: Stage, step: int, error: Exception) -> None:
        self.failures.append(Failure(event, stage, step, error))
        if self.trace is not None:
            self.trace.append((stage, "failed", event, error))


class Step(ABC):
    """One stage of the chain. ``index`` is its place in the pipeline (where a retry resumes)."""

    stage: Stage
    index: int = 0

    @property
    def timing_label(self) -> str:
        """The ``stage`` label its time is reported under (``pipes_stage_duration_seconds``)."""
        return str(self.stage)

    @abstractmethod
    async def run(self, events: list[Event], tally: Tally) -> list[Event]:
        """The events that go on; what settled or failed is recorded in ``tally``."""


_loads = orjson.loads
_NotJson = orjson.JSONDecodeError


class ShapeStep(Step):
    """Filter and transform in one loop (no enrichment between them).

    Either may be absent. Without both the pipeline has no ``ShapeStep`` at all,
    and events reach the target undecoded.
    """

    stage = Stage.FILTER

    def __init__(self, filter: FilterStage | None, transform: TransformStage | None, keep_body: bool) -> None:
        self.filter = filter
        self.transform = transform
        reads = union_reads(
            filter.reads if filter is not None else frozenset(),
            transform.reads if transform is not None else frozenset(),
        )
        #: The one record key both stages read (the body's), or None: they need the whole record.
        self.key: str | None = next(iter(reads)) if reads is not None and len(reads) == 1 else None
        self.exact = filter.exact_numbers if filter is not None else False
        #: Whether a later step reads the record: then the decoded body is kept on the event.
        self.keep_body = keep_body

    @property
    def timing_label(self) -> str:
        # Filter and transform run in one loop: their time is one figure.
        if self.filter is not None and self.transform is not None:
            return "filter_transform"
        return "filter" if self.filter is not None else "transform"

    async def run(self, events: list[Event], tally: Tally) -> list[Event]:
        if tally.trace is not None:
            return self._run_one_by_one(events, tally)
        match = self.filter.match if self.filter is not None else None
        apply = self.transform.apply if self.transform is not None else None
        key = self.key
        exact = self.exact
        keep = self.keep_body
        variables = tally.variables
        loads, not_json = _loads, _NotJson
        passed: list[Event] = []
        append = passed.append
        filtered = 0
        for event in events:
            raw = event.raw
            stage = Stage.FILTER
            try:
                # The hot path: a lazy event whose body is all the stages read.
                if raw is not None and event._record is None and event.body_field == key:
                    if exact:
                        body = decode_exact(raw)
                    else:
                        try:
                            body = loads(raw)
                        except not_json:
                            body = decode_body(raw)
                    view = {key: body}
                    if match is not None and not match(view):
                        filtered += 1
                        continue
                    if apply is not None:
                        stage = Stage.TRANSFORM
                        event._payload = apply(view, variables, True)
                    if keep:
                        event._body = body
                    append(event)
                    continue
                view = event.record
                if match is not None and not match(view):
                    filtered += 1
                    continue
                if apply is not None:
                    stage = Stage.TRANSFORM
                    event._payload = apply(view, variables, event.layout is not None)
                append(event)
            except InexactNumber:
                # A number orjson may have rounded: decode this event exactly and do it again.
                if self._redo_exactly(event, tally):
                    append(event)
            except Exception as exc:
                tally.fail(event, stage, self.index, exc)
        tally.filtered += filtered
        return passed

    def _redo_exactly(self, event: Event, tally: Tally) -> bool:
        """One event again, decoded exactly: True when it passed."""
        stage = Stage.FILTER
        try:
            event.decode_exactly()
            record = event.record
            if self.filter is not None and not self.filter.match(record):
                tally.filtered += 1
                return False
            if self.transform is not None:
                stage = Stage.TRANSFORM
                event._payload = self.transform.apply(record, tally.variables)
            return True
        except Exception as exc:
            tally.fail(event, stage, self.index, exc)
            return False

    def _run_one_by_one(self, events: list[Event], tally: Tally) -> list[Event]:
        """The same, recording each event's fate (TRACE logs, taps, ``pipes test``)."""
        assert tally.trace is not None
        passed: list[Event] = []
        for event in events:
            stage = Stage.FILTER
            try:
                if self.exact:
                    event.decode_exactly()  # as the fast path does: the filter compares wide numbers
                record = event.record
                if self.filter is not None:
                    if not self.filter.match(record):
                        tally.filtered += 1
                        tally.trace.append((Stage.FILTER, "filtered", event, False))
                        continue
                    tally.trace.append((Stage.FILTER, "matched", event, True))
                if self.transform is not None:
                    stage = Stage.TRANSFORM
                    try:
                        event._payload = self.transform.apply(
                            record, tally.variables, event.layout is not None
                        )
                    except InexactNumber:
                        event.decode_exactly()
                        event._payload = self.transform.apply(event.record, tally.variables)
                    tally.trace.append((Stage.TRANSFORM, "transformed", event, event.payload))
                passed.append(event)
            except Exception as exc:
                tally.fail(event, stage, self.index, exc)
        return passed


class FilterStep(ShapeStep):
    """The filter alone (an enrichment comes before the transform)."""

    def __init__(self, filter: FilterStage, keep_body: bool) -> None:
        super().__init__(filter, None, keep_body)


class TransformStep(ShapeStep):
    """The transform alone (after an enrichment)."""

    stage = Stage.TRANSFORM

    def __init__(self, transform: TransformStage) -> None:
        super().__init__(None, transform, keep_body=True)


class EnrichStep(Step):
    """Calls the enricher with the batch; results replace, merge, drop or fan out."""

    stage = Stage.ENRICHMENT

    def __init__(self, enrichment: EnrichmentStage) -> None:
        self.enrichment = enrichment

    async def run(self, events: list[Event], tally: Tally) -> list[Event]:
        if not events:
            return events
        try:
            results = await self.enrichment.run(events)
        except Exception as exc:
            for event in events:
                tally.fail(event, Stage.ENRICHMENT, self.index, exc)
            return []
        out: list[Event] = []
        for event, result in results:
            if isinstance(result, Exception):
                tally.fail(event, Stage.ENRICHMENT, self.index, result)
            elif not result:
                tally.dropped += 1
                if tally.trace is not None:
                    tally.trace.append((Stage.ENRICHMENT, "dropped", event, []))
            else:
                tally.grown += len(result) - 1
                out.extend(result)
                if tally.trace is not None:
                    tally.trace.append((Stage.ENRICHMENT, "enriched", event, [e.record for e in result]))
        return out


class DeliverStep(Step):
    """Writes the batch to the target; each event's outcome is its own."""

    stage = Stage.TARGET

    def __init__(self, target: Target) -> None:
        self.target = target

    async def run(self, events: list[Event], tally: Tally) -> list[Event]:
        if not events:
            return events
        try:
            outcomes = await self.target.write(events)
            if len(outcomes) != len(events):
                raise FatalError(f"target returned {len(outcomes)} outcomes for {len(events)} events")
        except Exception as exc:
            for event in events:
                tally.fail(event, Stage.TARGET, self.index, exc)
            return []
        delivered = 0
        for event, outcome in zip(events, outcomes, strict=True):
            if outcome is None:
                delivered += 1
                if tally.trace is not None:
                    tally.trace.append((Stage.TARGET, "delivered", event, None))
            else:
                tally.fail(event, Stage.TARGET, self.index, outcome)
        tally.delivered += delivered
        return []


class Pipeline:
    """The steps of one pipe, in order; the last one delivers."""

    def __init__(self, steps: Sequence[Step]) -> None:
        self.steps = list(steps)
        for index, step in enumerate(self.steps):
            step.index = index
        #: Where delivery starts: a lane runs the steps before it while the previous batch is written.
        self.deliver_at = len(self.steps) - 1

    @classmethod
    def build(
        cls,
        *,
        filter: FilterStage | None,
        enrichment: EnrichmentStage | None,
        transform: TransformStage | None,
        target: Target,
        fused: bool = True,
    ) -> Pipeline:
        """The chain for a pipe definition; ``fused=False`` keeps filter and transform apart (``pipes test``)."""
        target_reads = getattr(target, "reads_record", True)
        steps: list[Step] = []
        if enrichment is None and fused and (filter is not None or transform is not None):
            steps.append(ShapeStep(filter, transform, keep_body=target_reads))
        else:
            if filter is not None:
                steps.append(FilterStep(filter, keep_body=enrichment is not None or target_reads))
            if enrichment is not None:
                steps.append(EnrichStep(enrichment))
            if transform is not None:
                steps.append(TransformStep(transform))
        steps.append(DeliverStep(target))
        return cls(steps)

    async def run(
        self, events: list[Event], tally: Tally, start: int = 0, stop: int | None = None
    ) -> list[Event]:
        """Take ``events`` through steps ``start`` up to (not including) ``stop``."""
        for step in self.steps[start:stop]:
            if not events:
                break
            events = await step.run(events, tally)
        return events

    @property
    def after_enrichment(self) -> int:
        """The step after the enrichment (0 without one): where a record the enrichment returned goes on."""
        return next((step.index + 1 for step in self.steps if step.stage is Stage.ENRICHMENT), 0)


def retry_after(error: Exception) -> float | None:
    """The wait a failure asked for, if any (``RetryableError.retry_after_s``)."""
    if isinstance(error, RetryableError):
        return error.retry_after_s
    return None
