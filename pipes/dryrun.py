"""``pipes test``: one event through filter, enrichment and transform, nothing written.

It runs the very steps a running pipe runs (``pipes.pipeline``), kept apart so
that each stage reports on its own. The source and target are never started;
the enricher is (it is part of what the user is testing), unless the caller
hands over one of its own (a pipe test's stubbed answer, ``pipes.pipe_tests``).
Each stage reports what it produced, so a user sees where an event stops and
what the target would have received.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from pipes.clock import iso_utc
from pipes.config import PipeDefinition
from pipes.connector import ConnectorContext, Enricher, Target
from pipes.events import Event, Outcome
from pipes.pipeline import Pipeline, Stage, Tally
from pipes.stages import EnrichmentStage

__all__ = ["body_field_of", "dry_run", "failed"]


class _NoTarget(Target):
    """Stands in for the target: the dry run stops before delivery."""

    async def write(self, events: Sequence[Event]) -> Sequence[Outcome]:  # pragma: no cover - never called
        raise AssertionError("a dry run writes nothing")


def _error(exc: BaseException) -> dict[str, str]:
    return {"type": type(exc).__name__, "message": str(exc)}


def failed(steps: list[dict[str, Any]]) -> bool:
    """Whether a stage failed the event (``pipes test`` exits 1 then)."""
    return any("error" in step for step in steps)


async def dry_run(
    definition: PipeDefinition,
    record: dict[str, Any],
    enricher: Enricher | None = None,
    *,
    after_enrichment: bool = False,
) -> list[dict[str, Any]]:
    """The stages' outputs for ``record``, in order; stops at the first stage that ends it.

    ``enricher`` replaces the pipe's own (which is then neither built nor started).
    ``after_enrichment``: ``record`` is what the enrichment returned (a dead
    letter of the transform or the target, sent again): only the stages after
    the enrichment run, as a redrive would run them.
    """
    resume = after_enrichment and definition.enrichment is not None
    body_field = enriched_body_field(definition, record) if resume else body_field_of(record)
    event = Event(record, "test", 0, body_field)
    enrichment = None
    own = enricher is None
    if definition.enrichment is not None:
        if enricher is None:
            enricher = definition.enrichment.build_enricher()
        enrichment = EnrichmentStage(enricher, definition.enrichment_into)
    pipeline = Pipeline.build(
        filter=definition.filter,
        enrichment=enrichment,
        transform=definition.transform,
        target=_NoTarget(None),
        fused=False,
    )
    variables = definition.template_variables()
    variables["aws.pipes.event.ingestion-time"] = iso_utc(time.time())
    tally = Tally(variables=variables, trace=[])
    start = pipeline.after_enrichment if resume else 0
    if enrichment is not None and own and not resume:
        await enrichment.enricher.start(ConnectorContext(pipe=definition.name))
    try:
        out = await pipeline.run([event], tally, start, pipeline.deliver_at)
    finally:
        if enrichment is not None and own and not resume:
            await enrichment.enricher.stop()
    return _report(definition, tally, out, resume)


def _report(
    definition: PipeDefinition, tally: Tally, out: list[Event], resumed: bool = False
) -> list[dict[str, Any]]:
    assert tally.trace is not None
    steps: list[dict[str, Any]] = []
    failure = tally.failures[0] if tally.failures else None
    by_stage = {stage: (what, detail) for stage, what, _, detail in tally.trace}
    if resumed:
        pass  # the record is the enrichment's result: filter and enrichment are behind it
    elif definition.filter is not None:
        if failure is not None and failure.stage is Stage.FILTER:
            return [*steps, {"stage": "filter", "error": _error(failure.error)}]
        matched = by_stage.get(Stage.FILTER, ("filtered", False))[0] == "matched"
        steps.append({"stage": "filter", "matched": matched})
        if not matched:
            return steps
    if definition.enrichment is not None and not resumed:
        if failure is not None and failure.stage is Stage.ENRICHMENT:
            return [*steps, {"stage": "enrichment", "error": _error(failure.error)}]
        _, records = by_stage.get(Stage.ENRICHMENT, ("dropped", []))
        steps.append({"stage": "enrichment", "records": records})
        if not records:
            return steps
    if failure is not None and failure.stage is Stage.TRANSFORM:
        return [*steps, {"stage": "transform", "error": _error(failure.error)}]
    stage = "transform" if definition.transform is not None else "payload"
    steps.append({"stage": stage, "payloads": [event.payload for event in out]})
    return steps


def body_field_of(record: dict[str, Any]) -> str:
    """The key of a source record that holds its body, by the built-in record layouts.

    Kafka puts the body in ``value``; the other built-in sources in ``body``.
    A record with neither is the body as a whole (``""``).
    """
    if "value" in record and "topic" in record:
        return "value"
    return "body" if "body" in record else ""


def enriched_body_field(definition: PipeDefinition, record: dict[str, Any]) -> str:
    """Where the body is in a record the enrichment returned (see ``EnrichmentStage``).

    Merged ``into`` a key, the body stays where the source put it; otherwise
    the result is the body (a result that was not an object went under ``value``).
    """
    if definition.enrichment_into is not None:
        return body_field_of(record)
    return "value" if record.keys() == {"value"} else ""
