"""One pipe, running: pull, batch, filter, enrich, transform, deliver, retry,
dead-letter, checkpoint.

Shape of the machine:

- one *reader* task pulls from the source while the ``InFlightGate`` has room
  (backpressure is that bound, never a sleep);
- one ``Lane`` per partition cuts batches by ``batch.size`` / ``batch.window``
  and takes each through the stages (``BatchProcessor.prepare``) while the
  previous one is written and retried (``finish``); writes of a partition are
  never concurrent, so order within a partition holds; at most
  ``concurrency`` steps talk to other systems at once;
- the ``Committer`` commits, per partition, the contiguous settled prefix of
  batches (``SettledTracker``) after batches settle and at least every
  ``checkpoint_interval``;
- a watchdog marks the pipe DEGRADED while a system it waits on has not
  answered for ``stall_timeout``.

Everyone outside reads ``status()``, a frozen snapshot.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Collection
from itertools import groupby
from operator import attrgetter
from typing import Any

from pipes.aio import first
from pipes.checkpoints import Batch, CheckpointStore, SettledTracker
from pipes.clock import Clock, SystemClock
from pipes.committer import Committer
from pipes.config import PipeDefinition
from pipes.connector import ConnectorContext, Enricher, Source, SourceContext, Target
from pipes.errors import FatalError, PipeFailed
from pipes.events import Event, Position
from pipes.gate import InFlightGate
from pipes.lanes import Lane
from pipes.observe import NullObserver, PipeLog, RunnerObserver
from pipes.pipeline import Pipeline
from pipes.processing import BatchProcessor
from pipes.retry import RetryPolicy
from pipes.stages import EnrichmentStage
from pipes.status import PipeHealth, PipeState, PipeStats, PipeStatus
from pipes.stopping import StopControl
from pipes.tap import TapHub

__all__ = ["PipeRunner", "PipeState", "PipeStats"]

_by_partition = attrgetter("partition")


class PipeRunner:
    """Runs one pipe definition until stopped, or (``once``) until the source is caught up.

    ``run()`` returns normally after a clean stop or a finished ``once`` run and
    raises ``PipeFailed`` (a ``FatalError``) when the pipe cannot run: a
    connector refused its definition, its checkpoint is unreadable, or (``once``)
    a system stayed unreachable for ``start_timeout_s``. ``request_stop()``
    stops pulling; what was pulled is still processed until ``drain_timeout``.
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
        start_timeout_s: float | None = None,
        observer: RunnerObserver | None = None,
        log: PipeLog | None = None,
        rng: random.Random | None = None,
        worker: str = "",
        taps: TapHub | None = None,
    ) -> None:
        self.definition = definition
        self.config = config = definition.config
        self.name = definition.name
        self.store = store
        self.clock = clock or SystemClock()
        self.once = once
        self.state_dir = state_dir
        self.read_timeout_s = read_timeout_s
        #: ``once``: give up starting after this long (None: keep trying until stopped).
        self.start_timeout_s = start_timeout_s
        #: The worker process this runs in (``--workers``), for sources' consumer names.
        self.worker = worker
        self.observer: RunnerObserver = observer or NullObserver()
        self.log = log or PipeLog.for_config(self.name, config.logging)
        #: Live taps on this pipe (the daemon passes the pipe's own, so taps outlive restarts).
        self.taps = taps if taps is not None else TapHub(self.name, self.clock)
        self.health = PipeHealth(on_change=self._state_changed)
        self.stats = PipeStats()
        self.stop = StopControl(self.clock, drain_timeout_s)
        self.gate = InFlightGate(config.in_flight_bound)
        self.tracker = SettledTracker(on_settled=self._batch_settled, on_moved=self._checkpoint_moved)

        self.source: Source = definition.source.build_source()
        self.target: Target = definition.target.build_target()
        enrichment: EnrichmentStage | None = None
        self.enricher: Enricher | None = None
        if definition.enrichment is not None:
            self.enricher = definition.enrichment.build_enricher()
            enrichment = EnrichmentStage(self.enricher, definition.enrichment_into)
        self.dead_letter: Target | None = None
        if definition.dead_letter is not None:
            self.dead_letter = definition.dead_letter.build_target()
        self.pipeline = Pipeline.build(
            filter=definition.filter,
            enrichment=enrichment,
            transform=definition.transform,
            target=self.target,
        )
        self._variables = definition.template_variables()
        #: Parts waiting on another system right now, since when (monotonic): the watchdog reads it.
        self._busy: dict[str, float] = {}
        self.processor = BatchProcessor(
            pipe=self.name,
            pipeline=self.pipeline,
            tracker=self.tracker,
            policy=RetryPolicy(config.retry, rng),
            dead_letter=self.dead_letter,
            clock=self.clock,
            stop=self.stop,
            health=self.health,
            stats=self.stats,
            observer=self.observer,
            log=self.log,
            variables=self._variables,
            working=asyncio.Semaphore(config.concurrency),
            once=once,
            on_fatal=self._fail,
            busy=self._busy,
            on_dead_lettered=self.source.dead_lettered,
            taps=self.taps,
        )
        self.committer = Committer(
            pipe=self.name,
            tracker=self.tracker,
            source=self.source,
            store=store,
            log=self.log,
            health=self.health,
            busy=self._busy,
            clock=self.clock,
        )
        self._lanes: dict[str, Lane] = {}
        #: The batch window: the pipe's when it sets one, else the source's preference, else the default.
        explicit = "batch" in config.model_fields_set and "window" in config.batch.model_fields_set
        preferred = getattr(self.source, "batch_window_s", None)
        self._window_s = config.batch.window if explicit or preferred is None else float(preferred)
        #: Queued events beyond which a retrying lane's partition is paused at the source.
        self._lane_cap = min(2 * config.batch.size, max(1, config.in_flight_bound // 2))
        self._settled = asyncio.Event()  # a batch settled (a revoke waits on it)
        self._reader_done = asyncio.Event()
        self._fatal: PipeFailed | None = None
        self._started: list[Source | Target | Enricher] = []
        self._loaded = False
        self._running_since: float | None = None
        self._running_s = 0.0
        self._was_unwell = False
        #: Since when reads come back empty (None: the last one brought events).
        self._empty_since: float | None = None

    # ------------------------------------------------------------------ views

    @property
    def state(self) -> str:
        return str(self.health.state)

    @property
    def last_error(self) -> str | None:
        return self.health.last_error

    def status(self) -> PipeStatus:
        """What the pipe is doing now, as values (the daemon and the admin API read this)."""
        try:
            lag = self.source.lag() if self._started else None
        except Exception:  # lag is best effort; a status must never fail on it
            lag = None
        running = self._running_s
        if self._running_since is not None:
            running += self.clock.monotonic() - self._running_since
        return PipeStatus(
            name=self.name,
            state=self.health.state,
            reason=self.health.reason,
            last_error=self.health.last_error,
            stats=self.stats.copy(),
            in_flight=self.gate.in_flight,
            positions=self.tracker.positions(),
            lag=dict(lag) if lag is not None else None,
            running_s=running,
        )

    # ------------------------------------------------------------------ lifecycle

    def request_stop(self) -> None:
        """Stop pulling; in-flight work drains. Safe to call more than once."""
        if self.stop.request():
            self._set_lifecycle(PipeState.STOPPING)

    def _state_changed(self, state: PipeState) -> None:
        self.observer.state(str(state))
        if state is PipeState.DEGRADED:
            self.log.warning("pipe_degraded", reason=self.health.reason)
        elif state is PipeState.RUNNING and self._was_unwell:
            self.log.info("pipe_recovered")
        self._was_unwell = state in (PipeState.DEGRADED, PipeState.FAILED)

    def abandon(self) -> None:
        """Stop now, without a drain: what settled is committed, the rest is left for the next run."""
        self.stop.abandon()
        self._set_lifecycle(PipeState.STOPPING)

    def _set_lifecycle(self, state: PipeState) -> None:
        now = self.clock.monotonic()
        if state is PipeState.RUNNING and self._running_since is None:
            self._running_since = now
        elif state is not PipeState.RUNNING and self._running_since is not None:
            self._running_s += now - self._running_since
            self._running_since = None
        self.health.set_lifecycle(state)

    async def run(self) -> None:
        self._set_lifecycle(PipeState.STARTING)
        tasks: list[asyncio.Task[None]] = []
        try:
            if await self._start_connectors():
                self._set_lifecycle(PipeState.RUNNING)
                self.log.info(
                    "pipe_started", source=self.definition.source.type, target=self.definition.target.type
                )
                tasks.append(asyncio.create_task(self.committer.loop(self.config.checkpoint_interval)))
                tasks.append(asyncio.create_task(self._watch()))
                await self._read_loop()
                await self._drain()
        except Exception as exc:  # a bug, not a refusal: the pipe fails alone and its state says so
            if self._fatal is None:
                self._fail(PipeFailed(f"{type(exc).__name__}: {exc}"))
            raise
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._cancel_lanes()
            if self._started:
                await self.committer.commit(final=True)
            await self._stop_connectors()
            self._set_lifecycle(PipeState.FAILED if self._fatal is not None else PipeState.STOPPED)
            self.log.info("pipe_stopped", **self.stats.as_dict())
        if self._fatal is not None:
            raise self._fatal

    async def _start_connectors(self) -> bool:
        """Start every connector, retrying unreachable systems with backoff until stopped."""
        checkpoint: dict[str, Any] = {}
        attempt = 0
        began = self.clock.monotonic()
        # --once gives up at the start timeout, even inside an attempt that hangs (a frozen system).
        deadline = began + self.start_timeout_s if self.once and self.start_timeout_s is not None else None
        while True:
            try:
                if not self.source.tracks_position and not self._loaded:
                    checkpoint = await self.store.load(self.name)
                    self.tracker.restore(checkpoint)
                    self.committer.saved = dict(checkpoint)
                    self._loaded = True
                    if checkpoint:
                        self.log.info("resuming_from_checkpoint", positions=checkpoint)
                pending: list[tuple[Source | Target | Enricher, ConnectorContext]] = []
                # Where events go first, the source last: a target that refuses the
                # definition fails the pipe before the source joins a consumer group.
                pending.append((self.target, self._context("target")))
                if self.enricher is not None:
                    pending.append((self.enricher, self._context("enrichment")))
                if self.dead_letter is not None:
                    pending.append((self.dead_letter, self._context("dead_letter")))
                pending.append((self.source, self._source_context(self.committer.saved)))
                for connector, ctx in pending:
                    if connector in self._started:
                        continue
                    await self._start_one(connector, ctx, deadline)
                    self._started.append(connector)
                self.health.recovered("start")
                return True
            except FatalError as exc:
                self._fail(exc if isinstance(exc, PipeFailed) else PipeFailed(str(exc)))
                return False
            except Exception as exc:
                attempt += 1
                error = f"{type(exc).__name__}: {exc}"
                self.health.failed("start", error)
                self.log.error("connect_failed", error=error, attempt=attempt)
                if self.once and self.start_timeout_s is not None:
                    waited = self.clock.monotonic() - began
                    if waited >= self.start_timeout_s:
                        self._fail(PipeFailed(f"could not start within {self.start_timeout_s:g}s: {error}"))
                        return False
                delay = self.processor.policy.backoff(attempt)
                if deadline is not None:  # the last attempt comes at the deadline, not a backoff after it
                    delay = min(delay, max(0.0, deadline - self.clock.monotonic()))
                if await self.stop.sleep_or_stop(delay):
                    return False

    async def _start_one(
        self, connector: Source | Target | Enricher, ctx: ConnectorContext, deadline: float | None
    ) -> None:
        """Start one connector; past ``deadline`` give up on it with a TimeoutError that names it."""
        if deadline is None:
            await connector.start(ctx)  # type: ignore[arg-type]
            return
        starting = asyncio.ensure_future(connector.start(ctx))  # type: ignore[arg-type]
        await first(starting, self.clock.sleep(deadline - self.clock.monotonic()))
        if starting.done():
            starting.result()
            return
        starting.cancel()
        await asyncio.gather(starting, return_exceptions=True)
        try:
            await connector.stop()  # it may hold half-open clients
        except Exception as exc:
            self.log.error("connector_stop_failed", error=f"{type(exc).__name__}: {exc}")
        raise TimeoutError(f"{self._kind(connector)} did not answer")

    def _kind(self, connector: Source | Target | Enricher) -> str:
        """``redis_stream source``: the connector's type and its role in this pipe, for messages."""
        definition = self.definition
        roles: list[tuple[object, str, object]] = [
            (self.source, "source", definition.source),
            (self.target, "target", definition.target),
            (self.enricher, "enrichment", definition.enrichment),
            (self.dead_letter, "dead letter", definition.dead_letter),
        ]
        for candidate, role, spec in roles:
            if candidate is connector:
                return f"{getattr(spec, 'type', '?')} {role}"
        return type(connector).__name__

    def _context(self, role: str) -> ConnectorContext:
        return ConnectorContext(
            pipe=self.name,
            clock=self.clock,
            log=self.log.bind(role=role),
            arn=self._variables.get(f"aws.pipes.{role.replace('_', '-')}-arn", ""),
            state_dir=self.state_dir,
        )

    def _source_context(self, checkpoint: dict[str, Position]) -> SourceContext:
        return SourceContext(
            pipe=self.name,
            clock=self.clock,
            log=self.log.bind(role="source"),
            arn=self._variables.get("aws.pipes.source-arn", ""),
            state_dir=self.state_dir,
            checkpoint=dict(checkpoint),
            once=self.once,
            revoke=self._revoke,
            max_in_flight=self.config.in_flight_bound,
            worker=self.worker,
        )

    async def _stop_connectors(self) -> None:
        for connector in reversed(self._started):
            try:
                await connector.stop()
            except Exception as exc:  # stop must not raise; a broken one must not block the rest
                self.log.error("connector_stop_failed", error=f"{type(exc).__name__}: {exc}")
        self._started.clear()

    def _fail(self, exc: FatalError) -> None:
        failed = exc if isinstance(exc, PipeFailed) else PipeFailed(str(exc))
        if self._fatal is None:
            self._fatal = failed
        self.health.fail_for_good(str(failed))
        self.log.error("pipe_failed", error=str(failed))
        # The pipe cannot go on: abandon in-flight work now (uncommitted, so it
        # is delivered again next run) rather than retrying into a dead pipe.
        self.stop.abandon()

    # ------------------------------------------------------------------ reading

    async def _read_loop(self) -> None:
        gate = self.gate
        size = self.config.batch.size
        clock = self.clock
        failures = 0
        stop_wait = asyncio.ensure_future(self.stop.requested.wait())
        try:
            while not self.stop.is_set:
                if gate.free <= 0:
                    await first(gate.wait(on_shut=self._wake_lanes), stop_wait)
                    continue
                began = clock.monotonic()
                self._busy["source"] = began
                read = asyncio.ensure_future(self.source.read(min(gate.free, size), self.read_timeout_s))
                try:
                    await asyncio.wait({read, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    self._busy.pop("source", None)
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
                    error = f"{type(exc).__name__}: {exc}"
                    self.health.failed("source", f"source: {error}")
                    self.log.error("source_read_failed", error=error, attempt=failures)
                    if await self.stop.sleep_or_stop(self.processor.policy.backoff(failures)):
                        break
                    continue
                if failures:
                    failures = 0
                    self.health.recovered("source")
                if not events:
                    if self._empty_since is None:
                        self._empty_since = began
                    if self.once and self.source.caught_up():
                        break
                    continue
                self._empty_since = None
                self.observer.duration("source", clock.monotonic() - began)
                self._accept(events)
        finally:
            stop_wait.cancel()
            self._reader_done.set()

    def _wake_lanes(self) -> None:
        # The reader waits for events to settle: lanes stop waiting for windows to fill.
        for lane in self._lanes.values():
            lane.grew.set()

    def _accept(self, events: list[Event]) -> None:
        now, wall = self.clock.monotonic(), self.clock.wall()
        count = len(events)
        self.gate.take(count)
        self.stats.received += count
        self.observer.events("received", count)
        lanes = self._lanes
        retrying = self.processor.retrying
        cap = self._lane_cap
        for partition, run in groupby(events, _by_partition):
            lane = lanes.get(partition)
            if lane is None:
                lane = self._open_lane(partition)
            lane.add(run, now, wall)
            if retrying and len(lane) > cap and not lane.paused and partition in retrying:
                # This partition is held up by a retrying event: stop fetching it so
                # that it cannot fill the in-flight bound and hold the others. (A
                # merely slow partition is ordinary backpressure and is not paused.)
                lane.paused = True
                self.source.pause([partition])
        if self.log.tracing or self.taps.active:
            self.processor.trace.received(events)

    def _open_lane(self, partition: str) -> Lane:
        lane = Lane(
            partition,
            size=self.config.batch.size,
            window_s=self._window_s,
            clock=self.clock,
            gate=self.gate,
            processor=self.processor,
            reader_done=self._reader_done,
            stop=self.stop,
            resume=lambda p: self.source.resume([p]),
        )
        self._lanes[partition] = lane
        lane.task = asyncio.create_task(lane.run(), name=f"{self.name}:{partition}")
        lane.task.add_done_callback(lambda task: self._lane_ended(lane, task))
        return lane

    def _lane_ended(self, lane: Lane, task: asyncio.Task[None]) -> None:
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
            self._fail(PipeFailed(f"partition {lane.partition}: {type(error).__name__}: {error}"))

    def _batch_settled(self, batch: Batch) -> None:
        self.gate.release(batch.count)
        self._settled.set()

    def _checkpoint_moved(self) -> None:
        self.committer.dirty.set()

    # ------------------------------------------------------------------ stopping

    async def _cancel_lanes(self) -> None:
        lanes = list(self._lanes.values())
        self._lanes.clear()  # first: these cancellations are ours (see _lane_ended)
        tasks = [lane.task for lane in lanes if lane.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _drain(self) -> None:
        """Let lanes finish what was pulled: until done, or until the drain deadline."""
        tasks = [lane.task for lane in self._lanes.values() if lane.task is not None]
        if not tasks:
            return
        all_done = asyncio.ensure_future(asyncio.wait(tasks))
        try:
            while not all_done.done():
                if self.stop.is_set:
                    await asyncio.wait({all_done}, timeout=self.stop.remaining())
                    if not all_done.done() and not self.stop.abandoned:
                        self.log.error("drain_timeout", abandoned=self.gate.in_flight)
                    break
                # A finished --once run, or a stop requested while we wait: keep watching.
                await first(all_done, self.stop.requested.wait())
        finally:
            all_done.cancel()
        for task in tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]

    async def _revoke(self, partitions: Collection[str]) -> None:
        """A rebalance takes ``partitions`` away: finish their work within a bound, commit, forget."""
        lanes = [self._lanes[p] for p in partitions if p in self._lanes]
        deadline = self.clock.monotonic() + min(self.stop.drain_timeout_s, 10.0)
        for lane in lanes:
            while (len(lane) or self.tracker.unsettled(lane.partition)) and self.clock.monotonic() < deadline:
                lane.grew.set()
                self._settled.clear()
                await first(self._settled.wait(), self.clock.sleep(0.05))
        await self.committer.commit()
        for lane in lanes:
            self._lanes.pop(lane.partition, None)
            if lane.task is not None:
                lane.task.cancel()
        # Forgotten together with the lanes, before any await: an event of these
        # partitions read from here on belongs to a new lane and a new settled prefix.
        dropped = self.tracker.forget(partitions)
        self.gate.release(sum(b.count for b in dropped) + sum(lane.drop_queued() for lane in lanes))
        await asyncio.gather(*(lane.task for lane in lanes if lane.task is not None), return_exceptions=True)
        self.log.info("partitions_revoked", partitions=sorted(partitions))

    # ------------------------------------------------------------------ watching

    async def _watch(self) -> None:
        """Mark the pipe DEGRADED while a system it waits on has not answered for ``stall_timeout``."""
        limit = self.config.stall_timeout
        every = min(1.0, limit / 4)
        while True:
            await self.clock.sleep(every)
            now = self.clock.monotonic()
            waiting = dict(self._busy)
            # A source fetching in the background may look idle only because nobody
            # asked it for anything (backpressure): it counts while reads come back empty.
            empty = self._empty_since
            idle = self._source_idle_s() if empty is not None and now - empty >= limit else None
            for part in ("source", "target", "enrichment", "dead_letter", "checkpoint"):
                since = waiting.get(part)
                silent = now - since if since is not None else 0.0
                if part == "source":
                    silent -= self.read_timeout_s  # a read may wait that long for events, by contract
                if part == "source" and idle is not None:
                    silent = max(silent, idle)
                if silent >= limit:
                    self.health.stall(part, f"no answer for {silent:.0f}s")
                else:
                    self.health.unstall(part)

    def _source_idle_s(self) -> float | None:
        idle = getattr(self.source, "idle_s", None)
        if idle is None:
            return None
        try:
            value = idle()
        except Exception:
            return None
        return float(value) if value is not None else None
