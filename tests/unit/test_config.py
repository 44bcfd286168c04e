"""Pipe definitions: every error is one located line, all errors of a file at once."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pipes.config import find_files, load_file, load_text

ROOT = Path(__file__).resolve().parents[2]
LINE = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+):(?P<col>\d+): (?P<rest>.+)$")

VALID = """\
name: orders
source:
  type: memory
  channel: in
target:
  type: memory
  channel: out
"""


def errors_of(text: str, env: dict[str, str] | None = None) -> list[str]:
    result = load_text(text, "pipe.yaml", env=env or {})
    assert not result.pipes
    for line in result.errors:
        assert "\n" not in line
        assert LINE.match(line), line
    return result.errors


def test_a_valid_pipe_loads_with_defaults() -> None:
    result = load_text(VALID, "pipe.yaml", env={})
    assert result.errors == []
    [pipe] = result.pipes
    assert pipe.name == "orders"
    assert pipe.config.batch.size == 100
    assert pipe.config.batch.window == 0.5
    assert pipe.config.retry.max_attempts == 10
    assert pipe.source.type == "memory"


def test_several_pipes_in_one_file() -> None:
    text = "pipes:\n" + "".join(
        f"  - name: p{i}\n    source: {{type: memory, channel: a}}\n    target: {{type: memory, channel: b}}\n"
        for i in range(3)
    )
    result = load_text(text, "many.yaml", env={})
    assert [p.name for p in result.pipes] == ["p0", "p1", "p2"]


def test_syntax_error_points_at_the_line() -> None:
    [error] = errors_of("name: x\nsource: [unclosed\ntarget: {}\n")
    assert error.startswith("pipe.yaml:3:")
    assert "YAML syntax error" in error


def test_unknown_key_names_its_path_and_position() -> None:
    [error] = errors_of(VALID + "batch:\n  size: 10\n  windw: 2s\n")
    assert error == (
        "pipe.yaml:10:3: batch.windw: unknown key (check the spelling; see the docs for the accepted keys)"
    )


def test_unknown_connector_option_is_reported_under_the_connector() -> None:
    text = VALID.replace("  channel: in\n", "  channel: in\n  chanel: typo\n")
    [error] = errors_of(text)
    assert error.startswith("pipe.yaml:5:3: source.chanel: unknown key")


def test_wrong_type() -> None:
    [error] = errors_of(VALID + "concurrency: many\n")
    assert error.startswith("pipe.yaml:8:1: concurrency: ")
    assert "integer" in error


def test_missing_variable_names_it() -> None:
    text = VALID.replace("channel: out", "channel: ${OUT_CHANNEL}")
    [error] = errors_of(text)
    assert error.startswith("pipe.yaml:7:12: target.channel: environment variable OUT_CHANNEL is not set")


def test_a_missing_variable_in_a_typed_field_is_only_that_error() -> None:
    # Not "source.count: Input should be a valid integer" first: only the variable, where it is.
    text = "name: e\nsource:\n  type: generator\n  count: ${COUNT}\ntarget: {type: stdout}\n"
    text += "batch:\n  size: ${SIZE}\n  window: ${WINDOW}\n"
    assert errors_of(text) == [
        "pipe.yaml:4:10: source.count: environment variable COUNT is not set "
        "(write ${COUNT:-default} to give a default)",
        "pipe.yaml:7:9: batch.size: environment variable SIZE is not set (write ${SIZE:-default} to give a default)",
        "pipe.yaml:8:11: batch.window: environment variable WINDOW is not set "
        "(write ${WINDOW:-default} to give a default)",
    ]


def test_variables_and_defaults_are_interpolated() -> None:
    text = VALID.replace("channel: out", "channel: ${OUT:-fallback}").replace("channel: in", "channel: ${IN}")
    result = load_text(text, "pipe.yaml", env={"IN": "from-env"})
    [pipe] = result.pipes
    assert pipe.source.options.channel == "from-env"  # type: ignore[attr-defined]
    assert pipe.target.options.channel == "fallback"  # type: ignore[attr-defined]


def test_dollar_dollar_escapes_interpolation() -> None:
    text = VALID.replace("channel: out", "channel: $${LITERAL}")
    [pipe] = load_text(text, "pipe.yaml", env={}).pipes
    assert pipe.target.options.channel == "${LITERAL}"  # type: ignore[attr-defined]


def test_bad_duration() -> None:
    [error] = errors_of(VALID + "batch: {window: soon}\n")
    assert error.startswith("pipe.yaml:8:9: batch.window: invalid duration 'soon'")


def test_a_duration_out_of_range_says_seconds() -> None:
    [error] = errors_of(VALID + "batch: {window: 10m}\n")
    assert (
        error == "pipe.yaml:8:9: batch.window: Input should be less than or equal to 300 seconds (got '10m')"
    )


def test_durations_parse() -> None:
    text = VALID + "batch: {window: 250ms}\nretry: {backoff_max: 1m, max_event_age: 2h}\n"
    [pipe] = load_text(text, "pipe.yaml", env={}).pipes
    assert pipe.config.batch.window == 0.25
    assert pipe.config.retry.backoff_max == 60
    assert pipe.config.retry.max_event_age == 7200


def test_unknown_connector_type() -> None:
    [error] = errors_of(VALID.replace("type: memory\n  channel: out", "type: kafak\n  channel: out"))
    assert error.startswith("pipe.yaml:6:3: target.type: unknown connector type 'kafak' (installed: ")


def test_connector_used_in_a_role_it_does_not_offer() -> None:
    [error] = errors_of(VALID.replace("type: memory\n  channel: in", "type: stdout\n  channel: in"))
    assert "source.type: connector 'stdout' cannot be used as a source (it offers: target)" in error


def test_missing_required_keys() -> None:
    errors = errors_of("name: x\n")
    assert any(e.startswith("pipe.yaml:1:1: source: required key is missing") for e in errors)
    assert any("target: required key is missing" in e for e in errors)


def test_all_errors_of_a_file_are_reported_at_once() -> None:
    text = VALID.replace("name: orders", "name: Bad Name") + "concurrency: 0\nbatch: {size: 0}\n"
    errors = errors_of(text)
    assert [e.split(": ")[1] for e in errors] == ["name", "concurrency", "batch.size"]


def test_invalid_pattern_is_a_config_error_with_its_position() -> None:
    text = VALID + "filter:\n  - body: {total: [{numeric: ['>>', 1]}]}\n"
    [error] = errors_of(text)
    assert error.startswith("pipe.yaml:9:") and ": filter" in error


def test_invalid_jmespath_is_a_config_error_with_its_position() -> None:
    [error] = errors_of(VALID + "filter: {jmespath: 'body.[oops'}\n")
    assert error.startswith("pipe.yaml:8:") and "filter.jmespath: invalid JMESPath expression" in error


def test_invalid_template_is_a_config_error() -> None:
    [error] = errors_of(VALID + "transform: {template: '{\"a\": <$.body..x>}'}\n")
    assert error.startswith("pipe.yaml:8:") and "transform.template" in error


def test_transform_needs_exactly_one_kind() -> None:
    [error] = errors_of(VALID + "transform: {template: 'x', jmespath: 'y'}\n")
    assert "transform: give exactly one of template or jmespath" in error


def test_duplicate_names_in_one_file() -> None:
    text = "pipes:\n" + "".join(
        "  - name: same\n    source: {type: memory, channel: a}\n    target: {type: memory, channel: b}\n"
        for _ in range(2)
    )
    [error] = errors_of(text)
    assert "pipes[1].name: pipe name 'same' is used twice in this file" in error


def test_unreadable_file(tmp_path: Path) -> None:
    result = load_file(tmp_path / "missing.yaml")
    [error] = result.errors
    assert error.startswith(f"{tmp_path / 'missing.yaml'}:1:1: cannot read file")


@pytest.mark.parametrize("path", find_files([ROOT / "configs"]), ids=lambda p: p.name)
def test_every_example_config_validates(path: Path) -> None:
    result = load_file(path, env={})
    assert result.errors == []
    assert result.pipes


def test_a_missing_variable_is_the_only_error_at_its_key() -> None:
    text = VALID.replace("  channel: in\n", "  channel: in\n  native_commit: ${NATIVE}\n")
    assert errors_of(text + "concurrency: ${WORKERS}\n") == [
        "pipe.yaml:5:18: source.native_commit: environment variable NATIVE is not set "
        "(write ${NATIVE:-default} to give a default)",
        "pipe.yaml:9:14: concurrency: environment variable WORKERS is not set "
        "(write ${WORKERS:-default} to give a default)",
    ]


def nested_aliases(levels: int) -> str:
    """A few hundred bytes that expand to 9**(levels + 1) values (a "billion laughs")."""
    lines = ['x0: &x0 ["l","l","l","l","l","l","l","l","l"]']
    for level in range(1, levels + 1):
        lines.append(f"x{level}: &x{level} [{','.join([f'*x{level - 1}'] * 9)}]")
    return VALID + "\n".join(lines) + "\n"


def test_aliases_that_expand_too_far_are_a_located_error() -> None:
    text = nested_aliases(5)  # 531,441 values from 350 bytes
    assert len(text.encode()) < 400
    assert errors_of(text) == [
        "pipe.yaml:13:10: YAML: aliases expand this file to more than 100,000 values "
        "(nested aliases?); write the values out instead"
    ]


def test_aliases_within_the_limit_load() -> None:
    text = VALID.replace(
        "source:\n  type: memory\n  channel: in", "source: &both\n  type: memory\n  channel: in"
    )
    text = text.replace("target:\n  type: memory\n  channel: out", "target: *both")
    [pipe] = load_text(text, "pipe.yaml", env={}).pipes
    assert pipe.target.options.channel == "in"  # type: ignore[attr-defined]
