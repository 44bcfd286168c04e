"""``pipes test``: one event through filter, enrichment and transform, nothing else.

The source and target are never started; the enricher is (it is part of what
the user is testing). Each stage reports what it produced, so a user sees where
an event stops and what the target would have received.
"""

from __future__ import annotations

import time
from typing import Any

from pipes.clock import iso_utc
from pipes.config import PipeDefinition
from pipes.connector import ConnectorContext, Enricher
from pipes.events import Event
from pipes.stages import EnrichmentStage

__all__ = ["dry_run"]


def _error(exc: BaseException) -> dict[str, str]:
    return {"type": type(exc).__name__, "message": str(exc)}


async def dry_run(definition: PipeDefinition, record: dict[str, Any]) -> list[dict[str, Any]]:
    """The stages' outputs for ``record``, in order; stops at the first stage that ends it."""
    steps: list[dict[str, Any]] = []
    body_field = _body_field(record)
    event = Event(record=record, partition="test", position=0, body_field=body_field)
    if definition.filter is not None:
        try:
            matched = definition.filter.matches(record)
        except Exception as exc:
            steps.append({"stage": "filter", "error": _error(exc)})
            return steps
        steps.append({"stage": "filter", "matched": matched})
        if not matched:
            return steps
    events = [event]
    if definition.enrichment is not None:
        enricher: Enricher = definition.enrichment.build_enricher()
        await enricher.start(ConnectorContext(pipe=definition.name))
        try:
            results = await EnrichmentStage(enricher, definition.enrichment_into).run(events)
        except Exception as exc:
            steps.append({"stage": "enrichment", "error": _error(exc)})
            return steps
        finally:
            await enricher.stop()
        _, result = results[0]
        if isinstance(result, Exception):
            steps.append({"stage": "enrichment", "error": _error(result)})
            return steps
        events = result
        steps.append({"stage": "enrichment", "records": [e.record for e in events]})
        if not events:
            return steps
    payloads = []
    variables = definition.template_variables()
    variables["aws.pipes.event.ingestion-time"] = iso_utc(time.time())
    for item in events:
        if definition.transform is None:
            payloads.append(item.body)
            continue
        try:
            payloads.append(definition.transform.apply(item, variables))
        except Exception as exc:
            steps.append({"stage": "transform", "error": _error(exc)})
            return steps
    steps.append({"stage": "transform" if definition.transform else "payload", "payloads": payloads})
    return steps


def _body_field(record: dict[str, Any]) -> str:
    # The record layouts of the built-in sources: Kafka puts the body in `value`.
    if "value" in record and "topic" in record:
        return "value"
    return "body"
