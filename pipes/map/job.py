"""One run of a map file: items -> tasks -> executor -> merged partials -> result.

``MapJob.run`` owns the policy, the executors only run tasks:

- **Which run.** A run that was interrupted (state ``RUNNING``) resumes;
  one that ended (``SUCCEEDED`` / ``FAILED``) is followed by a new run;
  ``restart`` always starts a new one; ``redrive`` puts the failed items (and,
  after a failed run, those it never reached) back and merges their results
  into the earlier ones, as Step Functions' redrive does.
- **Hand-out.** Pending items are cut into tasks (``item_batcher``) and at
  most ``max_concurrency`` tasks (default: two per worker) are in flight, so
  workers are never idle and memory stays bounded.
- **Failures.** An item that fails with a retryable error is retried alone,
  after an exponential backoff with jitter, up to ``retry.max_attempts``; a
  data error fails it at once. A failed item counts against
  ``tolerated_failure_count`` / ``tolerated_failure_percentage``; once past
  either, the run stops and fails.
- **Checkpoints.** At most every ``checkpoint_interval``, and when the run
  stops for any reason, the done set and the merged partial are saved together
  (``pipes.map.state``).
"""

from __future__ import annotations

import heapq
import os
import random
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import structlog

from pipes.clock import iso_utc
from pipes.errors import PipesError
from pipes.map.errors import is_retryable
from pipes.map.executors import Executor, make_executor
from pipes.map.items import Item, batch_items, list_items
from pipes.map.loader import MapDefinition
from pipes.map.progress import MapProgress
from pipes.map.reduce import Reduction, build_reduction
from pipes.map.results import clear_results, deliver_results, write_manifests, write_results, write_summary
from pipes.map.state import Failure, RunState, StateStore
from pipes.map.worker import JobSpec, Task, TaskResult, describe

__all__ = ["MapError", "MapJob", "MapOptions"]

#: How often the job wakes up with nothing finished (progress, retries due, signals).
_TICK_S = 0.25


class MapError(PipesError):
    """The run cannot start (nothing to redrive, the map file changed under a run): one line."""


@dataclass(frozen=True)
class MapOptions:
    workers: int
    executor: str = "local"
    restart: bool = False
    redrive: bool = False
    state_dir: str = "state"
    progress: bool = False
    #: Log map_started / map_finished (JSON logs); item failures are always logged.
    log_events: bool = False


class MapJob:
    def __init__(self, definition: MapDefinition, options: MapOptions, cwd: str | None = None) -> None:
        self.definition = definition
        self.config = definition.config
        self.options = options
        self.cwd = cwd or os.getcwd()
        self.log = structlog.get_logger().bind(map=definition.name)
        self.store = StateStore(Path(options.state_dir) / "map" / definition.name)
        self.result_path = (
            self.config.result_writer.path if self.config.result_writer else f"out/{definition.name}"
        )
        self._stop_requested = False
        self._reduction: Reduction | None = None
        self._elapsed_before = 0.0

    def request_stop(self) -> None:
        """From a signal handler: stop handing out tasks, checkpoint, return ``INTERRUPTED``."""
        self._stop_requested = True

    # ------------------------------------------------------------------------------ the run

    def run(self) -> dict[str, Any]:
        """Runs to the end (or to a stop); returns the summary (``status`` says how it ended)."""
        self.store.lock()
        try:
            return self._run()
        finally:
            self.store.unlock()

    def _run(self) -> dict[str, Any]:
        started = time.monotonic()
        self._reduction = reduction = build_reduction(self.config.reduce, self.cwd)
        self._prepare_result_folder()
        state, how = self._open_state(reduction)
        pending = state.pending()
        executor = make_executor(self.options.executor, self.options.workers) if pending else None
        description = executor.description if executor is not None else "nothing to do"
        self._event(
            "map_started",
            run=state.run_id,
            how=how,
            items=len(state.items),
            pending=len(pending),
            executor=description,
        )
        records_before = state.records
        self._elapsed_before = state.elapsed_s
        progress = MapProgress(
            self.definition.name,
            len(state.items),
            sum(item.size for item in state.items),
            enabled=self.options.progress and bool(pending),
            records_before=records_before,
        )
        progress.start()
        interrupted = exceeded = False
        try:
            if executor is not None:
                interrupted, exceeded = self._schedule(executor, state, pending, progress, started)
        finally:
            progress.stop()
            if executor is not None:
                executor.close(cancel=interrupted or exceeded)
            state.elapsed_s = self._elapsed_before + time.monotonic() - started
        return self._finish(state, interrupted, exceeded, description, started, records_before)

    def _prepare_result_folder(self) -> None:
        """Fails before any work when there is no place for the result (not after hours of work)."""
        folder = Path(self.result_path)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise MapError(f"result_writer.path: cannot create {folder}: {exc.strerror or exc}") from None
        if not os.access(folder, os.W_OK | os.X_OK):
            raise MapError(f"result_writer.path: cannot write in {folder}")

    def _open_state(self, reduction: Reduction) -> tuple[RunState, str]:
        name = self.definition.name
        state = None if self.options.restart else self.store.load()
        if self.options.redrive:
            if state is None:
                raise MapError(f"{name}: nothing to redrive: no earlier run in {self.store.folder}")
            self._same_map(state)
            if state.status == "SUCCEEDED" and not state.failed:
                raise MapError(f"{name}: nothing to redrive: the last run succeeded with no failed items")
            again = len(state.failed) + len(state.pending())
            state.failed.clear()
            state.status, state.reason = "RUNNING", ""
            state.redrives += 1
            self.store.save(state)
            return state, f"redrive of {again:,} items"
        if state is not None and state.status == "RUNNING":
            self._same_map(state)
            return state, "resumed"
        items = list_items(self.config.items, self.cwd)
        state = RunState.new(name, self.definition.fingerprint, items, reduction.new())
        self.store.save_items(state)
        self.store.save(state)
        return state, "new"

    def _event(self, name: str, **fields: Any) -> None:
        # The start and end of a run are log lines for JSON logs; on a console the summary says it.
        if self.options.log_events:
            self.log.info(name, **fields)

    def _same_map(self, state: RunState) -> None:
        if state.fingerprint != self.definition.fingerprint:
            raise MapError(
                f"{self.definition.name}: the map file (or a ${{VAR}} it uses) changed since the run in "
                f"{self.store.folder} began; "
                "run with --restart to start over"
            )

    # ------------------------------------------------------------------------------ hand-out

    def _schedule(
        self, executor: Executor, state: RunState, pending: list[Item], progress: MapProgress, started: float
    ) -> tuple[bool, bool]:
        """Runs every pending item; returns (interrupted, tolerance exceeded)."""
        config = self.config
        spec = JobSpec(config.model_dump_json(), self.cwd)
        limit = config.max_concurrency or executor.workers * 2
        queue = deque(batch_items(pending, config.item_batcher, executor.workers))
        retries: list[tuple[float, int, Item]] = []
        attempts: dict[int, int] = {}
        in_flight = 0
        next_id = 0
        last_save = time.monotonic()
        while queue or retries or in_flight:
            if self._stop_requested:
                self._save(state, started)
                return True, False
            now = time.monotonic()
            while retries and retries[0][0] <= now:
                queue.append([heapq.heappop(retries)[2]])
            while queue and in_flight < limit:
                executor.submit(spec, Task(next_id, tuple(queue.popleft())))
                next_id += 1
                in_flight += 1
            timeout = _TICK_S if not retries else max(0.0, min(_TICK_S, retries[0][0] - now))
            for task, outcome in executor.wait(timeout):
                in_flight -= 1
                self._settle(state, task, outcome, attempts, retries)
            progress.update(len(state.done), state.bytes_done, state.records, len(state.failed))
            if self._exceeded(state):
                self._save(state, started)
                return False, True
            if time.monotonic() - last_save >= config.checkpoint_interval:
                self._save(state, started)
                last_save = time.monotonic()
        return False, False

    def _save(self, state: RunState, started: float) -> None:
        state.elapsed_s = self._elapsed_before + time.monotonic() - started
        self.store.save(state)

    def _settle(
        self,
        state: RunState,
        task: Task,
        outcome: TaskResult | BaseException,
        attempts: dict[int, int],
        retries: list[tuple[float, int, Item]],
    ) -> None:
        assert self._reduction is not None
        merged: TaskResult | None = None
        if isinstance(outcome, BaseException):
            # The whole task was lost (a worker died, the cluster dropped it): every item may retry.
            error = describe(outcome)
            failures = [(item, error, True) for item in task.items]
        else:
            by_index = {item.index: item for item in task.items}
            failures = [(by_index[f.index], f.error, f.retryable) for f in outcome.failed]
            try:
                self._reduction.merge(state.partial, outcome.partial)
            except Exception as exc:
                # The task's items cannot join the result so far (a max that is a text where the
                # others are numbers, a reduce function that raises): they fail, nothing is merged.
                error = f"cannot merge with the results of other items: {describe(exc)}"
                retryable = is_retryable(exc)
                failures += [(by_index[index], error, retryable) for index in outcome.done]
            else:
                merged = outcome
        if merged is not None:
            state.done.update(merged.done)
            state.records += merged.records
            state.passed += merged.passed
            state.mapped += merged.mapped
            state.bytes_done += merged.bytes
            state.cpu_s += merged.cpu_s
        retry = self.config.retry
        for item, error, retryable in failures:
            tries = attempts[item.index] = attempts.get(item.index, 0) + 1
            again = retryable and tries < retry.max_attempts
            self.log.warning("map_item_failed", item=item.path, error=error, attempt=tries, will_retry=again)
            if again:
                backoff = min(retry.backoff_max, retry.backoff_initial * 2 ** (tries - 1))
                ready = time.monotonic() + random.uniform(backoff / 2, backoff)
                heapq.heappush(retries, (ready, item.index, item))
            else:
                state.failed[item.index] = Failure(error, tries)

    def _exceeded(self, state: RunState) -> bool:
        failed = len(state.failed)
        if not failed:
            return False
        count = self.config.tolerated_failure_count
        percentage = self.config.tolerated_failure_percentage
        if count is None and percentage is None:
            return True
        if count is not None and failed > count:
            return True
        return percentage is not None and failed * 100 / len(state.items) > percentage

    def _tolerance(self) -> str:
        count = self.config.tolerated_failure_count
        percentage = self.config.tolerated_failure_percentage
        parts = []
        if count is not None:
            parts.append(f"{count:,} items")
        if percentage is not None:
            parts.append(f"{percentage:g}%")
        return " or ".join(parts) or "none"

    # ------------------------------------------------------------------------------ the end

    def _finish(
        self,
        state: RunState,
        interrupted: bool,
        exceeded: bool,
        executor: str,
        started: float,
        records_before: int,
    ) -> dict[str, Any]:
        assert self._reduction is not None
        status = "INTERRUPTED"
        records: list[dict[str, Any]] = []
        if interrupted:
            state.reason = "interrupted; run pipes map again to resume"
        elif exceeded or self._exceeded(state):
            state.status, status = "FAILED", "FAILED"
            state.reason = (
                f"{len(state.failed):,} of {len(state.items):,} items failed (tolerated: {self._tolerance()}); "
                "repair them and run with --redrive"
            )
        else:
            try:
                records = self._reduction.results(state.partial)
            except Exception as exc:  # a reduce or finalize function that raises on the final values
                records = []
                status = state.status = "FAILED"
                state.reason = f"the result cannot be finished: {describe(exc)}"
            else:
                status = state.status = self._deliver(state, records)
        if status == "FAILED" and not records:
            clear_results(self.result_path)
        summary = self._summary(state, status, executor, started, records_before, len(records))
        if not interrupted:
            write_manifests(self.result_path, state)
            write_summary(self.result_path, summary)
        self.store.save(state)
        self._event("map_finished", **{k: v for k, v in summary.items() if k != "name"})
        return summary

    def _deliver(self, state: RunState, records: list[dict[str, Any]]) -> Literal["SUCCEEDED", "FAILED"]:
        """Writes the result, and sends it to the result target if there is one."""
        assert self._reduction is not None
        write_results(self.result_path, records, self._reduction.grouped, self._reduction.value_fields)
        state.reason = ""
        target = self.definition.result_target
        if target is None:
            return "SUCCEEDED"
        import asyncio

        error = asyncio.run(
            deliver_results(target, records, self.definition.name, self.options.state_dir, self.config.retry)
        )
        if error is None:
            return "SUCCEEDED"
        state.reason = error
        return "FAILED"

    def _summary(
        self, state: RunState, status: str, executor: str, started: float, records_before: int, groups: int
    ) -> dict[str, Any]:
        total_bytes = sum(item.size for item in state.items)
        return {
            "name": self.definition.name,
            "status": status,
            "reason": state.reason,
            "run_id": state.run_id,
            "started_at": iso_utc(state.started_at),
            "ended_at": iso_utc(time.time()),
            "wall_s": round(time.monotonic() - started, 3),
            "elapsed_s": round(state.elapsed_s, 3),
            "cpu_s": round(state.cpu_s, 3),
            "executor": executor,
            "redrives": state.redrives,
            "items": {
                "total": len(state.items),
                "succeeded": len(state.done),
                "failed": len(state.failed),
                "pending": len(state.items) - len(state.done) - len(state.failed),
            },
            "bytes": {"total": total_bytes, "done": state.bytes_done},
            "records": {
                "read": state.records,
                "filtered_out": state.records - state.passed,
                "mapped": state.mapped,
                "read_this_session": state.records - records_before,
            },
            "groups": groups,
            "result_path": self.result_path if status == "SUCCEEDED" else "",
        }
