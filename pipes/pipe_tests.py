"""The ``tests:`` of pipe files: each case through the very steps the pipe runs, and its verdict.

A case gives a source record (``event``) or a file of them (``events_file``),
optionally the enrichment's answer (``enrichment``: the enricher is then not
called, so a test needs no other system), and the outcome it expects:
``filtered``, ``dropped``, or the payload the target would get (exactly, as a
list when the enrichment fans out, or as an event pattern it must match).

Each record goes through ``pipes.dryrun`` (the pipeline a running pipe uses,
stopped before the target), so a passing case says what the pipe will do.
A failing one says what happened instead, with a diff of the payloads.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from pipes.config import PipeDefinition
from pipes.connector import Enricher
from pipes.dryrun import dry_run
from pipes.events import Event
from pipes.models import Expectation, PipeTestCase
from pipes.patterns import EventFilter

__all__ = ["CaseResult", "run_case", "run_pipe_tests"]

#: Failing events of one case reported in full; the rest are counted.
SHOWN_FAILURES = 5


@dataclass
class CaseResult:
    """The verdict on one case; ``detail`` says why it failed (lines to print, indented)."""

    file: str
    pipe: str
    case: str
    passed: bool
    detail: list[str] = field(default_factory=list)

    @property
    def title(self) -> str:
        return f"{self.file}: {self.pipe}: {self.case}"


class _StubEnricher(Enricher):
    """Answers every event with the case's ``enrichment`` (as the ``python`` enricher reads answers)."""

    def __init__(self, answer: Any) -> None:
        super().__init__(None)
        self.answer = answer

    async def enrich(self, events: Sequence[Event]) -> Sequence[list[Any] | Exception]:
        answer = self.answer
        records = [] if answer is None else list(answer) if isinstance(answer, list) else [answer]
        return [list(records) for _ in events]


async def run_pipe_tests(definition: PipeDefinition) -> list[CaseResult]:
    """Every case of the pipe, in order."""
    return [await run_case(definition, case) for case in definition.config.tests]


async def run_case(definition: PipeDefinition, case: PipeTestCase) -> CaseResult:
    result = CaseResult(definition.file, definition.name, case.name, passed=True)
    try:
        records = _inputs(definition, case)
    except ValueError as exc:
        result.passed = False
        result.detail.append(str(exc))
        return result
    enricher = _StubEnricher(case.enrichment) if case.stubs_enrichment else None
    failures = 0
    for index, record in enumerate(records):
        steps = await dry_run(definition, record, enricher)
        problem = _verdict(case.expect, steps)
        if problem is None:
            continue
        failures += 1
        result.passed = False
        if failures <= SHOWN_FAILURES:
            if case.events_file is not None:
                result.detail.append(f"event {index + 1} of {case.events_file}:")
            result.detail.extend(problem)
    if failures > SHOWN_FAILURES:
        result.detail.append(f"... and {failures - SHOWN_FAILURES} more failing events")
    return result


def _inputs(definition: PipeDefinition, case: PipeTestCase) -> list[dict[str, Any]]:
    """The case's source records; ``ValueError`` with one line when its file cannot be used."""
    if case.event is not None:
        return [case.event]
    assert case.events_file is not None
    base = Path(definition.file).parent if definition.file != "<memory>" else Path()
    path = base / case.events_file
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise ValueError(f"events_file {case.events_file}: cannot read {path}: {reason}") from None
    try:
        if text.lstrip().startswith("["):
            records = orjson.loads(text)
        else:
            records = [orjson.loads(line) for line in text.splitlines() if line.strip()]
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"events_file {case.events_file}: not JSON lines or a JSON array: {exc}") from None
    if not records or not all(isinstance(r, dict) for r in records):
        raise ValueError(f"events_file {case.events_file}: give one or more JSON objects (source records)")
    return list(records)


def _outcome(steps: list[dict[str, Any]]) -> tuple[str, Any]:
    """What the dry run ended with: (filtered | dropped | failed | payloads, detail)."""
    last = steps[-1]
    if "error" in last:
        error = last["error"]
        return "failed", f"{last['stage']}: {error['type']}: {error['message']}"
    if last["stage"] == "filter" and not last["matched"]:
        return "filtered", None
    if last["stage"] == "enrichment" and not last["records"]:
        return "dropped", None
    return "payloads", last["payloads"]


def _said(outcome: str, detail: Any) -> str:
    if outcome == "filtered":
        return "filtered out (the filter did not match)"
    if outcome == "dropped":
        return "dropped (the enrichment answered with nothing)"
    if outcome == "failed":
        return f"failed in {detail}"
    if len(detail) == 1:
        return f"the payload {_short(detail[0])}"
    return f"{len(detail)} payloads"


def _verdict(expect: Expectation, steps: list[dict[str, Any]]) -> list[str] | None:
    """None when the outcome is what ``expect`` says; else the lines that say how it differs."""
    outcome, detail = _outcome(steps)
    if expect.outcome is not None:
        if outcome == expect.outcome:
            return None
        return [f"expected {expect.outcome}, got {_said(outcome, detail)}"]
    if outcome != "payloads":
        wanted = "a payload matching the pattern" if expect.payload_matches is not None else "a payload"
        return [f"expected {wanted}, got {_said(outcome, detail)}"]
    payloads: list[Any] = detail
    if expect.payload_matches is not None:
        return _pattern_verdict(expect.payload_matches, payloads)
    if "payloads" in expect.model_fields_set:
        wanted_list = list(expect.payloads or [])
        if len(payloads) == len(wanted_list) and all(
            _same(got, want) for got, want in zip(payloads, wanted_list, strict=True)
        ):
            return None
        return [
            "the payloads differ:",
            *_diff(wanted_list, [_comparable(p, w) for p, w in _pairs(payloads, wanted_list)]),
        ]
    if len(payloads) != 1:
        return [f"expected one payload, got {len(payloads)}:", *_diff([expect.payload], payloads)]
    if _same(payloads[0], expect.payload):
        return None
    return ["the payload differs:", *_diff(expect.payload, _comparable(payloads[0], expect.payload))]


def _pattern_verdict(pattern: dict[str, Any], payloads: list[Any]) -> list[str] | None:
    if not payloads:
        return ["expected a payload matching the pattern, got no payload"]
    matcher = EventFilter.compile([pattern])
    for payload in payloads:
        value = _as_json(payload)
        if not isinstance(value, dict) or not matcher.matches(value):
            return [
                "the payload does not match the pattern:",
                f"pattern: {_short(pattern)}",
                f"payload: {_short(payload)}",
            ]
    return None


def _pairs(got: list[Any], wanted: list[Any]) -> list[tuple[Any, Any]]:
    return [(g, wanted[i] if i < len(wanted) else None) for i, g in enumerate(got)]


def _as_json(value: Any) -> Any:
    """A payload that is JSON text (a template's output) as the value it holds; others as they are."""
    if isinstance(value, str | bytes):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value


def _comparable(got: Any, wanted: Any) -> Any:
    """``got`` in the form ``wanted`` is written in: text compares as text, anything else as JSON."""
    if isinstance(wanted, str):
        return got
    return _as_json(got)


def _same(got: Any, wanted: Any) -> bool:
    return bool(_comparable(got, wanted) == wanted)


def _pretty(value: Any) -> list[str]:
    try:
        text = orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()
    except (TypeError, orjson.JSONEncodeError):
        text = json.dumps(value, indent=2, sort_keys=True, default=repr)
    return text.splitlines()


def _diff(wanted: Any, got: Any) -> list[str]:
    lines = difflib.unified_diff(_pretty(wanted), _pretty(got), "expected", "got", lineterm="", n=2)
    return list(lines)


def _short(value: Any, width: int = 160) -> str:
    if isinstance(value, str):
        text = value
    else:
        try:
            text = orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
        except (TypeError, orjson.JSONEncodeError):
            text = json.dumps(value, sort_keys=True, default=repr)
    return text if len(text) <= width else text[: width - 3] + "..."
