"""The result writer: the result, the item manifests and the run summary, in one folder.

``result_writer.path`` receives ``result.json`` (the result records, a JSON
array with one record per line), ``result.csv`` (for grouped results: key
columns, then the aggregations), ``SUCCEEDED.jsonl`` and ``FAILED.jsonl``
(one line per item; failed ones with their error and attempts) and
``run.json`` (the run summary). Every file is written whole and renamed into
place, so a reader never sees half a file. A run that failed leaves no
result files (a stale result must not pass for this run's).

``result_target`` sends the same result records to any pipes target through
the connector contract, retrying what the target reports as retryable.
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
import random
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import orjson

from pipes.config import BoundConnector
from pipes.connector import ConnectorContext
from pipes.errors import FatalError
from pipes.events import Event
from pipes.map.model import MapRetryConfig
from pipes.map.state import RunState

__all__ = ["clear_results", "deliver_results", "write_manifests", "write_results", "write_summary"]

RESULT_FILES = ("result.json", "result.csv")
_TARGET_BATCH = 100


def _atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _json_lines(values: Iterable[Any]) -> bytes:
    return b"".join(orjson.dumps(value, default=str) + b"\n" for value in values)


def write_results(
    folder: str, records: Sequence[dict[str, Any]], grouped: bool, value_fields: Sequence[str] = ()
) -> None:
    """``value_fields`` go last in the CSV, after every key column of every grouping set."""
    out = Path(folder)
    lines = [orjson.dumps(record, default=str) for record in records]
    _atomic(out / "result.json", b"[\n" + b",\n".join(lines) + b"\n]\n" if lines else b"[]\n")
    if grouped:
        _atomic(out / "result.csv", _csv(records, value_fields).encode("utf-8"))
    else:
        (out / "result.csv").unlink(missing_ok=True)


def _csv(records: Sequence[dict[str, Any]], value_fields: Sequence[str]) -> str:
    columns: dict[str, None] = {}
    for record in records:
        columns.update(dict.fromkeys(k for k in record if k not in value_fields))
    columns.update(dict.fromkeys(value_fields))
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(columns)
    for record in records:
        writer.writerow([_cell(record.get(column)) for column in columns])
    return text.getvalue()


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return orjson.dumps(value, default=str).decode()
    return value


def clear_results(folder: str) -> None:
    for name in RESULT_FILES:
        (Path(folder) / name).unlink(missing_ok=True)


def write_manifests(folder: str, state: RunState) -> None:
    out = Path(folder)
    items = state.items
    _atomic(out / "SUCCEEDED.jsonl", _json_lines({"item": items[i].path} for i in sorted(state.done)))
    _atomic(
        out / "FAILED.jsonl",
        _json_lines(
            {"item": items[i].path, "error": f.error, "attempts": f.attempts}
            for i, f in sorted(state.failed.items())
        ),
    )


def write_summary(folder: str, summary: dict[str, Any]) -> None:
    _atomic(Path(folder) / "run.json", orjson.dumps(summary, option=orjson.OPT_INDENT_2) + b"\n")


async def deliver_results(
    bound: BoundConnector,
    records: Sequence[dict[str, Any]],
    name: str,
    state_dir: str,
    retry: MapRetryConfig,
) -> str | None:
    """Writes every record to the target; None when all were delivered, else why not (one line)."""
    target = bound.build_target()
    try:
        await target.start(ConnectorContext(pipe=name, state_dir=state_dir))
        for start in range(0, len(records), _TARGET_BATCH):
            events = [
                Event(record={"body": record}, partition=name, position=start + i, payload=record)
                for i, record in enumerate(records[start : start + _TARGET_BATCH])
            ]
            error = await _write_with_retries(target, events, retry)
            if error is not None:
                return f"result_target ({bound.type}): {error}"
        return None
    except Exception as exc:  # a target that cannot start is the run's failure, said in one line
        return f"result_target ({bound.type}): {type(exc).__name__}: {exc}"
    finally:
        await target.stop()


async def _write_with_retries(target: Any, events: list[Event], retry: MapRetryConfig) -> str | None:
    attempt = 0
    while events:
        attempt += 1
        try:
            outcomes = await target.write(events)
        except Exception as exc:
            outcomes = [exc] * len(events)
        failed = [
            (event, outcome) for event, outcome in zip(events, outcomes, strict=True) if outcome is not None
        ]
        fatal = [outcome for _, outcome in failed if isinstance(outcome, FatalError)]
        if fatal:
            return f"{len(fatal)} result records rejected: {fatal[0]}"
        if failed and attempt >= retry.max_attempts:
            return f"{len(failed)} result records not delivered after {attempt} attempts: {failed[0][1]}"
        events = [event for event, _ in failed]
        if events:
            backoff = min(retry.backoff_max, retry.backoff_initial * 2 ** (attempt - 1))
            await asyncio.sleep(random.uniform(0, backoff))
    return None
