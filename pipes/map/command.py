"""``pipes map FILE`` and the map-file side of ``pipes validate``, for ``pipes/cli.py`` to call.

Exit codes, as for the other commands: 0 the run succeeded, 1 an invalid map
file or a failed run (too many failed items, a result target that refused the
result), 2 a bad argument, 130 interrupted (run it again to resume). Every
run ends with one summary line on stderr (with ``--log-format json``, every line is a
JSON object and the ``map_finished`` event is the summary).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from pipes.config import find_files
from pipes.map.executors import ExecutorError, start_fork_server
from pipes.map.items import ItemsError
from pipes.map.job import MapError, MapJob, MapOptions
from pipes.map.loader import is_map_file, load_map_file
from pipes.map.progress import summary_line
from pipes.map.state import StateError
from pipes.observe import LogOutput, configure_logging

__all__ = ["parse_executor", "parse_workers", "run_map", "split_map_files", "validate_map_files"]


def parse_workers(text: str) -> int:
    """``--workers``: a positive number, or ``auto`` (the number of cores)."""
    if text == "auto":
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: use a number of workers, or auto") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: at least 1 worker")
    return value


def parse_executor(text: str) -> str:
    if text in ("local", "dask") or (text.startswith("dask://") and len(text) > len("dask://")):
        return text
    raise argparse.ArgumentTypeError(f"{text!r}: use local, dask or dask://HOST:PORT")


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is at the time, so log lines go above a live progress bar."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def run_map(
    path: str,
    *,
    workers: int,
    executor: str = "local",
    restart: bool = False,
    redrive: bool = False,
    state_dir: str = "state",
    log_format: str = "console",
    progress: bool = True,
) -> int:
    log = configure_logging(log_format, stream=_CurrentStderr())
    try:
        return _run_map(
            log,
            path,
            workers=workers,
            executor=executor,
            restart=restart,
            redrive=redrive,
            state_dir=state_dir,
            progress=progress,
        )
    finally:
        log.close()


def _run_map(
    log: LogOutput,
    path: str,
    *,
    workers: int,
    executor: str,
    restart: bool,
    redrive: bool,
    state_dir: str,
    progress: bool,
) -> int:
    if executor == "local":
        start_fork_server()
    result = load_map_file(path)
    if result.definition is None:
        for line in result.errors:
            log.say("config_invalid", line, level="error", error=line)
        return 1
    definition = result.definition
    config = definition.config
    if config.max_concurrency is not None and executor == "local":
        workers = min(workers, config.max_concurrency)
    options = MapOptions(
        workers=workers,
        executor=executor,
        restart=restart,
        redrive=redrive,
        state_dir=state_dir,
        progress=progress and not log.json and sys.stderr.isatty(),
        log_events=log.json,
    )
    job = MapJob(definition, options)
    signals = 0

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal signals
        signals += 1
        name = signal.Signals(signum).name
        if signals > 1:
            # The checkpoint on disk is whole (written atomically); the next run resumes from it.
            log.say(
                "signal_received", f"pipes map: {name} again, exiting at once", signal=name, action="exit"
            )
            os._exit(128 + signum)
        text = f"pipes map: {name}, stopping (again to exit at once)"
        log.say("signal_received", text, signal=name, action="stop")
        job.request_stop()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        summary: dict[str, Any] = job.run()
    except (MapError, StateError, ItemsError, ExecutorError) as exc:
        log.say("map_error", f"pipes map: {exc}", level="error", error=str(exc))
        return 1
    except OSError as exc:  # a checkpoint or result file that cannot be written (disk full, removed)
        where = f"{exc.filename}: " if exc.filename else ""
        problem = f"{where}{exc.strerror or exc}; the last checkpoint stays, run pipes map again to resume"
        log.say("map_error", f"pipes map: {problem}", level="error", error=problem)
        return 1
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if not log.json:  # with JSON logs, the job's map_finished event is the summary
        print(summary_line(summary), file=sys.stderr)
    if summary["status"] == "INTERRUPTED":
        return 130
    return 0 if summary["status"] == "SUCCEEDED" else 1


def split_map_files(paths: Sequence[str]) -> tuple[list[str], list[str]]:
    """The map files among ``paths`` (files, or found in folders), and everything else to load as pipes."""
    maps: list[str] = []
    rest: list[str] = []
    for entry in paths:
        if not Path(entry).is_dir():
            (maps if is_map_file(entry) else rest).append(entry)
            continue
        found = [str(f) for f in find_files([entry])]
        found_maps = [f for f in found if is_map_file(f)]
        maps += found_maps
        others = [f for f in found if f not in found_maps]
        rest += others if found_maps else [entry]
    return maps, rest


def validate_map_files(paths: Sequence[str]) -> tuple[list[str], list[str]]:
    """``pipes validate`` of map files: (ok lines for stdout, error lines for stderr)."""
    ok: list[str] = []
    errors: list[str] = []
    for path in paths:
        result = load_map_file(path)
        errors += result.errors
        if result.definition is not None:
            ok.append(f"{path}: {result.definition.name}: ok (map)")
    return ok, errors
