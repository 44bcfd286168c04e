"""What runs in a worker: one task (a batch of items) to one partial reduction.

``run_task`` is the only entry point an executor calls, in a pool process or
on a Dask worker. The job is compiled from its spec once per process and kept
(``_compiled``), so a task costs only its items. Every item is reduced into
its own partial, merged into the task's partial only when the whole item
succeeded: a file that fails half way contributes nothing, and the job can
retry it or list it as failed without counting any of its records twice.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipes.map.errors import ItemDataError, is_retryable
from pipes.map.items import Item, open_item
from pipes.map.model import MapConfig
from pipes.map.readers import ItemReader, ReadStats
from pipes.map.reduce import Partial, Reduction, build_reduction
from pipes.map.stages import Getter, accepts_options, compile_filter, compile_value, load_function

__all__ = ["CompiledJob", "ItemFailure", "JobSpec", "Task", "TaskResult", "compile_job", "run_task"]


@dataclass(frozen=True)
class JobSpec:
    """What a worker needs to rebuild the job: the validated config as JSON, and where relative paths start."""

    config_json: str
    cwd: str


@dataclass(frozen=True)
class Task:
    id: int
    items: tuple[Item, ...]


@dataclass(frozen=True)
class ItemFailure:
    index: int
    error: str
    retryable: bool


@dataclass
class TaskResult:
    """A task's outcome: the partial of its successful items, and what happened to each item."""

    task_id: int
    partial: Partial
    done: list[int] = field(default_factory=list)
    failed: list[ItemFailure] = field(default_factory=list)
    records: int = 0  # read, before the filter
    passed: int = 0  # through the filter
    mapped: int = 0  # values handed to the reduction
    bytes: int = 0  # stored size of the done items
    cpu_s: float = 0.0


@dataclass
class CompiledJob:
    reader: ItemReader
    transform: Getter | None
    map_function: Callable[..., Any] | None
    map_kwargs: dict[str, Any]
    map_batch_size: int
    reduction: Reduction
    cwd: str


def compile_job(config: MapConfig, cwd: str) -> CompiledJob:
    """Compiles every stage; raises ``StageError`` or ``ValueError`` (the loader locates them)."""
    record_filter = compile_filter(config.filter) if config.filter is not None else None
    transform = compile_value(config.transform) if config.transform is not None else None
    map_function = kwargs = None
    if config.map is not None:
        map_function = load_function(config.map.function, cwd)
        kwargs = {"options": config.map.options} if accepts_options(map_function) else {}
    return CompiledJob(
        reader=ItemReader(config.item_reader, record_filter),
        transform=transform,
        map_function=map_function,
        map_kwargs=kwargs or {},
        map_batch_size=config.map.batch_size if config.map is not None else 0,
        reduction=build_reduction(config.reduce, cwd),
        cwd=cwd,
    )


@functools.lru_cache(maxsize=8)
def _compiled(spec: JobSpec) -> CompiledJob:
    return compile_job(MapConfig.model_validate_json(spec.config_json), spec.cwd)


def run_task(spec: JobSpec, task: Task) -> TaskResult:
    """Reads, filters, maps and reduces every item of ``task``; never raises for an item's failure."""
    started = time.process_time()
    job = _compiled(spec)
    reduction = job.reduction
    result = TaskResult(task.id, reduction.new())
    for item in task.items:
        try:
            partial, counts = _run_item(job, item)
            # All or nothing: an item whose states cannot join the others' (its max a text, theirs
            # a number) fails here, and the task's partial stays as it was.
            reduction.merge(result.partial, partial)
        except Exception as exc:  # every failure of an item is reported, never raised
            result.failed.append(ItemFailure(item.index, describe(exc), is_retryable(exc)))
            continue
        result.done.append(item.index)
        result.records += counts[0]
        result.passed += counts[1]
        result.mapped += counts[2]
        result.bytes += item.size
    reduction.seal(result.partial)
    result.cpu_s = time.process_time() - started
    return result


def describe(exc: BaseException) -> str:
    if isinstance(exc, ItemDataError):
        return str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _run_item(job: CompiledJob, item: Item) -> tuple[Partial, tuple[int, int, int]]:
    reduction = job.reduction
    partial = reduction.new()
    stats = ReadStats()
    passed = mapped = seq = 0
    pending: list[Any] = []
    with open_item(item.path, job.cwd) as raw:
        for batch in job.reader.read(raw, item.path, stats):
            passed += len(batch)
            values: Sequence[Any] = batch
            if job.transform is not None:
                values = _transform(job.transform, batch)
            if job.map_function is not None:
                pending.extend(values)
                if len(pending) < job.map_batch_size:
                    continue
                values = _map(job, pending)
                pending = []
            mapped += len(values)
            seq = reduction.add(partial, values, item.index, seq)
    if pending:
        values = _map(job, pending)
        mapped += len(values)
        reduction.add(partial, values, item.index, seq)
    return partial, (stats.records, passed, mapped)


def _transform(transform: Getter, batch: list[dict[str, Any]]) -> list[Any]:
    out = []
    for record in batch:
        try:
            out.append(transform(record))
        except (ValueError, TypeError, KeyError) as exc:
            raise ItemDataError(f"line {record.get('line')}: transform failed: {exc}") from None
    return out


def _map(job: CompiledJob, records: list[Any]) -> list[Any]:
    assert job.map_function is not None
    out: list[Any] = []
    size = job.map_batch_size
    for start in range(0, len(records), size):
        result = job.map_function(records[start : start + size], **job.map_kwargs)
        if result is None:
            continue
        if isinstance(result, str | bytes | dict) or not hasattr(result, "__iter__"):
            raise ItemDataError(
                f"map function returned {type(result).__name__}; it must return a list of values (or None)"
            )
        out.extend(result)
    return out
