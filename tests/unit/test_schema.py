"""``pipes schema`` accepts what ``pipes validate`` accepts: every example of the project, and refuses the same mistakes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from helpers import ROOT, documented_pipes

from pipes.config import load_text
from pipes.map.loader import is_map_file
from pipes.schema import pipe_file_schema

SCHEMA = pipe_file_schema()
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def project_files() -> list[tuple[str, str]]:
    files = sorted((ROOT / "configs").rglob("*.y*ml")) + sorted((ROOT / "examples").rglob("*.y*ml"))
    files = [f for f in files if not is_map_file(f)]  # map files are `pipes map`'s, with their own format
    return [(str(f.relative_to(ROOT)), f.read_text()) for f in files] + documented_pipes()


def schema_errors(text: str) -> list[str]:
    value: Any = yaml.safe_load(text)
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in VALIDATOR.iter_errors(value)]


def test_the_schema_is_a_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


@pytest.mark.parametrize(("where", "text"), project_files(), ids=[w for w, _ in project_files()])
def test_every_pipe_of_the_project_passes_the_schema(where: str, text: str) -> None:
    assert schema_errors(text) == []


def test_the_project_has_files_to_check() -> None:
    where = [w for w, _ in project_files()]
    assert any(w.startswith("configs/") for w in where)
    assert any(w.startswith("examples/") for w in where)
    assert sum(w.startswith(("docs/", "README")) for w in where) >= 10


PIPE = "name: p\nsource: {type: generator, count: 5}\ntarget: {type: stdout}\n"

VALID = {
    "durations as text and as seconds": PIPE
    + "batch: {window: 200ms}\nretry: {backoff_max: 1.5, max_event_age: null}\n",
    "interpolated numbers and patterns": PIPE.replace("count: 5", "count: '${N:-100}'").replace(
        "name: p", "name: ${NAME:-p}"
    )
    + "concurrency: ${WORKERS:-2}\n",
    "the list form": "pipes:\n  - " + PIPE.replace("\n", "\n    ").rstrip() + "\n",
    "a filter as a list": PIPE + "filter:\n  - body: {detail-type: [OrderPlaced]}\n",
    "connector options with durations": PIPE.replace(
        "type: generator, count: 5", "type: file, path: in.jsonl, poll_interval: 250ms"
    ),
    "an enrichment merged into a key": PIPE
    + "enrichment: {type: redis_lookup, url: 'redis://localhost', key: 'c:<$.body.id>', into: customer}\n",
}


@pytest.mark.parametrize("text", VALID.values(), ids=VALID.keys())
def test_what_validate_accepts_the_schema_accepts(text: str) -> None:
    env = {"N": "100", "NAME": "p", "WORKERS": "2"}
    assert load_text(text, "pipe.yaml", env=env).errors == []
    assert schema_errors(text) == []


INVALID = {
    "a duration that is not one": PIPE + "batch: {window: soon}\n",
    "a negative duration": PIPE + "batch: {window: -1}\n",
    "an unknown key": PIPE + "batchsize: 10\n",
    "no target": "name: p\nsource: {type: generator}\n",
    "an unknown connector option": PIPE.replace("count: 5", "cuont: 5"),
    "an unknown connector type": PIPE.replace("type: stdout", "type: stdot"),
    "a connector in a role it does not offer": PIPE.replace("type: generator, count: 5", "type: stdout"),
    "a key beside pipes:": "pipes: []\nname: p\n",
    "both template and jmespath": PIPE + "transform: {template: 'x', jmespath: 'y'}\n",
    "a bad name": PIPE.replace("name: p", "name: Orders!"),
}


@pytest.mark.parametrize("text", INVALID.values(), ids=INVALID.keys())
def test_what_validate_refuses_the_schema_refuses(text: str) -> None:
    assert load_text(text, "pipe.yaml", env={}).errors != []
    assert schema_errors(text) != []


def test_pipes_schema_prints_it(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from pipes.cli import main

    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(SCHEMA))


def test_a_class_by_module_path_takes_any_options(tmp_path: Path) -> None:
    assert schema_errors(PIPE.replace("type: stdout", "type: mypkg.sinks:Sink, anything: 1")) == []
