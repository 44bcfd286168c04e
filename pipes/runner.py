"""One pipe, running: pull, batch, filter, enrich, transform, deliver, retry,
dead-letter, checkpoint.

Shape of the machine:

- one *reader* task pulls from the source while the number of unsettled
  events is under the pipe's bound (backpressure is that bound, never a sleep);
- one *lane* per partition cuts batches by ``batch.size`` / ``batch.window`` and
  takes a batch through every stage before it takes the next one, so order
  within a partition holds even while an event is being retried; at most
  ``concurrency`` lanes do stage work at once;
- one *committer* task commits, per partition, the contiguous settled prefix
  (``SettledTracker``) after batches and at least every ``checkpoint_interval``.

Only failed events are retried, from the stage that failed, with exponential
backoff and full jitter; a failed event that runs out of attempts or age goes
to the dead letter, and without a dead letter its partition keeps retrying.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from pipes.aio import first
from pipes.checkpoints import CheckpointStore, SettledTracker
from pipes.clock import Clock, SystemClock, iso_utc
from pipes.config import PipeDefinition
from pipes.connector import ConnectorContext, Enricher, Source, SourceContext, Target
from pipes.errors import FatalError
from pipes.events import Event
from pipes.observe import NullObserver, PipeLog, RunnerObserver
from pipes.retry import RetryPolicy, dead_letter_record
from pipes.stages import EnrichmentStage

__all__ = ["PipeRunner", "PipeState", "PipeStats"]


class PipeState:
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    STOPPING = "STOPPING"
    STOPPED = "STOPPED"
    FAILED = "FAILED"


@dataclass
class PipeStats:
    """Counters of one run; ``failed`` counts failed attempts, by stage in ``failed_by_stage``."""

    received: int = 0
    filtered: int = 0
    dropped: int = 0
    delivered: int = 0
    failed: int = 0
    retried: int = 0
    dead_lettered: int = 0
    failed_by_stage: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "filtered": self.filtered,
            "dropped": self.dropped,
            "delivered": self.delivered,
            "failed": self.failed,
            "retried": self.retried,
            "dead_lettered": self.dead_lettered,
            "failed_by_stage": dict(self.failed_by_stage),
        }


# Stages an event can fail in, in the order they run; a retry resumes at its stage.
SOURCE, FILTER, ENRICHMENT, TRANSFORM, TARGET = "source", "filter", "enrichment", "transform", "target"


@dataclass(slots=True)
class _Failure:
    event: Event
    stage: str
    error: Exception


class _Lane:
    """The queue of one partition, worked by one task."""

    __slots__ = ("grew", "partition", "paused", "queue", "task")

    def __init__(self, partition: str) -> None:
        self.partition = partition
        self.queue: deque[Event] = deque()
        self.grew = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.paused = False


class PipeRunner:
    """Runs one pipe definition until stopped, or (``once``) until the source is caught up.

    ``run()`` returns normally after a clean stop or a finished ``once`` run and
    raises ``FatalError`` when the pipe cannot run (a connector refused its
    definition). ``request_stop()`` stops pulling; what was pulled is still
    processed until ``drain_timeout`` runs out.
    """

    def __init__(
        self,
        definition: PipeDefinition,
        *,
        store: CheckpointStore,
        clock: Clock | None = None,
        once: bool = False,
        state_dir: str = "state",
        drain_timeout_s: float = 30.0,
        read_timeout_s: float = 0.2,
        observer: RunnerObserver | None = None,
        log: PipeLog | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.definition = definition
        self.config = definition.config
        self.name = definition.name
        self.store = store
        self.clock = clock or SystemClock()
        self.once = once
        self.state_dir = state_dir
        self.drain_timeout_s = drain_timeout_s
        self.read_timeout_s = read_timeout_s
        self.observer: RunnerObserver = observer or NullObserver()
        self.log = log or PipeLog(self.name, self.config.log_level)
        self.retry_policy = RetryPolicy(self.config.retry, rng)
        self.stats = PipeStats()
        self.tracker = SettledTracker()
        self.state = PipeState.STOPPED
        self.last_error: str | None = None

        self.source: Source = definition.source.build_source()
        self.target: Target = definition.target.build_target()
        self.enrichment: EnrichmentStage | None = None
        if definition.enrichment is not None:
            enricher: Enricher = definition.enrichment.build_enricher()
            self.enrichment = EnrichmentStage(enricher, definition.enrichment_into)
        self.dead_letter: Target | None = None
        if definition.dead_letter is not None:
            self.dead_letter = definition.dead_letter.build_target()

        self._lanes: dict[str, _Lane] = {}
        #: Partitions whose lane is retrying failed events right now.
        self._retrying: set[str] = set()
        #: Queued events beyond which a retrying lane's partition is paused at the source.
        self._lane_cap = min(2 * self.config.batch.size, max(1, self.config.in_flight_bound // 2))
        self._working = asyncio.Semaphore(self.config.concurrency)
        self._space = asyncio.Event()
        self._full = False  # the reader is waiting for in-flight events to settle
        self._dirty = asyncio.Event()
        self._commit_lock = asyncio.Lock()
        self._stopping = asyncio.Event()
        self._reader_done = asyncio.Event()
        self._idle = asyncio.Event()
        self._drain_deadline: float | None = None
        self._fatal: FatalError | None = None
        self._saved: dict[str, Any] = {}
        self._variables = definition.template_variables()
        self._started: list[Source | Target | Enricher] = []

    # ------------------------------------------------------------------ lifecycle

    def request_stop(self) -> None:
        """Stop pulling; in-flight work drains. Safe to call more than once."""
        if not self._stopping.is_set():
            self._drain_deadline = self.clock.monotonic() + self.drain_timeout_s
            self._set_state(PipeState.STOPPING)
            self._stopping.set()

    async def run(self) -> None:
        self._set_state(PipeState.STARTING)
        committer: asyncio.Task[None] | None = None
        try:
            if await self._start_connectors():
                self._set_state(PipeState.RUNNING)
                self.log.info(
                    "pipe_started", source=self.definition.source.type, target=self.definition.target.type
                )
                committer = asyncio.create_task(self._commit_loop(), name=f"{self.name}:committer")
                await self._read_loop()
                await self._drain()
        finally:
            if committer is not None:
                committer.cancel()
                await asyncio.gather(committer, return_exceptions=True)
            await self._cancel_lanes()
            if self._started:
                await self._commit_now(final=True)
            await self._stop_connectors()
            if self._fatal is not None:
                self._set_state(PipeState.FAILED)
            else:
                self._set_state(PipeState.STOPPED)
            self.log.info("pipe_stopped", **self.stats.as_dict())
        if self._fatal is not None:
            raise self._fatal

    async def _start_connectors(self) -> bool:
        """Start every connector, retrying unreachable systems with backoff until stopped."""
        checkpoint: dict[str, Any] = {}
        attempt = 0
        while True:
            try:
                if not self.source.tracks_position and not self._saved:
                    checkpoint = await self.store.load(self.name)
                    self.tracker.restore(checkpoint)
                    self._saved = dict(checkpoint)
                pending: list[tuple[Source | Target | Enricher, ConnectorContext]] = []
                source_ctx = SourceContext(
                    pipe=self.name,
                    clock=self.clock,
                    log=self.log.bind(role="source"),
                    arn=self._variables.get("aws.pipes.source-arn", ""),
                    state_dir=self.state_dir,
                    checkpoint=checkpoint,
                    once=self.once,
                    revoke=self._revoke,
                )
                # Where events go first, the source last: a target that refuses the
                # definition fails the pipe before the source joins a consumer group.
                pending.append((self.target, self._context("target")))
                if self.enrichment is not None:
                    pending.append((self.enrichment.enricher, self._context("enrichment")))
                if self.dead_letter is not None:
                    pending.append((self.dead_letter, self._context("dead_letter")))
                pending.append((self.source, source_ctx))
                for connector, ctx in pending:
                    if connector in self._started:
                        continue
                    await connector.start(ctx)  # type: ignore[arg-type]
                    self._started.append(connector)
                self.last_error = None
                return True
            except FatalError as exc:
                self._fail(exc)
                return False
            except Exception as exc:
                attempt += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                self._set_state(PipeState.FAILED)
                self.log.error("connect_failed", error=self.last_error, attempt=attempt)
                if await self._sleep_or_stop(self._backoff(attempt)):
                    return False

    def _context(self, role: str) -> ConnectorContext:
        return ConnectorContext(
            pipe=self.name,
            clock=self.clock,
            log=self.log.bind(role=role),
            arn=self._variables.get(f"aws.pipes.{role.replace('_', '-')}-arn", ""),
            state_dir=self.state_dir,
        )

    async def _stop_connectors(self) -> None:
        for connector in reversed(self._started):
            try:
                await connector.stop()
            except Exception as exc:  # stop must not raise; a broken one must not block the rest
                self.log.error("connector_stop_failed", error=f"{type(exc).__name__}: {exc}")
        self._started.clear()

    def _fail(self, exc: FatalError) -> None:
        self._fatal = exc
        self.last_error = str(exc)
        self._set_state(PipeState.FAILED)
        self.log.error("pipe_failed", error=str(exc))
        # The pipe cannot go on: abandon in-flight work now (uncommitted, so it
        # is delivered again next run) rather than retrying into a dead pipe.
        self._drain_deadline = self.clock.monotonic()
        self._stopping.set()

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.observer.state(state)

    # ------------------------------------------------------------------ reading

    async def _read_loop(self) -> None:
        bound = self.config.in_flight_bound
        size = self.config.batch.size
        failures = 0
        stop_wait = asyncio.ensure_future(self._stopping.wait())
        try:
            while not self._stopping.is_set():
                free = bound - self.tracker.in_flight
                if free <= 0:
                    self._space.clear()
                    self._full = True
                    for lane in self._lanes.values():
                        lane.grew.set()  # nothing more can come: stop waiting to fill batches
                    await first(self._space.wait(), stop_wait)
                    self._full = False
                    continue
                read = asyncio.ensure_future(self.source.read(min(free, size), self.read_timeout_s))
                await asyncio.wait({read, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
                if not read.done():
                    read.cancel()
                    await asyncio.gather(read, return_exceptions=True)
                    break
                try:
                    events = read.result()
                except FatalError as exc:
                    self._fail(exc)
                    break
                except Exception as exc:
                    failures += 1
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    self._set_state(PipeState.FAILED)
                    self.log.error("source_read_failed", error=self.last_error, attempt=failures)
                    if await self._sleep_or_stop(self._backoff(failures)):
                        break
                    continue
                if failures:
                    failures = 0
                    self.last_error = None
                    self._set_state(PipeState.RUNNING)
                if not events:
                    if self.once and self.source.caught_up():
                        break
                    continue
                self._accept(events)
        finally:
            stop_wait.cancel()
            self._reader_done.set()

    def _accept(self, events: list[Event]) -> None:
        now, wall = self.clock.monotonic(), self.clock.wall()
        track = self.tracker.track
        lanes = self._lanes
        touched: set[_Lane] = set()
        for event in events:
            event.received_at = now
            event.ingested_at = wall
            track(event)
            lane = lanes.get(event.partition)
            if lane is None:
                lane = self._open_lane(event.partition)
            lane.queue.append(event)
            touched.add(lane)
        cap = self._lane_cap
        for lane in touched:
            lane.grew.set()
            if len(lane.queue) > cap and not lane.paused and lane.partition in self._retrying:
                # This partition is held up by a retrying event: stop fetching it so
                # that it cannot fill the in-flight bound and hold the others. (A
                # merely slow partition is ordinary backpressure and is not paused.)
                lane.paused = True
                self.source.pause([lane.partition])
        self.stats.received += len(events)
        self.observer.events("received", len(events))
        if self.log.tracing:
            for event in events:
                self.log.trace("event_received", partition=event.partition, position=event.position)

    def _open_lane(self, partition: str) -> _Lane:
        lane = _Lane(partition)
        self._lanes[partition] = lane
        lane.task = asyncio.create_task(self._lane_loop(lane), name=f"{self.name}:{partition}")
        lane.task.add_done_callback(lambda task: self._lane_ended(lane, task))
        return lane

    def _lane_ended(self, lane: _Lane, task: asyncio.Task[None]) -> None:
        """A lane still in ``_lanes`` that was cancelled or raised died on its own: fail the pipe.

        Left alone, its partition would never settle again and the reader would
        wait on the in-flight bound for ever, silently.
        """
        if self._lanes.get(lane.partition) is not lane:
            return  # revoked or shut down by the runner
        error: BaseException | None = asyncio.CancelledError() if task.cancelled() else task.exception()
        if error is None:
            return
        self.log.error("lane_failed", partition=lane.partition, error=f"{type(error).__name__}: {error}")
        if self._fatal is None:
            self._fail(FatalError(f"partition {lane.partition}: {type(error).__name__}: {error}"))

    # ------------------------------------------------------------------ lanes

    async def _lane_loop(self, lane: _Lane) -> None:
        size = self.config.batch.size
        window = self.config.batch.window
        while True:
            if not lane.queue:
                lane.grew.clear()
                if self._reader_done.is_set():
                    return
                await first(lane.grew.wait(), self._reader_done.wait())
                continue
            if len(lane.queue) < size and window > 0 and not self._stopping.is_set():
                deadline = lane.queue[0].received_at + window
                while (
                    len(lane.queue) < size
                    and not self._reader_done.is_set()
                    and not self._full  # the reader waits for us: no more can come, cut now
                ):
                    remaining = deadline - self.clock.monotonic()
                    if remaining <= 0:
                        break
                    lane.grew.clear()
                    await first(lane.grew.wait(), self.clock.sleep(remaining), self._reader_done.wait())
            count = min(size, len(lane.queue))
            batch = [lane.queue.popleft() for _ in range(count)]
            finished = await self._process_batch(batch)
            self._dirty.set()
            self._space.set()
            if lane.paused and len(lane.queue) <= size:
                lane.paused = False
                self.source.resume([lane.partition])
            if not finished:
                # Abandoned unsettled: later events of this partition must not be
                # delivered ahead of it; the next run starts from the checkpoint.
                return

    async def _cancel_lanes(self) -> None:
        tasks = [lane.task for lane in self._lanes.values() if lane.task is not None]
        self._lanes.clear()  # first: these cancellations are ours (see _lane_ended)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _drain(self) -> None:
        """Let lanes finish what was pulled: until done, or until the drain deadline."""
        tasks = [lane.task for lane in self._lanes.values() if lane.task is not None]
        if not tasks:
            return
        if self._stopping.is_set() and self._drain_deadline is not None:
            timeout = max(0.0, self._drain_deadline - self.clock.monotonic())
            _done, pending = await asyncio.wait(tasks, timeout=timeout)
            if pending:
                self.log.error("drain_timeout", abandoned=self.tracker.in_flight)
        else:
            # A finished --once run, or a stop requested while we wait: keep watching it.
            all_done = asyncio.ensure_future(asyncio.wait(tasks))
            while not all_done.done():
                await first(all_done, self._stopping.wait())
                if self._stopping.is_set() and not all_done.done():
                    timeout = max(0.0, (self._drain_deadline or 0.0) - self.clock.monotonic())
                    await asyncio.wait({all_done}, timeout=timeout)
                    if not all_done.done():
                        self.log.error("drain_timeout", abandoned=self.tracker.in_flight)
                    break
            all_done.cancel()
        for task in tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]

    # ------------------------------------------------------------------ stages

    async def _process_batch(self, batch: list[Event]) -> bool:
        """Take a batch through every stage; False when it was abandoned unsettled (stopping)."""
        started = self.clock.monotonic()
        failures: list[_Failure] = []
        events = batch
        if self.dead_letter is not None and any(e.fault is not None for e in batch):
            events = []
            for event in batch:
                if event.fault is not None:
                    failures.append(_Failure(event, SOURCE, event.fault))
                else:
                    events.append(event)
        async with self._working:
            await self._run_stages(events, FILTER, failures)
        finished = True
        if failures:
            self._dirty.set()  # what settled before the retries may be committed meanwhile
            partition = failures[0].event.partition
            self._retrying.add(partition)
            try:
                finished = await self._retry(failures)
            finally:
                self._retrying.discard(partition)
        self.observer.duration("batch", self.clock.monotonic() - started)
        return finished

    async def _run_stages(self, events: list[Event], stage: str, failures: list[_Failure]) -> None:
        """Take ``events`` from ``stage`` on to the target, collecting failures."""
        if stage == FILTER and self.definition.filter is not None and events:
            t0 = self.clock.monotonic()
            events = self._filter(events, failures)
            self.observer.duration(FILTER, self.clock.monotonic() - t0)
            stage = ENRICHMENT
        if stage in (FILTER, ENRICHMENT):
            if self.enrichment is not None and events:
                t0 = self.clock.monotonic()
                events = await self._enrich(events, failures)
                self.observer.duration(ENRICHMENT, self.clock.monotonic() - t0)
            stage = TRANSFORM
        if stage == TRANSFORM and events:
            t0 = self.clock.monotonic()
            events = self._transform(events, failures)
            self.observer.duration(TRANSFORM, self.clock.monotonic() - t0)
        if events:
            t0 = self.clock.monotonic()
            await self._deliver(events, failures)
            self.observer.duration(TARGET, self.clock.monotonic() - t0)

    def _filter(self, events: list[Event], failures: list[_Failure]) -> list[Event]:
        stage = self.definition.filter
        assert stage is not None
        matches = stage.matches
        passed: list[Event] = []
        filtered = 0
        settle = self.tracker.settle
        for event in events:
            try:
                ok = matches(event.record)
            except Exception as exc:
                failures.append(_Failure(event, FILTER, exc))
                continue
            if ok:
                passed.append(event)
            else:
                settle(event)
                filtered += 1
                if self.log.tracing:
                    self.log.trace("event_filtered", partition=event.partition, position=event.position)
        if filtered:
            self.stats.filtered += filtered
            self.observer.events("filtered", filtered)
        return passed

    async def _enrich(self, events: list[Event], failures: list[_Failure]) -> list[Event]:
        assert self.enrichment is not None
        try:
            results = await self.enrichment.run(events)
        except Exception as exc:
            self._note_batch_error(ENRICHMENT, exc)
            failures.extend(_Failure(e, ENRICHMENT, exc) for e in events)
            return []
        out: list[Event] = []
        dropped = 0
        for event, result in results:
            if isinstance(result, Exception):
                failures.append(_Failure(event, ENRICHMENT, result))
            elif not result:
                self.tracker.settle(event)
                dropped += 1
            else:
                out.extend(result)
        if dropped:
            self.stats.dropped += dropped
            self.observer.events("dropped", dropped)
        if self.log.tracing:
            for event in out:
                self.log.trace("event_enriched", partition=event.partition, position=event.position)
        return out

    def _transform(self, events: list[Event], failures: list[_Failure]) -> list[Event]:
        stage = self.definition.transform
        if stage is None:
            for event in events:
                event.payload = event.body
            return events
        variables = {**self._variables, "aws.pipes.event.ingestion-time": iso_utc(self.clock.wall())}
        apply = stage.apply
        out: list[Event] = []
        for event in events:
            try:
                event.payload = apply(event, variables)
            except Exception as exc:
                failures.append(_Failure(event, TRANSFORM, exc))
                continue
            out.append(event)
            if self.log.tracing:
                self.log.trace("event_transformed", partition=event.partition, payload=event.payload)
        return out

    async def _deliver(self, events: list[Event], failures: list[_Failure]) -> None:
        try:
            outcomes = await self.target.write(events)
            if len(outcomes) != len(events):
                raise FatalError(f"target returned {len(outcomes)} outcomes for {len(events)} events")
        except Exception as exc:
            self._note_batch_error(TARGET, exc)
            failures.extend(_Failure(e, TARGET, exc) for e in events)
            return
        delivered = 0
        settle = self.tracker.settle
        for event, outcome in zip(events, outcomes, strict=True):
            if outcome is None:
                settle(event)
                delivered += 1
            else:
                failures.append(_Failure(event, TARGET, outcome))
        if delivered < len(events):
            failed = next(o for o in outcomes if o is not None)
            if delivered == 0:
                self._note_batch_error(TARGET, failed)  # nothing gets through: show it
            else:
                self.last_error = f"{TARGET}: {type(failed).__name__}: {failed}"
        if delivered:
            self.stats.delivered += delivered
            self.observer.events("delivered", delivered)
            if self.state == PipeState.FAILED and self._fatal is None:
                self.last_error = None
                self._set_state(PipeState.RUNNING)
        if self.log.tracing:
            for event, outcome in zip(events, outcomes, strict=True):
                if outcome is None:
                    self.log.trace("event_delivered", partition=event.partition, position=event.position)

    def _note_batch_error(self, stage: str, exc: Exception) -> None:
        self.last_error = f"{stage}: {type(exc).__name__}: {exc}"
        if not isinstance(exc, FatalError):
            self._set_state(PipeState.FAILED)

    # ------------------------------------------------------------------ retries

    async def _retry(self, failures: list[_Failure]) -> bool:
        """Retry failed events until delivered or dead-lettered: True; False when abandoned (stopping)."""
        while failures:
            now_wall = self.clock.wall()
            now = self.clock.monotonic()
            give_up: list[_Failure] = []
            again: list[_Failure] = []
            for failure in failures:
                event = failure.event
                event.attempts += 1
                if event.first_attempt_at == 0.0:
                    event.first_attempt_at = event.ingested_at or now_wall
                event.last_attempt_at = now_wall
                self._count_failure(failure)
                if self.retry_policy.gives_up(event, failure.error, now):
                    give_up.append(failure)
                else:
                    again.append(failure)
            if give_up:
                if self.dead_letter is not None:
                    if not await self._dead_letter(give_up):
                        return False  # stopping: abandoned, never committed
                else:
                    for failure in give_up:
                        self.log.error(
                            "event_stuck",
                            stage=failure.stage,
                            partition=failure.event.partition,
                            position=failure.event.position,
                            attempts=failure.event.attempts,
                            error=f"{type(failure.error).__name__}: {failure.error}",
                        )
                    if self.once:
                        # A --once run must end: fail the pipe (exit 1) rather than retry
                        # for ever. Nothing is committed past the stuck event, so the next
                        # run tries it again.
                        failure = give_up[0]
                        self._fail(
                            FatalError(
                                f"{failure.stage} failed for good at {failure.event.partition}@"
                                f"{failure.event.position} after {failure.event.attempts} attempts "
                                f"and there is no dead_letter: {type(failure.error).__name__}: {failure.error}"
                            )
                        )
                        return False
                    again.extend(give_up)  # no dead letter: never drop, keep trying
            if not again:
                return True
            attempts = max(f.event.attempts for f in again)
            if await self._sleep_or_stop(self._backoff(attempts), draining=True):
                return False
            self.stats.retried += len(again)
            self.observer.events("retried", len(again))
            failures = []
            by_stage: dict[str, list[Event]] = {}
            for failure in again:
                by_stage.setdefault(failure.stage, []).append(failure.event)
            async with self._working:
                for stage in (SOURCE, FILTER, ENRICHMENT, TRANSFORM, TARGET):
                    events = by_stage.get(stage)
                    if events:
                        # A source fault has no stage to redo: without a dead letter it is processed.
                        await self._run_stages(events, FILTER if stage == SOURCE else stage, failures)
        return True

    def _count_failure(self, failure: _Failure) -> None:
        self.stats.failed += 1
        by_stage = self.stats.failed_by_stage
        by_stage[failure.stage] = by_stage.get(failure.stage, 0) + 1
        self.observer.events("failed", 1, failure.stage)
        if self.log.tracing:
            self.log.trace(
                "event_failed",
                stage=failure.stage,
                partition=failure.event.partition,
                position=failure.event.position,
                error=str(failure.error),
            )

    async def _dead_letter(self, failures: list[_Failure]) -> bool:
        """Write to the dead letter, retrying the write itself until it succeeds or we stop."""
        assert self.dead_letter is not None
        pending = [self._dead_letter_event(f) for f in failures]
        attempt = 0
        while pending:
            try:
                outcomes = await self.dead_letter.write(pending)
                if len(outcomes) != len(pending):
                    raise FatalError(
                        f"dead letter returned {len(outcomes)} outcomes for {len(pending)} events"
                    )
            except Exception as exc:
                outcomes = [exc] * len(pending)
            still: list[Event] = []
            written = 0
            for dl_event, outcome in zip(pending, outcomes, strict=True):
                if outcome is None:
                    original = dl_event.parent
                    assert original is not None
                    self.tracker.settle(original)
                    written += 1
                else:
                    still.append(dl_event)
            if written:
                self.stats.dead_lettered += written
                self.observer.events("dead_lettered", written)
            pending = still
            if pending:
                attempt += 1
                self.last_error = f"dead_letter: {outcomes[0]}"
                self.log.error("dead_letter_failed", error=str(self.last_error), events=len(pending))
                if await self._sleep_or_stop(self._backoff(attempt), draining=True):
                    return False
        return True

    def _dead_letter_event(self, failure: _Failure) -> Event:
        event = failure.event
        record = dead_letter_record(self.name, failure.stage, failure.error, event)
        self.log.info(
            "event_dead_lettered",
            stage=failure.stage,
            partition=event.partition,
            position=event.position,
            error=record["error"],
        )
        # parent points at the original so that a written dead letter settles it.
        return Event(
            record=record,
            partition=event.partition,
            position=event.position,
            body_field="",
            payload=record,
            parent=event,
        )

    def _backoff(self, attempt: int) -> float:
        return self.retry_policy.backoff(attempt)

    async def _sleep_or_stop(self, seconds: float, draining: bool = False) -> bool:
        """Sleep on the clock; True when the pipe is stopping (past its drain deadline if ``draining``)."""
        if self._stopping.is_set():
            if not draining or self._past_deadline():
                return True
            # Already draining: keep backing off (never spin), but not past the deadline.
            await self.clock.sleep(
                min(seconds, max(0.0, (self._drain_deadline or 0.0) - self.clock.monotonic()))
            )
            return self._past_deadline()
        await first(self.clock.sleep(seconds), self._stopping.wait())
        if self._stopping.is_set():
            return not draining or self._past_deadline()
        return False

    def _past_deadline(self) -> bool:
        return self._drain_deadline is not None and self.clock.monotonic() >= self._drain_deadline

    # ------------------------------------------------------------------ checkpoints

    async def _commit_loop(self) -> None:
        interval = self.config.checkpoint_interval
        while True:
            await first(self._dirty.wait(), self.clock.sleep(interval))
            self._dirty.clear()
            # Shielded: cancelling the committer at shutdown must not cut a commit in
            # half (what it took would be neither committed nor left for the final one).
            await asyncio.shield(self._commit_now())

    async def _commit_now(self, final: bool = False) -> None:
        async with self._commit_lock:  # one at a time: the committer, a revoke, the final one
            dirty = self.tracker.take_dirty()
            if not dirty:
                return
            try:
                if not self.source.tracks_position:
                    positions = self.tracker.positions()
                    if positions != self._saved:
                        await self.store.save(self.name, positions)
                        self._saved = positions
                await self.source.commit(dirty)
                if self.log.tracing:
                    self.log.trace("checkpoint_committed", positions=dirty)
            except Exception as exc:
                # Put them back: the next commit sends them again.
                self.tracker.restore_dirty(dirty)
                self.log.error("checkpoint_failed", error=f"{type(exc).__name__}: {exc}", final=final)

    async def _revoke(self, partitions: Collection[str]) -> None:
        """A rebalance takes ``partitions`` away: finish their work within a bound, commit, forget."""
        lanes = [self._lanes[p] for p in partitions if p in self._lanes]
        deadline = self.clock.monotonic() + min(self.drain_timeout_s, 10.0)
        for lane in lanes:
            while self.tracker.unsettled(lane.partition) and self.clock.monotonic() < deadline:
                lane.grew.set()
                await first(self._space.wait(), self.clock.sleep(0.05))
                self._space.clear()
        await self._commit_now()
        for lane in lanes:
            self._lanes.pop(lane.partition, None)
            if lane.task is not None:
                lane.task.cancel()
        # Forgotten together with the lanes, before any await: an event of these
        # partitions read from here on belongs to a new lane and a new settled prefix.
        self.tracker.forget(partitions)
        await asyncio.gather(*(lane.task for lane in lanes if lane.task is not None), return_exceptions=True)
        self._space.set()
        self.log.info("partitions_revoked", partitions=sorted(partitions))
