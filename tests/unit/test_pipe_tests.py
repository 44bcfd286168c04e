"""Pipe unit tests (``tests:`` in a pipe file): cases pass and fail as they should, through the pipe's own steps."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from helpers import ROOT

from connectors.memory import HUB
from pipes.cli import main
from pipes.config import PipeDefinition, load_paths, load_text
from pipes.pipe_tests import run_pipe_tests

PIPE = """\
name: shaper
source: {type: generator, count: 1}
filter: [{body: {kind: [order]}}]
transform: {template: '{"id": <$.body.id>, "total": <$.body.total>}'}
target: {type: stdout}
"""


def load(text: str, tmp_path: Path) -> PipeDefinition:
    path = tmp_path / "pipe.yaml"
    path.write_text(text)
    [result] = load_paths([path])
    assert result.errors == []
    [definition] = result.pipes
    return definition


async def verdicts(text: str, tmp_path: Path) -> dict[str, list[str] | None]:
    """Case name to None (passed) or the lines that say why it failed."""
    results = await run_pipe_tests(load(text, tmp_path))
    return {r.case: None if r.passed else r.detail for r in results}


async def test_payloads_exact_and_as_patterns_and_filtered(tmp_path: Path) -> None:
    text = PIPE + textwrap.dedent(
        """\
        tests:
          - name: exact
            event: {body: {kind: order, id: 7, total: 12.5}}
            expect: {payload: {id: 7, total: 12.5}}
          - name: the template's text itself
            event: {body: {kind: order, id: 7, total: 12.5}}
            expect: {payload: '{"id":7,"total":12.5}'}
          - name: pattern
            event: {body: {kind: order, id: 7, total: 12.5}}
            expect: {payload_matches: {total: [{numeric: [">", 10]}]}}
          - name: filtered
            event: {body: {kind: refund, id: 7}}
            expect: filtered
        """
    )
    assert await verdicts(text, tmp_path) == {
        "exact": None,
        "the template's text itself": None,
        "pattern": None,
        "filtered": None,
    }


async def test_a_failing_case_says_what_happened_with_a_diff(tmp_path: Path) -> None:
    text = PIPE + textwrap.dedent(
        """\
        tests:
          - name: wrong total
            event: {body: {kind: order, id: 7, total: 12.5}}
            expect: {payload: {id: 7, total: 13}}
          - name: not filtered
            event: {body: {kind: order, id: 7, total: 1}}
            expect: filtered
          - name: filtered after all
            event: {body: {kind: refund}}
            expect: {payload_matches: {id: [7]}}
          - name: pattern misses
            event: {body: {kind: order, id: 8, total: 1}}
            expect: {payload_matches: {id: [7]}}
        """
    )
    found = await verdicts(text, tmp_path)
    assert found["wrong total"] == [
        "the payload differs:",
        "--- expected",
        "+++ got",
        "@@ -1,4 +1,4 @@",
        " {",
        '   "id": 7,',
        '-  "total": 13',
        '+  "total": 12.5',
        " }",
    ]
    assert found["not filtered"] == ['expected filtered, got the payload {"id":7,"total":1}']
    assert found["filtered after all"] == [
        "expected a payload matching the pattern, got filtered out (the filter did not match)"
    ]
    assert found["pattern misses"] == [
        "the payload does not match the pattern:",
        'pattern: {"id":[7]}',
        'payload: {"id":8,"total":1}',
    ]


async def test_the_enrichment_answer_is_stubbed_per_case(tmp_path: Path, unique: str) -> None:
    calls: list[Any] = []
    HUB.channel(unique).enrich = lambda record: calls.append(record) or [record]
    text = textwrap.dedent(
        f"""\
        name: enriched
        source: {{type: generator, count: 1}}
        enrichment: {{type: memory, channel: "{unique}", into: customer}}
        transform: {{jmespath: '{{id: body.id, tier: customer.tier}}'}}
        target: {{type: stdout}}
        tests:
          - name: a gold customer
            event: {{body: {{id: 1}}}}
            enrichment: {{tier: gold}}
            expect: {{payload: {{id: 1, tier: gold}}}}
          - name: an unknown customer is dropped
            event: {{body: {{id: 2}}}}
            enrichment: null
            expect: dropped
          - name: fanned out
            event: {{body: {{id: 3}}}}
            enrichment: [{{tier: a}}, {{tier: b}}]
            expect: {{payloads: [{{id: 3, tier: a}}, {{id: 3, tier: b}}]}}
          - name: not stubbed calls the enricher
            event: {{body: {{id: 4}}}}
            expect: {{payload: {{id: 4, tier: null}}}}
        """
    )
    try:
        assert set((await verdicts(text, tmp_path)).values()) == {None}
    finally:
        HUB.drop(unique)
    assert [record["body"]["id"] for record in calls] == [4]


async def test_a_file_of_events_checks_each_of_them(tmp_path: Path) -> None:
    (tmp_path / "orders.jsonl").write_text(
        '{"body": {"kind": "order", "id": 1, "total": 5}}\n\n{"body": {"kind": "order", "id": 2, "total": 50}}\n'
    )
    (tmp_path / "refunds.json").write_text('[{"body": {"kind": "refund"}}, {"body": {"kind": "order"}}]')
    text = PIPE + textwrap.dedent(
        """\
        tests:
          - name: orders
            events_file: orders.jsonl
            expect: {payload_matches: {id: [{exists: true}]}}
          - name: refunds
            events_file: refunds.json
            expect: filtered
          - name: missing
            events_file: nope.jsonl
            expect: filtered
        """
    )
    found = await verdicts(text, tmp_path)
    assert found["orders"] is None
    assert found["refunds"] == [
        "event 2 of refunds.json:",
        'expected filtered, got the payload {"id":null,"total":null}',
    ]
    assert found["missing"] is not None
    assert found["missing"][0].startswith("events_file nope.jsonl: cannot read ")


def test_mistakes_in_tests_are_located() -> None:
    text = PIPE + textwrap.dedent(
        """\
        tests:
          - name: a
            event: {body: 1}
            expect: passed
          - name: b
            event: {body: 1}
            expect: {payload: 1, payloads: [1]}
          - name: c
            event: {body: 1}
            events_file: x.jsonl
            expect: filtered
          - name: d
            event: {body: 1}
            expect: {payload_matches: {a: [{numeric: [">"]}]}}
        """
    )
    errors = load_text(text, "t.yaml").errors
    assert [line.split(": ")[1] for line in errors] == [
        "tests[0].expect",
        "tests[1].expect",
        "tests[2]",
        "tests[3].expect.payload_matches",
    ]
    assert "'passed': write filtered, dropped, or a mapping" in errors[0]


def test_editing_tests_does_not_change_the_pipe() -> None:
    one = load_text(PIPE + "tests: []\n").pipes[0]
    two = load_text(PIPE + "tests: [{name: x, event: {body: 1}, expect: filtered}]\n").pipes[0]
    assert one.fingerprint == two.fingerprint and one.fingerprint == load_text(PIPE).pipes[0].fingerprint


def test_pipes_test_without_event_runs_the_cases_and_exits_1_on_a_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "good.yaml").write_text(
        PIPE + "tests: [{name: ok, event: {body: {kind: x}}, expect: filtered}]\n"
    )
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "bad.yaml").write_text(
        PIPE.replace("shaper", "other")
        + "tests: [{name: wrong, event: {body: {kind: x}}, expect: dropped}]\n"
    )
    (tmp_path / "sub" / "none.yaml").write_text(PIPE.replace("shaper", "untested"))
    assert main(["test", str(tmp_path / "good.yaml")]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"PASS {tmp_path / 'good.yaml'}: shaper: ok",
        "1 passed, 0 failed (1 case in 1 pipe)",
    ]
    assert main(["test", str(tmp_path)]) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"PASS {tmp_path / 'good.yaml'}: shaper: ok",
        f"FAIL {tmp_path / 'sub' / 'bad.yaml'}: other: wrong",
        "    expected dropped, got filtered out (the filter did not match)",
        "1 passed, 1 failed (2 cases in 2 pipes); pipes without tests: untested",
    ]
    assert main(["test", str(tmp_path), "--pipe", "shaper"]) == 0
    capsys.readouterr()
    assert main(["test", str(tmp_path / "sub" / "none.yaml")]) == 2
    assert "no tests: in" in capsys.readouterr().err


def test_every_example_pipe_has_tests_and_they_pass(capsys: pytest.CaptureFixture[str]) -> None:
    """The examples under configs/ are under test themselves (CI runs `pipes test configs/` here)."""
    results = load_paths([ROOT / "configs"])
    pipes = [d for r in results for d in r.pipes]
    assert pipes and all(r.errors == [] for r in results)
    assert [d.name for d in pipes if not d.config.tests] == []
    assert main(["test", str(ROOT / "configs")]) == 0
    out = capsys.readouterr().out
    assert "FAIL" not in out and out.splitlines()[-1].startswith(
        f"{sum(len(d.config.tests) for d in pipes)} passed"
    )
