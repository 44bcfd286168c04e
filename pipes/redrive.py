"""``pipes dlq redrive``: dead letters sent through their pipe again, once the cause is fixed.

A redrive reads the pipe's dead letter back (``pipes.dead_letters``), turns
each selected record's ``record`` into an event that looks like the source's
(the same record, its body where the source put it), and hands the events to
a ``BatchProcessor`` over the pipe's own ``Pipeline``, with fresh instances of
its enrichment, target and dead letter: the very steps, retries and
dead-lettering a running pipe uses, nothing written twice. So an event is
delivered, filtered out, dropped by the enrichment, or, failing again, written
to the dead letter anew, with ``redrive_count`` one higher and its first
failure kept (``pipes.retry.dead_letter_record``).

Where a record goes in: a dead letter of the transform or the target of a
pipe with an enrichment holds what the enrichment returned (the record as
that stage saw it), so it goes on from the step after the enrichment, which is
not called twice; every other one goes through every stage.

Batches (of the pipe's ``batch.size``) are taken one after the other. After each one settled, its records
are added to the ``RedriveLedger`` and the ledger is saved: a redrive that is
stopped or killed resumes without sending again more than the batch it was
in, and a later redrive does not send again what one already did.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

import structlog

from pipes.checkpoints import Batch, CheckpointStore, SettledTracker
from pipes.clock import Clock, SystemClock
from pipes.config import PipeDefinition
from pipes.connector import ConnectorContext, Enricher, Target
from pipes.dead_letters import DeadLetterLog, Pending, Selection, reader_for
from pipes.dryrun import body_field_of, dry_run, enriched_body_field, failed
from pipes.errors import PipeFailed
from pipes.events import Event, Position
from pipes.observe import NullObserver, PipeLog
from pipes.pipeline import Pipeline, Stage
from pipes.processing import BatchProcessor
from pipes.redrive_ledger import RedriveLedger
from pipes.retry import RetryPolicy
from pipes.stages import EnrichmentStage
from pipes.status import PipeHealth, PipeStats
from pipes.stopping import StopControl

__all__ = ["Redrive", "RedriveProgress", "open_log"]

#: Stages whose dead letters hold the enrichment's result rather than the source's record.
_AFTER_ENRICHMENT = frozenset({str(Stage.TRANSFORM), str(Stage.TARGET)})


@dataclass
class RedriveProgress:
    """Where a redrive stands; the last one it reports is its summary."""

    pipe: str
    selected: int = 0
    done: int = 0
    delivered: int = 0
    filtered: int = 0
    dropped: int = 0
    failed_again: int = 0
    unreadable: int = 0
    dry_run: bool = False
    finished: bool = False
    stopped: bool = False
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "pipe": self.pipe,
            "selected": self.selected,
            "done": self.done,
            "delivered": self.delivered,
            "filtered": self.filtered,
            "dropped": self.dropped,
            "failed_again": self.failed_again,
            "unreadable": self.unreadable,
            "dry_run": self.dry_run,
            "finished": self.finished,
            "stopped": self.stopped,
            "seconds": round(self.seconds, 3),
        }


async def open_log(
    definition: PipeDefinition, store: CheckpointStore, context: ConnectorContext
) -> DeadLetterLog:
    """The pipe's dead letter with its redrive ledger, the reader started (stop it with ``log.reader.stop()``)."""
    reader = reader_for(definition)
    ledger = await RedriveLedger(store, definition.name).load()
    await reader.start(context)
    assert definition.dead_letter is not None
    return DeadLetterLog(reader, ledger, definition.dead_letter.type)


class Redrive:
    """One redrive of one pipe's dead letter; ``run()`` once, ``request_stop()`` from anywhere.

    ``on_progress`` is called after each batch (and once at the end) with the
    progress so far; ``on_dry_run`` gets, in a dry run, one report per selected
    record: where it is and what each stage would do (as ``pipes test``).
    """

    def __init__(
        self,
        definition: PipeDefinition,
        *,
        store: CheckpointStore,
        selection: Selection,
        dry_run: bool = False,
        clock: Clock | None = None,
        drain_timeout_s: float = 30.0,
        on_progress: Callable[[RedriveProgress], None] | None = None,
        on_dry_run: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.definition = definition
        self.name = definition.name
        self.store = store
        self.selection = selection
        self.dry = dry_run
        self.clock = clock or SystemClock()
        self.stop = StopControl(self.clock, drain_timeout_s)
        self.log = PipeLog(
            self.name, definition.config.log_level, base=structlog.get_logger().bind(job="redrive")
        )
        self.progress = RedriveProgress(self.name, dry_run=dry_run)
        self.on_progress = on_progress or (lambda progress: None)
        self.on_dry_run = on_dry_run or (lambda report: None)
        #: The dead letter each event of the batch in hand came from, by (partition, position).
        self._earlier: dict[tuple[str, Position], dict[str, Any]] = {}

    def request_stop(self) -> None:
        """Finish the batch in hand (within the drain timeout), save the ledger, and stop."""
        self.stop.request()

    def _context(self, role: str) -> ConnectorContext:
        return ConnectorContext(pipe=self.name, clock=self.clock, log=self.log.bind(role=role))

    async def run(self) -> RedriveProgress:
        began = time.monotonic()
        log = await open_log(self.definition, self.store, self._context("dead_letter_reader"))
        try:
            async with aclosing(log.scan(self.selection)) as counting:
                async for batch in counting:
                    self.progress.selected += len(batch)
            self.on_progress(self.progress)
            if self.dry:
                await self._dry_run(log)
            else:
                await self._send(log)
        finally:
            await log.reader.stop()
            self.progress.seconds = time.monotonic() - began
            self.progress.stopped = self.stop.is_set
            self.progress.finished = True
            self.on_progress(self.progress)
        return self.progress

    # ------------------------------------------------------------------ dry run

    async def _dry_run(self, log: DeadLetterLog) -> None:
        progress = self.progress
        async with aclosing(log.scan(self.selection)) as batches:
            async for batch in batches:
                for pending in batch:
                    if self.stop.is_set:
                        return
                    source_record, resume = self._source_record(pending)
                    if source_record is None:
                        progress.unreadable += 1
                        continue
                    steps = await dry_run(self.definition, source_record, after_enrichment=resume)
                    self._count_dry(steps)
                    progress.done += 1
                    letter = pending.letter
                    self.on_dry_run(
                        {"partition": letter.partition, "position": letter.position, "stages": steps}
                    )
                self.on_progress(progress)

    def _count_dry(self, steps: list[dict[str, Any]]) -> None:
        progress = self.progress
        last = steps[-1] if steps else {}
        if failed(steps):
            progress.failed_again += 1
        elif last.get("matched") is False:
            progress.filtered += 1
        elif last.get("stage") == "enrichment" and not last.get("records"):
            progress.dropped += 1
        else:
            progress.delivered += 1

    # ------------------------------------------------------------------ sending

    def _source_record(self, pending: Pending) -> tuple[dict[str, Any] | None, bool]:
        """The record to send again, and whether it goes on after the enrichment."""
        record = pending.letter.record
        inner = record.get("record") if record is not None else None
        if not isinstance(inner, dict):
            return None, False
        assert record is not None
        resume = self.definition.enrichment is not None and record.get("stage") in _AFTER_ENRICHMENT
        return inner, resume

    async def _send(self, log: DeadLetterLog) -> None:
        definition = self.definition
        target: Target = definition.target.build_target()
        enricher: Enricher | None = None
        enrichment: EnrichmentStage | None = None
        if definition.enrichment is not None:
            enricher = definition.enrichment.build_enricher()
            enrichment = EnrichmentStage(enricher, definition.enrichment_into)
        assert definition.dead_letter is not None
        dead_letter = definition.dead_letter.build_target()
        started: list[Target | Enricher] = []
        try:
            for connector, role in (
                (target, "target"),
                (enricher, "enrichment"),
                (dead_letter, "dead_letter"),
            ):
                if connector is not None:
                    await connector.start(self._context(role))
                    started.append(connector)
            pipeline = Pipeline.build(
                filter=definition.filter, enrichment=enrichment, transform=definition.transform, target=target
            )
            await self._send_batches(log, pipeline, dead_letter)
        finally:
            for connector in reversed(started):
                try:
                    await connector.stop()
                except Exception as exc:  # stop must not raise; a broken one must not block the rest
                    self.log.error("connector_stop_failed", error=f"{type(exc).__name__}: {exc}")

    async def _send_batches(self, log: DeadLetterLog, pipeline: Pipeline, dead_letter: Target) -> None:
        tracker = SettledTracker()
        stats = PipeStats()
        fatal: list[PipeFailed] = []

        def on_fatal(error: PipeFailed) -> None:
            fatal.append(error)
            self.stop.abandon()

        processor = BatchProcessor(
            pipe=self.name,
            pipeline=pipeline,
            tracker=tracker,
            policy=RetryPolicy(self.definition.config.retry),
            dead_letter=dead_letter,
            clock=self.clock,
            stop=self.stop,
            health=PipeHealth(),
            stats=stats,
            observer=NullObserver(),
            log=self.log,
            variables=self.definition.template_variables(),
            working=asyncio.Semaphore(1),
            once=True,
            on_fatal=on_fatal,
            busy={},
            earlier_dead_letter=lambda event: self._earlier.get((event.partition, event.position)),
        )
        resume_at = pipeline.after_enrichment
        async with aclosing(log.scan(self.selection)) as batches:
            async for batch in batches:
                for run, start in self._runs(batch, resume_at):
                    if self.stop.is_set:
                        break
                    if not await self._send_run(processor, tracker, run, start):
                        break
                    for pending in run:
                        letter = pending.letter
                        log.ledger.add(letter.partition, letter.position, pending.previous)
                    await log.ledger.save()
                    self._count(stats, len(run))
                    self.on_progress(self.progress)
                if self.stop.is_set:
                    break
        if fatal:
            raise fatal[0]

    def _runs(self, batch: list[Pending], resume_at: int) -> list[tuple[list[Pending], int]]:
        """The batch cut into runs of records that start at the same step (unreadable ones set aside)."""
        runs: list[tuple[list[Pending], int]] = []
        size = self.definition.config.batch.size
        for pending in batch:
            source_record, resume = self._source_record(pending)
            if source_record is None:
                self.progress.unreadable += 1
                self.log.warning(
                    "dead_letter_unreadable",
                    partition=pending.letter.partition,
                    position=pending.letter.position,
                )
                continue
            start = resume_at if resume else 0
            # A run is one batch: one partition, one starting step, at most the pipe's batch size.
            last = runs[-1] if runs else None
            if (
                last is not None
                and last[1] == start
                and len(last[0]) < size
                and last[0][-1].letter.partition == pending.letter.partition
            ):
                runs[-1][0].append(pending)
            else:
                runs.append(([pending], start))
        return runs

    async def _send_run(
        self, processor: BatchProcessor, tracker: SettledTracker, run: list[Pending], start: int
    ) -> bool:
        """One run through the steps, retried and dead-lettered as the pipe would; False when stopped."""
        events: list[Event] = []
        self._earlier.clear()
        definition = self.definition
        for pending in run:
            letter = pending.letter
            assert letter.record is not None
            record = letter.record["record"]
            body_field = enriched_body_field(definition, record) if start else body_field_of(record)
            events.append(Event(record, letter.partition, letter.position, body_field))
            self._earlier[(letter.partition, letter.position)] = letter.record
        batch = Batch(run[0].letter.partition, events, self.clock.monotonic(), self.clock.wall())
        tracker.open(batch)
        prepared = await processor.prepare(batch, start)
        return await processor.finish(prepared) and batch.settled

    def _count(self, stats: PipeStats, done: int) -> None:
        progress = self.progress
        progress.done += done
        progress.delivered = stats.delivered
        progress.filtered = stats.filtered
        progress.dropped = stats.dropped
        progress.failed_again = stats.dead_lettered
