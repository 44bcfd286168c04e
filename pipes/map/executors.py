"""Where tasks run: a local pool of worker processes, or a Dask cluster.

Both run the same ``pipes.map.worker.run_task`` and hand tasks out one at a
time as workers free up (the job keeps a bounded number in flight), so a
slow file does not idle the others, and both give the same result.

- ``LocalExecutor``: ``concurrent.futures.ProcessPoolExecutor`` on the
  ``forkserver`` start method (no fork of a threaded parent), the worker
  modules preloaded once. A worker that dies (killed, out of memory) breaks
  the pool; its tasks come back as errors and are retried on a fresh pool.
  Workers ignore SIGINT (the job handles it) and exit by themselves when the
  ``pipes map`` process is gone, even after a ``kill -9``.
- ``DaskExecutor``: ``--executor dask`` starts a ``distributed.LocalCluster``;
  ``--executor dask://HOST:PORT`` uses a running scheduler. Needs the
  ``pipes[dask]`` extra; the workers need ``pipes`` (and any ``module:function``
  of the map file) importable, and the items at the same paths or URLs.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import signal
import threading
import time
from abc import ABC, abstractmethod
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from pipes.errors import PipesError
from pipes.map.worker import JobSpec, Task, TaskResult, run_task

__all__ = ["DaskExecutor", "Executor", "ExecutorError", "LocalExecutor", "make_executor", "start_fork_server"]

type Outcome = tuple[Task, TaskResult | BaseException]


class ExecutorError(PipesError):
    """The executor cannot start (no Dask installed, scheduler unreachable): one line."""


class Executor(ABC):
    """Runs tasks; the job submits, then collects whatever finished."""

    #: How many tasks can run at once (processes, or Dask worker threads).
    workers: int
    #: How the run summary names it.
    description: str

    @abstractmethod
    def submit(self, spec: JobSpec, task: Task) -> None:
        """Queues ``task``; never blocks on the task itself."""

    @abstractmethod
    def wait(self, timeout_s: float) -> list[Outcome]:
        """Tasks that finished (their result, or the error that lost the whole task).

        Returns as soon as one finished, or after ``timeout_s`` with none.
        """

    @abstractmethod
    def close(self, cancel: bool) -> None:
        """Stops the workers; with ``cancel``, abandons tasks still running. Never raises."""


# ------------------------------------------------------------------------------------ local


def _init_worker(parent_pid: int) -> None:
    """Runs first in every pool process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the job's to handle, once

    def watch() -> None:
        # A pool process blocks on its task queue, which never closes when the parent is
        # killed (the process holds both ends); so it checks the parent itself.
        first_parent = os.getppid()
        while True:
            time.sleep(0.5)
            try:
                os.kill(parent_pid, 0)
            except ProcessLookupError:
                os._exit(1)
            if os.getppid() != first_parent:
                os._exit(1)

    threading.Thread(target=watch, name="pipes-map-parent-watch", daemon=True).start()


#: Imported once in the fork server, so every worker starts with them. ``__main__`` too:
#: otherwise each worker would run the main script again (the ``pipes`` command) itself.
_PRELOAD = ["__main__", "pipes.map.worker"]


def start_fork_server() -> None:
    """Starts the pool's fork server now, so that its imports overlap the job's own set-up."""
    from multiprocessing import forkserver

    multiprocessing.get_context("forkserver").set_forkserver_preload(_PRELOAD)
    forkserver.ensure_running()


class LocalExecutor(Executor):
    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.description = f"local ({workers} worker{'s' if workers != 1 else ''})"
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(_PRELOAD)
        self._pool = self._new_pool()
        self._futures: dict[concurrent.futures.Future[TaskResult], Task] = {}

    def _new_pool(self) -> concurrent.futures.ProcessPoolExecutor:
        return concurrent.futures.ProcessPoolExecutor(
            self.workers, mp_context=self._context, initializer=_init_worker, initargs=(os.getpid(),)
        )

    def submit(self, spec: JobSpec, task: Task) -> None:
        try:
            future = self._pool.submit(run_task, spec, task)
        except BrokenProcessPool:
            self._replace_pool()
            future = self._pool.submit(run_task, spec, task)
        self._futures[future] = task

    def wait(self, timeout_s: float) -> list[Outcome]:
        if not self._futures:
            return []
        done, _ = concurrent.futures.wait(
            self._futures, timeout=timeout_s, return_when=concurrent.futures.FIRST_COMPLETED
        )
        out: list[Outcome] = []
        broken = False
        for future in done:
            task = self._futures.pop(future)
            error = future.exception()
            if error is None:
                out.append((task, future.result()))
            else:
                broken = broken or isinstance(error, BrokenProcessPool)
                out.append((task, error))
        if broken:
            self._replace_pool()
        return out

    def _replace_pool(self) -> None:
        self._kill(self._pool)
        self._pool = self._new_pool()

    @staticmethod
    def _kill(pool: concurrent.futures.ProcessPoolExecutor) -> None:
        processes = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            if process.is_alive():
                process.terminate()
        for process in processes:
            process.join(timeout=5)

    def close(self, cancel: bool) -> None:
        if cancel:
            self._kill(self._pool)
        else:
            self._pool.shutdown(wait=True)
        self._futures.clear()


# ------------------------------------------------------------------------------------ dask


class DaskExecutor(Executor):
    def __init__(self, address: str | None, workers: int) -> None:
        try:
            import distributed as dask_distributed
        except ImportError:
            raise ExecutorError(
                "the dask executor needs Dask: pip install 'pipes[dask]' (dask and distributed)"
            ) from None
        import logging

        distributed: Any = dask_distributed
        self._distributed = distributed
        self._cluster: Any = None
        # Dask's configuration sets its loggers to INFO: dozens of lines about the scheduler,
        # nannies and comms would bury the progress bar and the summary. Warnings still show.
        logging.getLogger("distributed").setLevel(logging.WARNING)
        try:
            if address is None:
                self._cluster = distributed.LocalCluster(
                    n_workers=workers,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                    # Its HTTP server starts even without the dashboard: on a free port, not 8787
                    # (two runs at once, or a notebook's cluster, would fight over it).
                    scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                    silence_logs=logging.ERROR,
                )
                self._client: Any = distributed.Client(self._cluster)
            else:
                self._client = distributed.Client(address, timeout="10s")
        except (OSError, TimeoutError) as exc:
            self.close(cancel=True)
            raise ExecutorError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
        threads = sum(w.get("nthreads", 1) for w in self._client.scheduler_info()["workers"].values())
        self.workers = max(1, threads)
        where = "local cluster" if address is None else address
        self.description = f"dask ({where}, {self.workers} worker thread{'s' if self.workers != 1 else ''})"
        self._futures: dict[Any, Task] = {}

    def submit(self, spec: JobSpec, task: Task) -> None:
        future = self._client.submit(run_task, spec, task, pure=False)
        self._futures[future] = task

    def wait(self, timeout_s: float) -> list[Outcome]:
        if not self._futures:
            return []
        try:
            self._distributed.wait(list(self._futures), timeout=timeout_s, return_when="FIRST_COMPLETED")
        except TimeoutError:
            return []
        out: list[Outcome] = []
        for future in [f for f in self._futures if f.done()]:
            task = self._futures.pop(future)
            if future.status == "finished":
                out.append((task, future.result()))
            else:
                error = future.exception() if future.status == "error" else None
                out.append((task, error or RuntimeError(f"dask task {future.status}")))
        return out

    def close(self, cancel: bool) -> None:
        try:
            if cancel and self._futures:
                self._client.cancel(list(self._futures))
            self._futures = {}
            client = getattr(self, "_client", None)
            if client is not None:
                client.close()
            if self._cluster is not None:
                self._cluster.close()
        except Exception:  # closing must not hide how the run ended
            return


def make_executor(name: str, workers: int) -> Executor:
    """``local``, ``dask`` (a LocalCluster of ``workers`` processes) or ``dask://HOST:PORT``."""
    if name == "local":
        return LocalExecutor(workers)
    if name == "dask":
        return DaskExecutor(None, workers)
    if name.startswith(("dask://", "tcp://", "tls://")):
        address = "tcp://" + name.removeprefix("dask://") if name.startswith("dask://") else name
        return DaskExecutor(address, workers)
    raise ExecutorError(f"unknown executor {name!r}: use local, dask or dask://HOST:PORT")
