"""Filter, enrichment and transform, built once from config.

Each stage is compiled when the pipe is loaded (patterns, templates and
JMESPath expressions become Python functions once) and then applied per event
on the hot path with no further parsing. Each also says which top-level keys
of the record it reads (``reads``), so that the pipeline can hand it a record
holding just the body when that is all it needs, instead of building the
whole envelope for every event.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jmespath
import jmespath.exceptions
import jmespath.parser

from pipes.codec import InexactNumber, contains_inexact
from pipes.connector import Enricher
from pipes.errors import FatalError
from pipes.events import Event
from pipes.jmespath_codegen import compile_expression, root_keys
from pipes.models import FilterConfig, TransformConfig

__all__ = [
    "EnrichmentStage",
    "FilterStage",
    "StageError",
    "TransformStage",
    "compile_jmespath",
    "union_reads",
]


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


def union_reads(*reads: frozenset[str] | None) -> frozenset[str] | None:
    """What several stages read together (None, the whole record, wins)."""
    keys: set[str] = set()
    for found in reads:
        if found is None:
            return None
        keys |= found
    return frozenset(keys)


def _truthy(value: Any) -> bool:
    # JMESPath truthiness: false, null, "", [], {} are false; 0 is true.
    if value is None or value is False:
        return False
    if isinstance(value, str | list | dict):
        return len(value) > 0
    return True


class FilterStage:
    """Patterns (OR between them) and/or a JMESPath condition; both must pass.

    ``match`` is the fastest callable that decides, stored on the instance:
    the compiled pattern itself when there is no JMESPath condition (it never
    raises), else a function that raises ``FatalError`` when the condition fails
    on a record.
    """

    def __init__(self, config: FilterConfig) -> None:
        patterns: Any = None
        pattern_reads: frozenset[str] | None = frozenset()
        #: Whether a pattern names a number beyond what a float holds exactly (then events
        #: are decoded exactly, so that such a number can match at all).
        self.exact_numbers = False
        if config.patterns:
            from pipes.patterns import EventFilter, PatternError

            try:
                patterns = EventFilter.compile(config.patterns)
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
            pattern_reads = patterns.reads
            self.exact_numbers = patterns.has_wide_numbers
        condition: Callable[[Any], Any] | None = None
        condition_reads: frozenset[str] | None = frozenset()
        if config.jmespath:
            parsed = compile_jmespath(config.jmespath, ("jmespath",))
            condition = compile_expression(parsed)
            condition_reads = root_keys(parsed)
        self.reads = union_reads(pattern_reads, condition_reads)
        self.match: Callable[[Any], bool]
        if condition is None:
            self.match = patterns.matches if patterns is not None else _always
        else:
            self.match = _with_condition(patterns.matches if patterns is not None else None, condition)

    def matches(self, record: Mapping[str, Any]) -> bool:
        """Raises ``FatalError`` when the JMESPath condition fails on this record."""
        return self.match(record)


def _always(record: Any) -> bool:
    return True


def _with_condition(
    patterns: Callable[[Any], bool] | None, condition: Callable[[Any], Any]
) -> Callable[[Any], bool]:
    def match(record: Any) -> bool:
        if patterns is not None and not patterns(record):
            return False
        try:
            return _truthy(condition(record))
        except jmespath.exceptions.JMESPathError as exc:
            raise FatalError(f"filter.jmespath failed: {exc}") from None

    return match


class TransformStage:
    """A template (payload is the rendered text) or a JMESPath projection (payload is its value)."""

    def __init__(self, config: TransformConfig) -> None:
        self._template: Any = None
        self._evaluate: Callable[[Any], Any] | None = None
        if config.template is not None:
            from pipes.templates import InputTemplate

            try:
                self._template = InputTemplate(config.template)
            except ValueError as exc:
                raise StageError(("template",), str(exc)) from None
            self.reads: frozenset[str] | None = self._template.reads
        else:
            assert config.jmespath is not None
            parsed = compile_jmespath(config.jmespath, ("jmespath",))
            self._evaluate = compile_expression(parsed)
            self.reads = root_keys(parsed)

    def apply(self, record: Any, variables: Mapping[str, Any] | None = None, check: bool = False) -> Any:
        """The payload for ``record``; ``FatalError`` when this record cannot be transformed.

        With ``check``, raises ``InexactNumber`` when the payload would place a
        number that orjson may have decoded inexactly (see ``pipes.codec``).
        """
        try:
            if self._template is not None:
                return self._template.render(record, variables, check)
            assert self._evaluate is not None
            result = self._evaluate(record)
        except InexactNumber:
            raise
        except (jmespath.exceptions.JMESPathError, ValueError, TypeError, KeyError) as exc:
            raise FatalError(f"transform failed: {type(exc).__name__}: {exc}") from None
        if check and contains_inexact(result):
            raise InexactNumber
        return result


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
                kind = type(result).__name__
                error = FatalError(f"enricher returned {kind} for an event; it must return a list")
                out.append((event, error))
                continue
            children = []
            for item in result:
                if self.into is not None:
                    record = {**event.record, self.into: item}
                    # The body is still the source's unless the result went into its own key.
                    keep = self.into != event.body_field
                    children.append(event.derive(record, event.body_field, keep_raw=keep))
                elif isinstance(item, dict):
                    children.append(event.derive(item, ""))
                else:
                    children.append(event.derive({"value": item}, "value"))
            out.append((event, children))
        return out
