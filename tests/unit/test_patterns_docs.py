"""Every example table in docs/filtering.md is checked: the pattern matches each ✓ event and no ✗ event."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from pipes.patterns import EventFilter

DOC = Path(__file__).resolve().parents[2] / "docs" / "filtering.md"
CODE = re.compile(r"`([^`]+)`")


def examples() -> list[Any]:
    rows = []
    for number, line in enumerate(DOC.read_text().splitlines(), start=1):
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if not line.startswith("| `{") or len(cells) != 3:
            continue
        pattern = json.loads(CODE.findall(cells[0])[0])
        passing = [json.loads(text) for text in CODE.findall(cells[1])]
        failing = [json.loads(text) for text in CODE.findall(cells[2])]
        rows.append(pytest.param(pattern, passing, failing, id=f"line {number}"))
    return rows


EXAMPLES = examples()


def test_the_doc_has_examples() -> None:
    assert len(EXAMPLES) >= 25


@pytest.mark.parametrize(("pattern", "passing", "failing"), EXAMPLES)
def test_doc_example(pattern: dict[str, Any], passing: list[Any], failing: list[Any]) -> None:
    f = EventFilter.compile(pattern)
    for event in passing:
        assert f.matches(event), f"{pattern} should match {event}"
    for event in failing:
        assert not f.matches(event), f"{pattern} should not match {event}"
