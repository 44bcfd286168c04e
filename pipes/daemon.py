"""Many pipes in one process: desired state, hot reload, start/stop, clean shutdown.

Each pipe runs in its own task with its own connectors, so a pipe whose
system is down (or whose definition a system refuses) never stops the others.

Reload compares each pipe's *fingerprint* (its YAML after env interpolation)
with the running one: only pipes whose definition changed are restarted
(stop, drain, commit, then start the new definition), and the runners of
unchanged pipes are not touched at all, so they see no gap and deliver no
duplicate. A file that no longer validates changes nothing for its pipes;
they keep running with the definition they had.

Every change of the set of runners (reload, start, stop) runs under one lock,
so a SIGHUP arriving during an API stop cannot start a pipe twice.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from pipes.checkpoints import CheckpointStore
from pipes.clock import Clock, SystemClock
from pipes.config import FileResult, PipeDefinition, find_files, load_paths
from pipes.errors import FatalError
from pipes.events import Position
from pipes.lease_keeper import LeaseKeeper
from pipes.metrics import DaemonMetrics, PipeObserver, PipeProbe
from pipes.observe import PipeLog
from pipes.runner import PipeRunner
from pipes.status import PipeState, PipeStats
from pipes.tap import TapHub

__all__ = ["DESIRED_STATES", "Daemon", "PipeHandle", "PipeTotals", "ReloadReport", "UnknownPipe"]

RUNNING, STOPPED = PipeState.RUNNING, PipeState.STOPPED
DESIRED_STATES = (RUNNING, STOPPED)

type Loader = Callable[[Sequence[str]], list[FileResult]]


@dataclass(frozen=True)
class PipeTotals:
    """A pipe over every run it had in this process: what the progress line and the summary show."""

    name: str
    state: str
    stats: PipeStats


class UnknownPipe(LookupError):
    """No pipe of that name is configured."""


@dataclass
class PipeHandle:
    """A pipe the daemon knows: definition, desired state, its current runner and task.

    The runner of the last run is kept after it stopped, so its checkpoint
    positions and last error stay visible; ``earlier`` holds the counters of the
    runs before it (and ``earlier_running_s`` the time they ran), so counters
    and rates cover every run of the pipe in this process, as the metrics do.
    """

    definition: PipeDefinition
    desired: str
    observer: PipeObserver
    runner: PipeRunner | None = None
    task: asyncio.Task[None] | None = None
    error: str | None = None
    earlier: PipeStats = field(default_factory=PipeStats)
    earlier_running_s: float = 0.0
    #: Set while the pipe waits for its lease (``--coordination``): why it does not run here.
    standby: str | None = None
    #: Live taps on the pipe; handed to each runner, so that a tap outlives restarts.
    taps: TapHub = field(default_factory=TapHub)

    @property
    def name(self) -> str:
        return self.definition.name

    @property
    def alive(self) -> bool:
        return self.task is not None and not self.task.done()

    @property
    def state(self) -> str:
        if self.standby is not None and not self.alive and self.desired == RUNNING:
            return PipeState.STANDBY
        if self.runner is not None:
            return self.runner.state
        return PipeState.FAILED if self.error else PipeState.STOPPED

    @property
    def last_error(self) -> str | None:
        if self.error:
            return self.error
        return self.runner.status().last_error if self.runner is not None else None

    @property
    def reason(self) -> str | None:
        """Why the pipe is not plainly RUNNING right now (failing, stalled, standing by), or None."""
        if self.error:
            return self.error
        if self.state == PipeState.STANDBY:
            return self.standby
        return self.runner.status().reason if self.runner is not None and self.alive else None

    def stats(self) -> PipeStats:
        """Counters over every run of this pipe in this process."""
        return self.earlier + self.runner.status().stats if self.runner is not None else self.earlier.copy()

    def counters(self) -> dict[str, Any]:
        return self.stats().as_dict()

    def totals(self) -> PipeTotals:
        return PipeTotals(self.name, str(self.state), self.stats())

    def running_s(self) -> float:
        """Seconds this pipe has run in this process, over every run (what its rate divides by)."""
        current = self.runner.status().running_s if self.runner is not None else 0.0
        return self.earlier_running_s + current

    def positions(self) -> dict[str, Position] | None:
        """Checkpoint positions as last settled; None when the pipe never ran here."""
        return dict(self.runner.status().positions) if self.runner is not None else None

    def in_flight(self) -> int:
        """Events taken from the source and not settled yet (0 when not running)."""
        return self.runner.status().in_flight if self.runner is not None and self.alive else 0

    def lag(self) -> Mapping[str, int] | None:
        if self.runner is None or not self.alive:
            return None
        return self.runner.status().lag


@dataclass
class ReloadReport:
    """What one reload did, by pipe name; ``errors`` are FILE:LINE:COL lines."""

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    restarted: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class Daemon:
    """Runs pipe definitions until stopped (or, ``once``, until every pipe has finished).

    ``paths`` are what ``reload()`` reads again; ``definitions`` the pipes to
    start with (already loaded and checked by the caller).
    """

    def __init__(
        self,
        definitions: Iterable[PipeDefinition] = (),
        *,
        store: CheckpointStore,
        paths: Sequence[str] = (),
        state_dir: str = "state",
        once: bool = False,
        drain_timeout_s: float = 30.0,
        clock: Clock | None = None,
        metrics: DaemonMetrics | None = None,
        loader: Loader | None = None,
        runner_options: Mapping[str, Any] | None = None,
        leases: LeaseKeeper | None = None,
        only: Callable[[PipeDefinition], bool] | None = None,
    ) -> None:
        self.store = store
        self.paths = list(paths)
        self.state_dir = state_dir
        self.once = once
        self.drain_timeout_s = drain_timeout_s
        self.clock = clock or SystemClock()
        self.metrics = metrics or DaemonMetrics()
        self.metrics.set_probe(self.probes)
        self.loader: Loader = loader or load_paths
        self.runner_options = dict(runner_options or {})
        self.log = structlog.get_logger().bind(component="daemon")
        #: ``--coordination``: pipes that cannot be shared run only while their lease is held here.
        self.leases = leases
        #: ``--workers``: the pipes this process runs, of those its files define (None: all).
        self.only = only
        self.pipes: dict[str, PipeHandle] = {}
        for d in definitions:
            if d.name not in self.pipes and (only is None or only(d)):
                self.pipes[d.name] = self._handle(d)
        #: Called after the set of runners changed (the CLI's progress line follows it).
        self.on_change: Callable[[], None] | None = None
        self._lock = asyncio.Lock()
        self._stop = asyncio.Event()
        self._changed = asyncio.Event()
        self._background: set[asyncio.Task[Any]] = set()
        # Taken now, close to when the caller loaded the definitions, so that
        # --watch sees a file changed between loading and watching.
        self._signature = self.file_signature() if self.paths else {}

    # ------------------------------------------------------------------ running

    def _handle(self, definition: PipeDefinition) -> PipeHandle:
        return PipeHandle(
            definition,
            desired=definition.config.state,
            observer=self.metrics.observer(definition.name),
            taps=TapHub(definition.name, self.clock),
        )

    async def run(self) -> None:
        """Start the pipes that should run; return once stopped and drained."""
        for handle in self.pipes.values():
            if handle.desired == RUNNING:
                self._start(handle)
        self._notify()
        keeper = asyncio.create_task(self.leases.run(self)) if self.leases is not None else None
        if self.once:
            # Wait for every runner, including ones a reload or the API started meanwhile.
            while True:
                tasks = {h.task for h in self.pipes.values() if h.task is not None and not h.task.done()}
                if not tasks and not self._lock.locked():
                    break
                self._changed.clear()
                changed = asyncio.ensure_future(self._changed.wait())
                await asyncio.wait({*tasks, changed}, return_when=asyncio.FIRST_COMPLETED)
                changed.cancel()
        else:
            await self._stop.wait()
        await self._shutdown()
        if keeper is not None and self.leases is not None:
            await keeper
            await self.leases.close()  # after the pipes drained: another daemon may take over at once

    def request_stop(self) -> None:
        """Stop pulling everywhere; each pipe drains within the drain timeout."""
        self._stop.set()
        for handle in self.pipes.values():
            if handle.runner is not None and handle.alive:
                handle.runner.request_stop()

    def abandon(self) -> None:
        """Stop every pipe now, without a drain: what was settled is committed, the rest is
        left for the next run (at least once, nothing lost). For when the output is gone
        for good (the reader of stdout went away), so that retrying cannot help."""
        self.drain_timeout_s = 0.0
        self._stop.set()
        for handle in self.pipes.values():
            if handle.runner is not None and handle.alive:
                handle.runner.abandon()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    async def stopped(self) -> None:
        """Until a stop was requested."""
        await self._stop.wait()

    async def start_leased(self, handle: PipeHandle) -> None:
        """The lease of ``handle`` was taken here: start it (if it should run)."""
        async with self._lock:
            if handle.desired == RUNNING and not handle.alive:
                self._start(handle)
        self._notify()

    def lose_lease(self, handle: PipeHandle) -> None:
        """The lease of ``handle`` expired: stop at once, no drain (another daemon may run it now)."""
        if handle.runner is not None and handle.alive:
            handle.runner.abandon()
        handle.standby = "its lease expired here; another daemon may run it"

    async def _shutdown(self) -> None:
        self.request_stop()
        # A reload or API change under way finishes (it starts nothing once stopping);
        # cancelling it could cancel a pipe in the middle of its drain.
        while self._background:
            await asyncio.wait(set(self._background))
        tasks = {h.task for h in self.pipes.values() if h.task is not None}
        if tasks:
            await asyncio.wait(tasks)

    def _start(self, handle: PipeHandle) -> None:
        if self._stop.is_set() or handle.alive:
            return
        leases = self.leases
        if leases is not None and leases.needs(handle) and not leases.holds(handle.name):
            handle.standby = handle.standby or "waiting for its lease"
            return  # the lease keeper starts it once the lease is taken here
        if handle.runner is not None:
            last = handle.runner.status()
            handle.earlier = handle.earlier + last.stats
            handle.earlier_running_s += last.running_s
        handle.error = None
        try:
            runner = PipeRunner(
                handle.definition,
                store=self.store,
                clock=self.clock,
                once=self.once,
                state_dir=self.state_dir,
                drain_timeout_s=self.drain_timeout_s,
                observer=handle.observer,
                log=PipeLog.for_config(handle.name, handle.definition.config.logging),
                taps=handle.taps,
                **self.runner_options,
            )
        except Exception as exc:  # a connector that cannot even be built fails its pipe alone
            handle.runner = None
            handle.task = None
            handle.error = f"{type(exc).__name__}: {exc}"
            self.log.error("pipe_build_failed", pipe=handle.name, error=handle.error)
            return
        handle.runner = runner
        handle.task = asyncio.create_task(self._run_one(handle, runner), name=f"pipe:{handle.name}")
        self._changed.set()

    async def _run_one(self, handle: PipeHandle, runner: PipeRunner) -> None:
        try:
            await runner.run()
        except FatalError as exc:
            handle.error = str(exc)
        except Exception as exc:  # a bug in one pipe must not take the others down
            handle.error = f"{type(exc).__name__}: {exc}"
            runner.log.error("pipe_crashed", error=handle.error)

    async def _stop_pipe(self, handle: PipeHandle) -> None:
        """Stop one pipe and wait until it drained and committed."""
        if handle.runner is not None and handle.alive:
            handle.runner.request_stop()
        if handle.task is not None:
            # wait(), not gather(): if the caller is cancelled, the drain still goes on.
            await asyncio.wait({handle.task})

    def _notify(self) -> None:
        self._changed.set()
        if self.on_change is not None:
            self.on_change()

    # ------------------------------------------------------------------ desired state

    def get(self, name: str) -> PipeHandle:
        handle = self.pipes.get(name)
        if handle is None:
            raise UnknownPipe(name)
        return handle

    def set_desired(self, name: str, desired: str) -> PipeHandle:
        """Record the desired state now; the pipe starts or stops in the background.

        The runtime desired state lives in memory only: a restart of the
        daemon, or a change of ``state:`` in the pipe's file, overrides it.
        """
        if desired not in DESIRED_STATES:
            raise ValueError(f"desired state must be one of {', '.join(DESIRED_STATES)}")
        handle = self.get(name)
        handle.desired = desired
        self.log.info("pipe_desired_state", pipe=name, desired=desired)
        self._spawn(self._reconcile(name))
        return handle

    async def start_pipe(self, name: str) -> None:
        """Desire RUNNING and wait until a runner was started (or the pipe was running)."""
        self.get(name).desired = RUNNING
        await self._reconcile(name)

    async def stop_pipe(self, name: str) -> None:
        """Desire STOPPED and wait until the pipe drained and committed."""
        self.get(name).desired = STOPPED
        await self._reconcile(name)

    async def with_pipe_stopped[T](self, name: str, action: Callable[[PipeHandle], Awaitable[T]]) -> T:
        """Stop the pipe (drained and committed), run ``action``, then start it again if it should run.

        Under the lock that every change of runners takes, so nothing (a
        reload, a start by the API) runs the pipe while ``action`` moves its
        positions. The desired state is left as it was.
        """
        async with self._lock:
            handle = self.get(name)
            if handle.alive:
                await self._stop_pipe(handle)
            try:
                return await action(handle)
            finally:
                if handle.desired == RUNNING:
                    self._start(handle)
                self._notify()

    async def _reconcile(self, name: str) -> None:
        async with self._lock:
            handle = self.pipes.get(name)
            if handle is None:
                return
            if handle.desired == STOPPED and handle.alive:
                await self._stop_pipe(handle)
            elif handle.desired == RUNNING and not handle.alive:
                self._start(handle)
        self._notify()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ------------------------------------------------------------------ reload

    def schedule_reload(self) -> None:
        """Reload in the background (from a signal handler)."""
        if not self._stop.is_set():
            self._spawn(self.reload())

    async def reload(self) -> ReloadReport:
        """Read the paths again and apply the differences (see the module docstring)."""
        report = ReloadReport()
        if self._stop.is_set():
            return report
        async with self._lock:
            self.log.info("reload_started", paths=self.paths)
            results = await asyncio.to_thread(self.loader, self.paths)
            chosen = self._choose(results, report)
            await self._apply(chosen, report)
        self.log.info(
            "reload_done",
            added=report.added,
            removed=report.removed,
            restarted=report.restarted,
            unchanged=len(report.unchanged),
            errors=len(report.errors),
        )
        self._notify()
        return report

    def _choose(self, results: list[FileResult], report: ReloadReport) -> dict[str, PipeDefinition]:
        """The definitions the daemon should run after this reload, by name."""
        invalid: set[str] = set()
        candidates: list[PipeDefinition] = []
        for result in results:
            if result.errors:
                if not Path(result.path).exists():
                    continue  # removed between listing and reading: a removal, not an error
                invalid.add(result.path)
                for line in result.errors:
                    self.log.error("config_invalid", file=result.path, error=line)
                    report.errors.append(line)
            else:
                # --workers: a reload brings this worker only its own pipes, as the start did.
                candidates.extend(d for d in result.pipes if self.only is None or self.only(d))
        chosen: dict[str, PipeDefinition] = {}
        # An invalid file's pipes keep the definition they run with.
        for handle in self.pipes.values():
            if handle.definition.file in invalid:
                chosen[handle.name] = handle.definition
        # A name defined twice goes to the file that defined it before, then to the first file.
        owner = {name: h.definition.file for name, h in self.pipes.items()}
        for d in candidates:
            if d.name not in chosen and owner.get(d.name) == d.file:
                chosen[d.name] = d
        for d in candidates:
            first = chosen.get(d.name)
            if first is None:
                chosen[d.name] = d
            elif first is not d:
                line = (
                    f"{d.file}:1:1: name: pipe {d.name!r} is also defined in {first.file}; keeping that one"
                )
                self.log.error("config_invalid", file=d.file, error=line)
                report.errors.append(line)
        return chosen

    async def _apply(self, chosen: dict[str, PipeDefinition], report: ReloadReport) -> None:
        removed = [h for name, h in self.pipes.items() if name not in chosen]
        changed: list[tuple[PipeHandle, PipeDefinition]] = []
        for name, d in chosen.items():
            handle = self.pipes.get(name)
            if handle is None:
                handle = self.pipes[name] = self._handle(d)
                report.added.append(name)
                self.log.info("pipe_added", pipe=name, file=d.file)
                if handle.desired == RUNNING:
                    self._start(handle)
            elif d.fingerprint != handle.definition.fingerprint or d.file != handle.definition.file:
                changed.append((handle, d))
            else:
                report.unchanged.append(name)
        for handle in removed:
            self.log.info("pipe_removed", pipe=handle.name, file=handle.definition.file)
        for handle, _ in changed:
            self.log.info("pipe_changed", pipe=handle.name, file=handle.definition.file)
        await asyncio.gather(*(self._stop_pipe(h) for h in [*removed, *(h for h, _ in changed)]))
        for handle in removed:
            handle.taps.close("pipe removed")
            del self.pipes[handle.name]
            self.metrics.forget(handle.name)
            report.removed.append(handle.name)
        for handle, d in changed:
            # A change of `state:` in the file wins over a start/stop by the API.
            if d.config.state != handle.definition.config.state:
                handle.desired = d.config.state
            handle.definition = d
            report.restarted.append(handle.name)
            if handle.desired == RUNNING:
                self._start(handle)

    # ------------------------------------------------------------------ watching

    def file_signature(self) -> dict[str, tuple[int, int]]:
        """mtime and size of every pipe file under the paths (what --watch compares)."""
        out: dict[str, tuple[int, int]] = {}
        for path in find_files(self.paths):
            try:
                st = os.stat(path)
            except OSError:
                continue
            out[str(path)] = (st.st_mtime_ns, st.st_size)
        return out

    async def watch(self, interval_s: float = 1.0) -> None:
        """Reload whenever a pipe file appears, disappears or changes; until stopped."""
        while not self._stop.is_set():
            try:
                await asyncio.wait_for(self._stop.wait(), interval_s)
                return
            except TimeoutError:
                pass
            now = await asyncio.to_thread(self.file_signature)
            if now != self._signature:
                self._signature = now
                await self.reload()

    # ------------------------------------------------------------------ views

    def probes(self) -> list[PipeProbe]:
        out = []
        for h in list(self.pipes.values()):
            out.append(PipeProbe(h.name, h.state, h.in_flight(), h.lag()))
        return out

    def not_ready(self) -> dict[str, str]:
        """Pipes that should run and are not RUNNING (or standing by for a lease), with their states."""
        ok = (PipeState.RUNNING, PipeState.STANDBY)
        return {h.name: h.state for h in self.pipes.values() if h.desired == RUNNING and h.state not in ok}

    def runners(self) -> list[PipeRunner]:
        return [h.runner for h in self.pipes.values() if h.runner is not None]

    @property
    def failed(self) -> list[PipeHandle]:
        return [h for h in self.pipes.values() if h.error is not None]
