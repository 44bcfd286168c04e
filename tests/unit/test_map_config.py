"""Map files: every error is one located line, all errors of a file at once, as for pipe files."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pipes.map.loader import is_map_file, load_map_text

ROOT = Path(__file__).resolve().parents[2]
LINE = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+):(?P<col>\d+): (?P<rest>.+)$")

VALID = """\
name: temps
items: data/**/*.csv.gz
item_reader:
  format: csv
  columns: [station, date, element, value]
  types: {value: int}
filter:
  - body: {element: [TMAX]}
reduce:
  group_by: {jmespath: body.station}
  aggregations:
    avg_high: {avg: body.value}
    days: count
"""


def errors_of(text: str, env: dict[str, str] | None = None) -> list[str]:
    result = load_map_text(text, "map.yaml", env=env or {})
    assert result.definition is None
    for line in result.errors:
        assert "\n" not in line
        assert LINE.match(line), line
    return result.errors


def test_a_valid_map_file_loads_with_defaults() -> None:
    result = load_map_text(VALID, "map.yaml", env={})
    assert result.errors == []
    definition = result.definition
    assert definition is not None
    assert definition.name == "temps"
    config = definition.config
    assert config.items.paths == ["data/**/*.csv.gz"]
    assert config.item_reader.has_header is False  # columns given: no header row by default
    assert config.retry.max_attempts == 3
    assert config.reduce.group_by is not None and len(config.reduce.group_by) == 1
    assert config.reduce.aggregations["days"].kind == "count"
    assert config.reduce.aggregations["days"].expression == "@"


def test_the_name_defaults_to_the_file_name() -> None:
    result = load_map_text(VALID.replace("name: temps\n", ""), "some/Monthly Max.yaml", env={})
    assert result.definition is not None
    assert result.definition.name == "monthly-max"


def test_unknown_key_names_its_path_and_position() -> None:
    [error] = errors_of(VALID.replace("  types: {value: int}\n", "  types: {value: int}\n  delimeter: ';'\n"))
    assert error == (
        "map.yaml:7:3: item_reader.delimeter: unknown key (check the spelling; see the docs for the accepted keys)"
    )


def test_all_errors_of_a_file_at_once_in_file_order() -> None:
    text = (
        VALID.replace("format: csv", "format: xml")
        .replace("avg_high: {avg: body.value}", "avg_high: {avg: body.value, max: body.value}")
        .replace("name: temps", "name: Temps!")
    )
    errors = errors_of(text)
    assert [e.split(": ")[1] for e in errors] == [
        "name",
        "item_reader.format",
        "reduce.aggregations.avg_high",
    ]
    assert errors[2].startswith("map.yaml:12:5: reduce.aggregations.avg_high: give exactly one of count, sum")


def test_an_invalid_pattern_points_into_the_filter() -> None:
    [error] = errors_of(VALID.replace("{element: [TMAX]}", "{element: [{prefix: 3}]}"))
    assert error.startswith("map.yaml:8:5: filter[0].body.element[0].prefix: ")


def test_invalid_jmespath_in_a_key_and_an_aggregation() -> None:
    text = VALID.replace("{jmespath: body.station}", "{jmespath: 'body.['}").replace(
        "{avg: body.value}", "{avg: 'value ==='}"
    )
    errors = errors_of(text)
    assert errors[0].startswith("map.yaml:10:14: reduce.group_by.jmespath: invalid JMESPath expression:")
    assert errors[1].startswith(
        "map.yaml:12:16: reduce.aggregations.avg_high.avg: invalid JMESPath expression:"
    )


def test_an_invalid_template_transform() -> None:
    [error] = errors_of(VALID + "transform: {template: '{\"a\": <$.body.value}'}\n")
    assert error.startswith("map.yaml:14:13: transform.template: invalid input template at offset")


def test_a_function_that_cannot_be_imported() -> None:
    [error] = errors_of(VALID + "map: {function: 'no_such_module_here:fn'}\n")
    assert (
        error
        == "map.yaml:14:7: map.function: cannot import 'no_such_module_here:fn': No module named 'no_such_module_here'"
    )


def test_csv_options_on_another_format_and_types_of_unknown_columns() -> None:
    errors = errors_of(VALID.replace("format: csv", "format: jsonl"))
    assert errors == ["map.yaml:3:1: item_reader: columns, types: only for format csv"]
    errors = errors_of(VALID.replace("types: {value: int}", "types: {valu: int}"))
    assert errors == ["map.yaml:3:1: item_reader: types: valu not among the columns"]


def test_json_formats_are_utf_8_and_say_so_when_given_another_encoding() -> None:
    jsonl = VALID.replace("format: csv", "format: jsonl").replace("  types: {value: int}\n", "")
    jsonl = jsonl.replace("  columns: [station, date, element, value]\n", "")
    for encoding in ("utf-8", "UTF8"):
        given = jsonl.replace("format: jsonl", f"format: jsonl\n  encoding: {encoding}")
        assert load_map_text(given, "map.yaml", env={}).errors == []
    assert errors_of(jsonl.replace("format: jsonl", "format: jsonl\n  encoding: latin-1")) == [
        "map.yaml:3:1: item_reader: encoding: jsonl files are read as UTF-8 (the encoding JSON uses)"
    ]


def test_reduce_needs_aggregations_or_a_function_not_both() -> None:
    errors = errors_of(VALID + "  function: os.path:join\n")
    assert errors == ["map.yaml:9:1: reduce: give aggregations or function (one of them)"]


def test_missing_required_keys_and_variables() -> None:
    errors = errors_of("items: ${DATA}/*.csv\n")
    assert errors == [
        "map.yaml:1:1: item_reader: required key is missing",
        "map.yaml:1:1: reduce: required key is missing",
        "map.yaml:1:8: items: environment variable DATA is not set (write ${DATA:-default} to give a default)",
    ]


def test_durations_sizes_and_tolerances_parse() -> None:
    text = VALID + (
        "item_batcher: {max_items: 50, max_bytes: 64MB}\nretry: {backoff_initial: 250ms, backoff_max: 1m}\n"
        "tolerated_failure_percentage: 2.5\ncheckpoint_interval: 500ms\n"
    )
    result = load_map_text(text, "map.yaml", env={})
    assert result.definition is not None
    config = result.definition.config
    assert config.item_batcher.max_bytes == 64_000_000
    assert config.retry.backoff_initial == 0.25
    assert config.retry.backoff_max == 60
    assert config.checkpoint_interval == 0.5
    assert config.tolerated_failure_percentage == 2.5
    assert config.tolerated_failure_count is None


def test_a_result_target_is_validated_by_its_connector() -> None:
    errors = errors_of(VALID + "result_target: {type: file, pth: out.jsonl}\n")
    assert errors[0] == "map.yaml:14:1: result_target.path: required key is missing"
    assert errors[1].startswith("map.yaml:14:29: result_target.pth: unknown key")
    [error] = errors_of(VALID + "result_target: {type: nosuch}\n")
    assert error.startswith("map.yaml:14:17: result_target.type: unknown connector type 'nosuch'")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (VALID, True),
        ("name: x\nsource: {type: generator}\ntarget: {type: stdout}\n", False),
        ("pipes:\n  - items: 1\n", False),
        ("a:\n  items: 1\n", False),
        ("[1, 2]\n", False),
        ("description: x\nitems: [a]\n", True),
        ("nested: {items: 1}\nitems: b\n", True),
        ("{unclosed\n", False),
    ],
)
def test_a_map_file_is_recognised_by_its_top_level_items_key(
    tmp_path: Path, text: str, expected: bool
) -> None:
    path = tmp_path / "f.yaml"
    path.write_text(text)
    assert is_map_file(path) is expected


@pytest.mark.parametrize("name", ["monthly-max.yaml", "monthly-max-python.yaml"])
def test_the_weather_examples_validate(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    text = (ROOT / "examples" / "weather" / name).read_text()
    result = load_map_text(text, name, env={}, cwd=str(ROOT))
    assert result.errors == []


def map_blocks() -> list[tuple[str, str]]:
    found = []
    doc = ROOT / "docs" / "map.md"
    for index, block in enumerate(re.findall(r"```yaml\n(.*?)```", doc.read_text(), re.S)):
        if re.search(r"^items:", block, re.M) and "reduce:" in block and "module:" not in block:
            found.append((f"docs/map.md#{index}", block))
    return found


@pytest.mark.parametrize(("where", "text"), map_blocks(), ids=[w for w, _ in map_blocks()])
def test_documented_map_files_validate(where: str, text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    result = load_map_text(text, where, env={}, cwd=str(ROOT))
    assert result.errors == []


def test_the_docs_have_map_files_to_check() -> None:
    assert len(map_blocks()) >= 2
