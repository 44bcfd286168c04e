"""The python connector: user functions as targets and enrichers."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from connectors.python import (
    PythonEnricher,
    PythonOptions,
    PythonTarget,
    connector,
    load_function,
)
from pipes.connector import ConnectorContext
from pipes.errors import ConfigError, FatalError, RetryableError
from pipes.events import Event

# -- functions the tests point the connector at ------------------------------------

CALLS: list[dict[str, Any]] = []


def sync_sink(payloads: list[Any], options: dict[str, Any]) -> None:
    CALLS.append({"payloads": payloads, "options": options, "thread": threading.current_thread().name})


def sink_without_options(payloads: list[Any]) -> None:
    CALLS.append({"payloads": payloads})


async def async_per_event(payloads: list[Any]) -> list[Any]:
    return [p["answer"] for p in payloads]


def lambda_style(payloads: list[Any], **kwargs: Any) -> dict[str, Any]:
    CALLS.append({"kwargs": kwargs})
    return {
        "batchItemFailures": [{"itemIdentifier": str(i)} for i, p in enumerate(payloads) if p.get("fail")]
    }


def malformed_lambda(payloads: list[Any]) -> dict[str, Any]:
    return {"batchItemFailures": [{"itemIdentifier": "99"}]}


def wrong_length(payloads: list[Any]) -> list[Any]:
    return [None]


def raises(payloads: list[Any]) -> None:
    raise ConnectionError("backend down")


async def raises_fatal(payloads: list[Any]) -> None:
    raise FatalError("rejected for good")


def enrich_by_kind(records: list[dict[str, Any]]) -> list[Any]:
    out: list[Any] = []
    for record in records:
        kind = record["body"]["kind"]
        if kind == "one":
            out.append({**record["body"], "enriched": True})
        elif kind == "many":
            out.append([{"part": 1}, {"part": 2}])
        elif kind == "empty":
            out.append([])
        elif kind == "drop":
            out.append(None)
        else:
            out.append(FatalError(f"unknown kind {kind}"))
    return out


async def enrich_async(records: list[dict[str, Any]], options: dict[str, Any]) -> list[Any]:
    return [{"n": r["body"]["n"] * options["factor"]} for r in records]


def enrich_returns_none(records: list[dict[str, Any]]) -> None:
    return None


NOT_CALLABLE = 42


# -- helpers ----------------------------------------------------------------------


def spec(name: str) -> str:
    return f"{__name__}:{name}"


def events(*bodies: Any) -> list[Event]:
    return [
        Event(record={"body": body}, partition="p", position=i, payload=body) for i, body in enumerate(bodies)
    ]


async def target_for(name: str, **options: Any) -> PythonTarget:
    target = PythonTarget(PythonOptions.model_validate({"function": spec(name), **options}))
    await target.start(ConnectorContext(pipe="t"))
    return target


async def enricher_for(name: str, **options: Any) -> PythonEnricher:
    enricher = PythonEnricher(PythonOptions.model_validate({"function": spec(name), **options}))
    await enricher.start(ConnectorContext(pipe="t"))
    return enricher


@pytest.fixture(autouse=True)
def clear_calls() -> None:
    CALLS.clear()


# -- target -----------------------------------------------------------------------


async def test_sync_function_gets_payloads_and_options_in_a_thread() -> None:
    target = await target_for("sync_sink", options={"table": "orders"})
    outcomes = await target.write(events({"a": 1}, "text"))
    assert outcomes == [None, None]
    assert CALLS[0]["payloads"] == [{"a": 1}, "text"]
    assert CALLS[0]["options"] == {"table": "orders"}
    assert CALLS[0]["thread"] != threading.main_thread().name
    await target.stop()


async def test_options_are_passed_only_when_accepted() -> None:
    target = await target_for("sink_without_options", options={"ignored": True})
    assert await target.write(events(1)) == [None]
    assert CALLS == [{"payloads": [1]}]
    kwargs_target = await target_for("lambda_style", options={"x": 1})
    await kwargs_target.write(events({}))
    assert CALLS[-1] == {"kwargs": {"options": {"x": 1}}}


async def test_async_function_per_event_outcomes() -> None:
    target = await target_for("async_per_event")
    value_error = ValueError("bad value")
    fatal = FatalError("never")
    answers = [None, True, value_error, "try later", False, fatal]
    outcomes = await target.write(events(*({"answer": a} for a in answers)))
    assert outcomes[:3] == [None, None, value_error]
    assert isinstance(outcomes[3], RetryableError)
    assert str(outcomes[3]) == "try later"
    assert isinstance(outcomes[4], RetryableError)
    assert outcomes[5] is fatal


async def test_batch_item_failures() -> None:
    target = await target_for("lambda_style")
    outcomes = await target.write(events({}, {"fail": True}, {}, {"fail": True}))
    assert outcomes[0] is None
    assert outcomes[2] is None
    assert isinstance(outcomes[1], RetryableError)
    assert isinstance(outcomes[3], RetryableError)
    assert "item 1" in str(outcomes[1])


async def test_malformed_batch_item_failures_fail_the_batch() -> None:
    target = await target_for("malformed_lambda")
    outcomes = await target.write(events({}, {}))
    assert all(isinstance(o, RetryableError) for o in outcomes)
    assert "malformed" in str(outcomes[0])


async def test_wrong_number_of_results_is_fatal_for_the_batch() -> None:
    target = await target_for("wrong_length")
    outcomes = await target.write(events(1, 2, 3))
    assert len(outcomes) == 3
    assert all(isinstance(o, FatalError) for o in outcomes)
    assert "returned 1 results for 3 events" in str(outcomes[0])


async def test_raising_fails_the_batch_retryably() -> None:
    target = await target_for("raises")
    with pytest.raises(RetryableError, match="raised ConnectionError: backend down"):
        await target.write(events(1))


async def test_raising_fatal_stays_fatal() -> None:
    target = await target_for("raises_fatal")
    with pytest.raises(FatalError, match="rejected for good"):
        await target.write(events(1))


# -- enricher ---------------------------------------------------------------------


async def test_enricher_replaces_fans_out_and_drops() -> None:
    enricher = await enricher_for("enrich_by_kind")
    results = await enricher.enrich(
        events({"kind": "one"}, {"kind": "many"}, {"kind": "empty"}, {"kind": "drop"}, {"kind": "?"})
    )
    assert results[:4] == [
        [{"kind": "one", "enriched": True}],
        [{"part": 1}, {"part": 2}],
        [],
        [],
    ]
    assert isinstance(results[4], FatalError)
    await enricher.stop()


async def test_async_enricher_with_options() -> None:
    enricher = await enricher_for("enrich_async", options={"factor": 10})
    assert await enricher.enrich(events({"n": 1}, {"n": 2})) == [[{"n": 10}], [{"n": 20}]]


async def test_enricher_must_return_one_item_per_record() -> None:
    enricher = await enricher_for("enrich_returns_none")
    results = await enricher.enrich(events({"n": 1}))
    assert isinstance(results[0], FatalError)
    assert "must return a list with 1 items" in str(results[0])


# -- configuration ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("function", "message"),
    [
        ("no_such_module_xyz:f", "python: cannot import 'no_such_module_xyz:f': No module named"),
        (f"{__name__}:missing", f"python: cannot import '{__name__}:missing':"),
        (f"{__name__}:NOT_CALLABLE", "is not callable"),
        ("just_a_module", "must be written 'package.module:function'"),
    ],
)
def test_import_errors_are_one_line_config_errors(function: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_function(function)
    assert message in str(info.value)
    assert "\n" not in str(info.value)
    # The options model reports the same line, so `pipes validate` shows it with file:line.
    with pytest.raises(ValidationError, match="python: "):
        PythonOptions(function=function)


def test_construction_without_validation_still_raises_config_error() -> None:
    options = PythonOptions.model_construct(function="no_such_module_xyz:f", options={})
    with pytest.raises(ConfigError, match="cannot import"):
        PythonTarget(options)


def test_module_in_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pipes_test_handlers_cwd.py").write_text("def handle(payloads):\n    return None\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    monkeypatch.delitem(sys.modules, "pipes_test_handlers_cwd", raising=False)
    try:
        assert callable(load_function("pipes_test_handlers_cwd:handle"))
    finally:
        sys.modules.pop("pipes_test_handlers_cwd", None)


def test_options_documented_and_descriptor() -> None:
    for name, field in PythonOptions.model_fields.items():
        assert field.description, name
    with pytest.raises(ValidationError):
        PythonOptions.model_validate({"function": spec("sync_sink"), "extra": 1})
    assert connector.name == "python"
    assert connector.roles == ["target", "enricher"]
