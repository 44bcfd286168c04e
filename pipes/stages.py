"""Filter, enrichment and transform, built once from config.

Each stage is compiled when the pipe is loaded (patterns, templates and
JMESPath expressions are parsed once) and then applied per event on the hot
path with no further parsing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jmespath
import jmespath.exceptions
import jmespath.parser

from pipes.connector import Enricher
from pipes.errors import FatalError
from pipes.events import Event
from pipes.models import FilterConfig, TransformConfig

__all__ = ["EnrichmentStage", "FilterStage", "StageError", "TransformStage", "compile_jmespath"]


class StageError(ValueError):
    """A stage's definition does not compile; ``path`` is where, inside the stage config."""

    def __init__(self, path: tuple[str | int, ...], message: str, suffix: str = "") -> None:
        super().__init__(message)
        self.path = path
        #: A path inside the stage's own language (a pattern), written after ``path``.
        self.suffix = suffix


def compile_jmespath(expression: str, path: tuple[str | int, ...]) -> jmespath.parser.ParsedResult:
    try:
        return jmespath.compile(expression)
    except jmespath.exceptions.JMESPathError as exc:
        message = " ".join(str(exc).split())
        raise StageError(path, f"invalid JMESPath expression: {message}") from None


class FilterStage:
    """Patterns (OR between them) and/or a JMESPath condition; both must pass."""

    def __init__(self, config: FilterConfig) -> None:
        self._patterns: Any = None
        if config.patterns:
            from pipes.patterns import EventFilter, PatternError

            try:
                self._patterns = EventFilter.compile(config.patterns)
            except PatternError as exc:
                # exc.path is "pattern[N].a.b": point at pattern N, then the path inside it.
                index, _, inner = exc.path.partition("]")
                where = (
                    ("patterns", int(index.removeprefix("pattern[")))
                    if index.startswith("pattern[")
                    else ("patterns",)
                )
                raise StageError(where, exc.reason, suffix=inner) from None
            except ValueError as exc:
                raise StageError(("patterns",), str(exc)) from None
        self._jmespath = compile_jmespath(config.jmespath, ("jmespath",)) if config.jmespath else None

    def matches(self, record: Mapping[str, Any]) -> bool:
        """Raises ``FatalError`` when the JMESPath expression fails on this record."""
        if self._patterns is not None and not self._patterns.matches(record):
            return False
        if self._jmespath is not None:
            try:
                return bool(_truthy(self._jmespath.search(record)))
            except jmespath.exceptions.JMESPathError as exc:
                raise FatalError(f"filter.jmespath failed: {exc}") from None
        return True


def _truthy(value: Any) -> bool:
    # JMESPath truthiness: false, null, "", [], {} are false; 0 is true.
    if value is None or value is False:
        return False
    if isinstance(value, str | list | dict):
        return len(value) > 0
    return True


class TransformStage:
    """A template (payload is the rendered text) or a JMESPath projection (payload is its value)."""

    def __init__(self, config: TransformConfig) -> None:
        self._template: Any = None
        self._jmespath = None
        if config.template is not None:
            from pipes.templates import InputTemplate

            try:
                self._template = InputTemplate(config.template)
            except ValueError as exc:
                raise StageError(("template",), str(exc)) from None
        elif config.jmespath is not None:
            self._jmespath = compile_jmespath(config.jmespath, ("jmespath",))

    def apply(self, event: Event, variables: Mapping[str, Any]) -> Any:
        """The payload for ``event``; ``FatalError`` when this event cannot be transformed."""
        try:
            if self._template is not None:
                return self._template.render(event.record, variables)
            assert self._jmespath is not None
            return self._jmespath.search(event.record)
        except (jmespath.exceptions.JMESPathError, ValueError, TypeError, KeyError) as exc:
            raise FatalError(f"transform failed: {type(exc).__name__}: {exc}") from None


@dataclass
class EnrichmentStage:
    """Runs an enricher over a batch and turns its results into the events that go on.

    Without ``into`` a result replaces the record (AWS semantics) and the whole
    new record becomes the body; with ``into`` it is merged under that key and
    the body stays where the source put it.
    """

    enricher: Enricher
    into: str | None = None

    async def run(self, events: Sequence[Event]) -> list[tuple[Event, list[Event] | Exception]]:
        """Per input event: the events that continue (possibly none) or its error."""
        results = await self.enricher.enrich(events)
        if len(results) != len(events):
            error = FatalError(
                f"enricher returned {len(results)} results for {len(events)} events; it must return one per event"
            )
            return [(event, error) for event in events]
        out: list[tuple[Event, list[Event] | Exception]] = []
        for event, result in zip(events, results, strict=True):
            if isinstance(result, Exception):
                out.append((event, result))
                continue
            if not isinstance(result, list | tuple):
                # Checked before any child is derived: a half fan-out would leave the
                # event counting children that never settle it.
                kind = type(result).__name__
                error = FatalError(f"enricher returned {kind} for an event; it must return a list")
                out.append((event, error))
                continue
            children = []
            for item in result:
                if self.into is not None:
                    record = {**event.record, self.into: item}
                    children.append(event.derive(record, event.body_field))
                elif isinstance(item, dict):
                    children.append(event.derive(item, ""))
                else:
                    children.append(event.derive({"value": item}, "value"))
            out.append((event, children))
        return out
