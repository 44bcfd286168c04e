"""``pipes run --workers N``: N worker processes, one supervisor, one admin API.

Python runs one thread of Python at a time, so a pipe uses one core; a worker
per core uses them all. Each worker is an ordinary ``pipes run`` of the same
files (``pipes.workers.assign`` says which pipes it takes), with its own admin
API on a loopback port and a token only the supervisor knows. The supervisor:

- restarts a worker that dies, with backoff (1 s doubling to 30 s; a worker
  that stayed up a minute starts again from 1 s), and logs it;
- forwards SIGHUP (reload) and SIGTERM/SIGINT (drain) to every worker; a
  second SIGTERM/SIGINT makes the workers exit at once, as for one process;
- serves the one admin API (``pipes.workers.api``) with every worker merged;
- draws the progress block and prints one summary, per pipe over all workers.

With ``--once`` a worker that finished is not restarted; the run ends when
they all have, and fails if one failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from pipes.workers.assign import worker_name

__all__ = ["Supervisor", "Worker"]

#: Environment of a worker: its name (for logs and consumer names) and its API's token.
WORKER_ENV = "PIPES_WORKER"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Worker:
    index: int
    port: int
    summary_file: Path
    process: asyncio.subprocess.Process | None = None
    started_at: float = 0.0
    restarts: int = 0
    delay_s: float = 1.0
    #: The worker's final exit status (``--once``, or after a stop).
    finished: int | None = None
    history: list[int] = field(default_factory=list)

    @property
    def name(self) -> str:
        return worker_name(self.index)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class Supervisor:
    """Starts, watches and stops the workers; see the module docstring."""

    def __init__(self, worker_args: list[str], count: int, *, once: bool, log: Any) -> None:
        self.worker_args = worker_args
        self.count = count
        self.once = once
        self.log = log
        #: The workers' admin token: only the supervisor calls their APIs.
        self.token = secrets.token_urlsafe(24)
        self._folder = tempfile.TemporaryDirectory(prefix="pipes-workers-")
        self.workers = [
            Worker(i, free_port(), Path(self._folder.name) / f"summary-{i}.json") for i in range(count)
        ]
        self.stopping = False
        self._signals = 0
        self._changed = asyncio.Event()

    # ------------------------------------------------------------------ workers

    async def _spawn(self, worker: Worker) -> None:
        env = {
            **os.environ,
            WORKER_ENV: worker.name,
            "PIPES_ADMIN_TOKEN": self.token,
            "PYTHONUNBUFFERED": "1",
        }
        command = [
            sys.executable,
            "-m",
            "pipes",
            "run",
            *self.worker_args,
            "--worker-index",
            str(worker.index),
            "--worker-count",
            str(self.count),
            "--admin",
            f"127.0.0.1:{worker.port}",
            "--no-progress",
            "--summary-file",
            str(worker.summary_file),
        ]
        worker.process = await asyncio.create_subprocess_exec(
            *command, env=env, stdin=asyncio.subprocess.DEVNULL
        )
        worker.started_at = time.monotonic()
        self.log.info("worker_started", worker=worker.name, pid=worker.process.pid, restarts=worker.restarts)

    async def _watch(self, worker: Worker) -> None:
        """Keep one worker running until the supervisor stops (or, ``once``, until it finished)."""
        while True:
            process = worker.process
            assert process is not None
            code = await process.wait()
            worker.history.append(code)
            if self.stopping or (self.once and code in (0, 1)):
                worker.finished = code
                self._changed.set()
                return
            up_s = time.monotonic() - worker.started_at
            if up_s > 60:
                worker.delay_s = 1.0
            self.log.error(
                "worker_died",
                worker=worker.name,
                exit_code=code,
                signal=signal.Signals(-code).name if code < 0 else None,
                restart_in_s=worker.delay_s,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped(), worker.delay_s)
            if self.stopping:
                worker.finished = code
                self._changed.set()
                return
            worker.delay_s = min(30.0, worker.delay_s * 2)
            worker.restarts += 1
            await self._spawn(worker)

    async def _stopped(self) -> None:
        while not self.stopping:
            self._changed.clear()
            await self._changed.wait()

    # ------------------------------------------------------------------ signals

    def signal(self, signum: int) -> None:
        """SIGTERM/SIGINT: every worker drains (a second one: they exit at once); SIGHUP: they reload."""
        if signum == signal.SIGHUP:
            self._send(signal.SIGHUP)
            return
        self._signals += 1
        self.stopping = True
        self._changed.set()
        self._send(signal.SIGTERM)

    def _send(self, signum: int) -> None:
        for worker in self.workers:
            process = worker.process
            if process is not None and process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signum)

    # ------------------------------------------------------------------ the run

    async def run(self) -> int:
        """Start every worker and watch them until stopped (or done); the exit status."""
        for worker in self.workers:
            await self._spawn(worker)
        await asyncio.gather(*(self._watch(w) for w in self.workers))
        codes = [w.finished if w.finished is not None else 0 for w in self.workers]
        return 0 if all(code == 0 for code in codes) else 1

    def summaries(self) -> list[dict[str, Any]]:
        """Every worker's summary records (``--summary-file``), one list."""
        out: list[dict[str, Any]] = []
        for worker in self.workers:
            try:
                records = orjson.loads(worker.summary_file.read_bytes())
            except (OSError, orjson.JSONDecodeError):
                continue  # a worker killed at the very end wrote none
            for record in records:
                out.append({**record, "worker": worker.name})
        return out

    def close(self) -> None:
        self._folder.cleanup()
