"""What happens to one batch: its stages, its delivery, its retries and dead letters.

A lane hands each batch to the ``BatchProcessor`` in two halves so that a
partition's next batch can be in the stages while the previous one is being
written: ``prepare`` runs every step before delivery, ``finish`` delivers and
then retries what failed until every event is settled (delivered, filtered
out, dropped or dead-lettered) or the pipe stops. Counting is per batch, not
per event: the tracker, the counters and the metrics each get one call per
kind per pass.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pipes.checkpoints import Batch, SettledTracker
from pipes.clock import Clock, iso_utc
from pipes.errors import FatalError, PipeFailed, RetryableError
from pipes.events import Event, Position
from pipes.observe import PipeLog, RunnerObserver
from pipes.pipeline import Failure, Pipeline, Stage, Tally, retry_after
from pipes.retry import RetryPolicy, dead_letter_record
from pipes.status import PipeHealth, PipeStats
from pipes.stopping import StopControl
from pipes.tap import TapHub
from pipes.trace import EventTrace

__all__ = ["BatchProcessor", "Prepared"]

#: What a log line without execution data says of an error: what happened, not what it quotes.
_ERROR_FACTS = ("type", "message", "status")


@dataclass(slots=True, eq=False)
class Prepared:
    """A batch that went through every step before delivery."""

    batch: Batch
    events: list[Event]
    failures: list[Failure]


class BatchProcessor:
    """Takes batches through the pipeline and settles every event of them exactly once."""

    def __init__(
        self,
        *,
        pipe: str,
        pipeline: Pipeline,
        tracker: SettledTracker,
        policy: RetryPolicy,
        dead_letter: Any,
        clock: Clock,
        stop: StopControl,
        health: PipeHealth,
        stats: PipeStats,
        observer: RunnerObserver,
        log: PipeLog,
        variables: dict[str, Any],
        working: asyncio.Semaphore,
        once: bool,
        on_fatal: Callable[[PipeFailed], None],
        busy: dict[str, float],
        on_dead_lettered: Callable[[str, Position], None] | None = None,
        earlier_dead_letter: Callable[[Event], Mapping[str, Any] | None] | None = None,
        taps: TapHub | None = None,
    ) -> None:
        self.pipe = pipe
        self.pipeline = pipeline
        self.tracker = tracker
        self.policy = policy
        self.dead_letter = dead_letter
        self.clock = clock
        self.stop = stop
        self.health = health
        self.stats = stats
        self.observer = observer
        self.log = log
        self.working = working
        self.once = once
        self.on_fatal = on_fatal
        #: Parts of the pipe waiting on another system right now, since when (monotonic).
        self.busy = busy
        self._variables = variables
        self.on_dead_lettered = on_dead_lettered
        #: For a redrive: the dead letter an event was sent again from (its next one counts the redrives).
        self.earlier_dead_letter = earlier_dead_letter
        self.taps = taps if taps is not None else TapHub(pipe)
        #: Where each event's way through the steps is told (TRACE log, taps), when wanted.
        self.trace = EventTrace(log, self.taps)
        #: Partitions with a batch in retries right now (their lanes may pause the source).
        self.retrying: set[str] = set()

    # ------------------------------------------------------------------ the two halves

    async def prepare(self, batch: Batch, start: int = 0) -> Prepared:
        """Every step before delivery, from step ``start`` (a redrive may resume after an enrichment)."""
        tally = self._tally(batch)
        events = batch.events
        if any(e.fault is not None for e in events):
            kept = []
            for event in events:
                if event.fault is not None:
                    tally.fail(event, Stage.SOURCE, 0, event.fault)
                else:
                    kept.append(event)
            events = kept
        if events:
            events = await self._run(events, tally, start, self.pipeline.deliver_at)
        self._account(batch, tally)
        return Prepared(batch, events, tally.failures)

    async def finish(self, prepared: Prepared) -> bool:
        """Deliver, then retry until settled: True; False when abandoned (the pipe stops)."""
        batch = prepared.batch
        failures = prepared.failures
        started = self.clock.monotonic()
        if prepared.events:
            tally = self._tally(batch)
            await self._run(prepared.events, tally, self.pipeline.deliver_at)
            self._account(batch, tally)
            failures = failures + tally.failures if failures else tally.failures
        finished = True
        if failures:
            self.retrying.add(batch.partition)
            try:
                finished = await self._retry(batch, failures)
            finally:
                self.retrying.discard(batch.partition)
        self.observer.duration("batch", self.clock.monotonic() - started)
        return finished

    # ------------------------------------------------------------------ passes

    def _tally(self, batch: Batch) -> Tally:
        variables = {**self._variables, "aws.pipes.event.ingestion-time": iso_utc(batch.ingested_at)}
        # The one check per batch: steps record each event's way only while someone listens.
        return Tally(variables=variables, trace=[] if self.log.tracing or self.taps.active else None)

    async def _run(
        self, events: list[Event], tally: Tally, start: int, stop: int | None = None
    ) -> list[Event]:
        """Steps ``start`` to ``stop`` under the concurrency bound, each timed, its systems watched."""
        clock = self.clock
        for step in self.pipeline.steps[start:stop]:
            if not events:
                break
            part = (
                "target"
                if step.stage is Stage.TARGET
                else ("enrichment" if step.stage is Stage.ENRICHMENT else None)
            )
            before = len(tally.failures)
            t0 = clock.monotonic()
            async with self.working:
                if part is not None:
                    self.busy[part] = t0
                try:
                    out = await step.run(events, tally)
                finally:
                    if part is not None:
                        self.busy.pop(part, None)
            self.observer.duration(step.timing_label, clock.monotonic() - t0)
            if part is not None:
                self._note_health(part, len(events), tally.failures[before:])
            events = out
        return events

    def _note_health(self, part: str, sent: int, failures: list[Failure]) -> None:
        """A step that talks to another system: failing when nothing got through, recovered when something did."""
        if not failures:
            self.health.recovered(part)
            return
        error = failures[0].error
        message = f"{part}: {type(error).__name__}: {error}"
        if len(failures) >= sent:
            self.health.failed(part, message)
        else:
            self.health.partly_failed(part, message)

    def _account(self, batch: Batch, tally: Tally) -> None:
        if tally.grown:
            self.tracker.grow(batch, tally.grown)
        stats, observer = self.stats, self.observer
        if tally.filtered:
            stats.filtered += tally.filtered
            observer.events("filtered", tally.filtered)
        if tally.dropped:
            stats.dropped += tally.dropped
            observer.events("dropped", tally.dropped)
        if tally.delivered:
            stats.delivered += tally.delivered
            observer.events("delivered", tally.delivered)
        settled = tally.settled
        if settled:
            self.tracker.settle(batch, settled)
        if tally.trace:
            self.trace.steps(tally.trace)
            tally.trace.clear()

    # ------------------------------------------------------------------ retries

    async def _retry(self, batch: Batch, failures: list[Failure]) -> bool:
        """Retry failed events until delivered or dead-lettered: True; False when abandoned."""
        while failures:
            self._settle_prefix(batch, failures)
            now_wall = self.clock.wall()
            now = self.clock.monotonic()
            give_up: list[Failure] = []
            again: list[Failure] = []
            by_stage: dict[str, int] = {}
            for failure in failures:
                failure.attempts += 1
                if failure.first_attempt_at == 0.0:
                    failure.first_attempt_at = batch.ingested_at or now_wall
                    failure.received_at = batch.received_at
                failure.last_attempt_at = now_wall
                wait = retry_after(failure.error)
                failure.not_before = now + wait if wait else 0.0
                stage = str(failure.stage)
                by_stage[stage] = by_stage.get(stage, 0) + 1
                if self.policy.gives_up(failure, now):
                    give_up.append(failure)
                else:
                    again.append(failure)
            self._count_failures(by_stage)
            if give_up:
                if self.dead_letter is not None:
                    if not await self._dead_letter(batch, give_up):
                        return False  # stopping: abandoned, never committed
                else:
                    for failure in give_up:
                        self.log.error(
                            "event_stuck",
                            stage=str(failure.stage),
                            partition=failure.event.partition,
                            position=failure.event.position,
                            attempts=failure.attempts,
                            error=f"{type(failure.error).__name__}: {failure.error}",
                            **self.log.data(record=failure.event.record),
                        )
                    if self.once:
                        # A --once run must end: fail the pipe (exit 1) rather than retry
                        # for ever. Nothing is committed past the stuck event, so the next
                        # run tries it again.
                        failure = give_up[0]
                        self.on_fatal(
                            PipeFailed(
                                f"{failure.stage} failed for good at {failure.event.partition}@"
                                f"{failure.event.position} after {failure.attempts} attempts "
                                f"and there is no dead_letter: {type(failure.error).__name__}: {failure.error}"
                            )
                        )
                        return False
                    again.extend(give_up)  # no dead letter: never drop, keep trying
            if not again:
                return True
            wait_s = self.policy.backoff(max(f.attempts for f in again))
            wait_s = max(wait_s, max(f.not_before for f in again) - now)
            if await self.stop.sleep_or_stop(wait_s, draining=True):
                return False
            self.stats.retried += len(again)
            self.observer.events("retried", len(again))
            failures = await self._again(batch, again)
        return True

    def _settle_prefix(self, batch: Batch, failures: list[Failure]) -> None:
        """Everything of the batch but ``failures`` has settled: the events before the first of them may commit."""
        failing = {f.event.position for f in failures}  # a fanned-out event's children share its position
        for index, event in enumerate(batch.events):
            if event.position in failing:
                if index > 0:
                    self.tracker.settled_through(batch, index - 1)
                return

    async def _again(self, batch: Batch, again: list[Failure]) -> list[Failure]:
        """Each failed event once more from its own step; the failures of this attempt."""
        tally = self._tally(batch)
        for step in sorted({f.step for f in again}):
            events = [f.event for f in again if f.step == step]
            await self._run(events, tally, step)
        self._account(batch, tally)
        earlier = {id(f.event): f for f in again}
        for failure in tally.failures:
            before = earlier.get(id(failure.event))
            if before is not None:
                failure.attempts = before.attempts
                failure.first_attempt_at = before.first_attempt_at
                failure.received_at = before.received_at
        return tally.failures

    def _count_failures(self, by_stage: dict[str, int]) -> None:
        stats = self.stats
        for stage, count in by_stage.items():
            stats.failed += count
            stats.failed_by_stage[stage] = stats.failed_by_stage.get(stage, 0) + count
            self.observer.events("failed", count, stage)

    # ------------------------------------------------------------------ dead letters

    async def _dead_letter(self, batch: Batch, failures: list[Failure]) -> bool:
        """Write to the dead letter, retrying the write itself until it succeeds or we stop."""
        pending = [self._dead_letter_event(f) for f in failures]
        attempt = 0
        while pending:
            self.busy["dead_letter"] = self.clock.monotonic()
            try:
                outcomes = await self.dead_letter.write(pending)
                if len(outcomes) != len(pending):
                    # A broken answer, not a refusal of these events: the write is tried again.
                    raise RetryableError(
                        f"dead letter returned {len(outcomes)} outcomes for {len(pending)} events"
                    )
            except Exception as exc:
                outcomes = [exc] * len(pending)
            finally:
                self.busy.pop("dead_letter", None)
            still = [event for event, outcome in zip(pending, outcomes, strict=True) if outcome is not None]
            written = len(pending) - len(still)
            if written and self.on_dead_lettered is not None:
                for event, outcome in zip(pending, outcomes, strict=True):
                    if outcome is None:
                        self.on_dead_lettered(event.partition, event.position)
            if written:
                if self.taps.active:
                    self.trace.dead_lettered(
                        [e for e, outcome in zip(pending, outcomes, strict=True) if outcome is None]
                    )
                self.tracker.settle(batch, written)
                self.stats.dead_lettered += written
                self.observer.events("dead_lettered", written)
            pending = still
            if not pending:
                self.health.recovered("dead_letter")
                break
            attempt += 1
            error = next(o for o in outcomes if o is not None)
            self.health.failed("dead_letter", f"dead_letter: {type(error).__name__}: {error}")
            self.log.error(
                "dead_letter_failed", error=f"{type(error).__name__}: {error}", events=len(pending)
            )
            if self.once and isinstance(error, FatalError):
                # Refused for good, and a --once run must end: fail the pipe (nothing is
                # committed past these events) rather than retry for ever.
                self.on_fatal(
                    PipeFailed(f"the dead letter refused events for good: {type(error).__name__}: {error}")
                )
                return False
            if await self.stop.sleep_or_stop(self.policy.backoff(attempt), draining=True):
                return False
        return True

    def _dead_letter_event(self, failure: Failure) -> Event:
        event = failure.event
        earlier = self.earlier_dead_letter(event) if self.earlier_dead_letter is not None else None
        record = dead_letter_record(self.pipe, failure, earlier)
        error = record["error"]
        if not self.log.execution_data:
            # A connector's details may quote what the event held (a response body): data.
            error = {key: error[key] for key in _ERROR_FACTS if key in error}
        self.log.warning(
            "event_dead_lettered",
            stage=str(failure.stage),
            partition=event.partition,
            position=event.position,
            error=error,
            **self.log.data(record=record["record"]),
        )
        return Event(record, event.partition, event.position, "", payload=record)
