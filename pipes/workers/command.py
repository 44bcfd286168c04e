"""The supervisor's side of ``pipes run --workers N``: what ``pipes.cli`` calls instead of running pipes itself."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
import structlog

from pipes.status import PipeStats
from pipes.workers.aggregate import merge_pipes
from pipes.workers.supervisor import Supervisor

__all__ = ["parse_workers", "supervise", "worker_args"]

#: Options the supervisor handles itself: a worker gets its own instead (with their values).
_SUPERVISOR_ONLY = {
    "--workers": True,
    "--admin": True,
    "--admin-tls-cert": True,
    "--admin-tls-key": True,
    "--admin-allow-host": True,
    "--admin-insecure": False,
    "--no-progress": False,
    "--summary-file": True,
}


def usable_cores() -> int:
    """The cores this process may use: its CPU affinity, and a container's CPU limit (cgroup v2)."""
    cores = os.process_cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
    except (OSError, ValueError):
        return cores
    if quota == "max":
        return cores
    return max(1, min(cores, int(int(quota) / int(period))))


def parse_workers(text: str) -> int:
    """``--workers N`` or ``auto`` (the cores this process may use); ``ValueError`` with one line."""
    if text == "auto":
        return usable_cores()
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"{text!r}: give a number of worker processes (1 or more) or auto")
    return int(text)


def worker_args(argv: Sequence[str]) -> list[str]:
    """The ``pipes run`` arguments of a worker: the user's, without what the supervisor keeps."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        name, eq, _ = arg.partition("=")
        if name in _SUPERVISOR_ONLY:
            skip = _SUPERVISOR_ONLY[name] and not eq
            continue
        out.append(arg)
    return out


class _Totals:
    """A pipe over every worker, as the progress line and the summary read it."""

    def __init__(self, name: str, state: str, stats: PipeStats) -> None:
        self.name = name
        self.state = state
        self.stats = stats


def _stats(counters: dict[str, Any]) -> PipeStats:
    return PipeStats(
        received=int(counters.get("received", 0)),
        filtered=int(counters.get("filtered", 0)),
        dropped=int(counters.get("dropped", 0)),
        delivered=int(counters.get("delivered", 0)),
        failed=int(counters.get("failed", 0)),
        retried=int(counters.get("retried", 0)),
        dead_lettered=int(counters.get("dead_lettered", 0)),
        failed_by_stage=dict(counters.get("failed_by_stage", {})),
    )


async def _poll(supervisor: Supervisor, shown: list[_Totals]) -> None:
    """Keep ``shown`` up to date from the workers' APIs, twice a second (the progress block reads it)."""
    headers = {"Authorization": f"Bearer {supervisor.token}"}
    timeout = aiohttp.ClientTimeout(total=2)
    async with aiohttp.ClientSession(headers=headers, timeout=timeout) as session:
        while True:
            answers: dict[str, Any] = {}
            for worker in supervisor.workers:
                try:
                    async with session.get(worker.url + "/pipes") as response:
                        if response.status == 200:
                            answers[worker.name] = await response.json()
                except (aiohttp.ClientError, TimeoutError, OSError):
                    continue
            if answers:
                shown[:] = [
                    _Totals(p["name"], p["state"], _stats(p["counters"])) for p in merge_pipes(answers)
                ]
            await asyncio.sleep(0.5)


def _merged_summary(records: list[dict[str, Any]]) -> list[tuple[_Totals, float, str | None]]:
    """Each pipe's summary over its workers: counters added, the longest time any ran, the first error."""
    by_pipe: dict[str, dict[str, Any]] = {}
    for record in records:
        entry = by_pipe.setdefault(
            record["pipe"], {"states": [], "counters": {}, "seconds": 0.0, "error": None}
        )
        entry["states"].append(record["state"])
        for key in ("received", "filtered", "dropped", "delivered", "dead_lettered"):
            entry["counters"][key] = entry["counters"].get(key, 0) + record.get(key, 0)
        entry["counters"]["failed"] = entry["counters"].get("failed", 0) + record.get("failed_attempts", 0)
        entry["seconds"] = max(entry["seconds"], record.get("seconds", 0.0))
        entry["error"] = entry["error"] or record.get("error")
    rows = []
    for name, entry in by_pipe.items():
        state = "FAILED" if "FAILED" in entry["states"] else entry["states"][0]
        rows.append((_Totals(name, state, _stats(entry["counters"])), entry["seconds"], entry["error"]))
    return rows


async def supervise(
    args: Any, argv: Sequence[str], count: int, admin: tuple[str, int] | None, *, log: Any, terminal: Any
) -> int:
    """Run ``count`` workers of the same ``pipes run`` until stopped (or done); the exit status."""
    from pipes.admin import TOKEN_ENV
    from pipes.progress import Progress, summary_lines, summary_records
    from pipes.workers.api import WorkersAdminServer

    supervisor = Supervisor(
        worker_args(argv), count, once=args.once, log=structlog.get_logger().bind(component="workers")
    )
    server: WorkersAdminServer | None = None
    if admin is not None:
        server = WorkersAdminServer(
            supervisor,
            admin[0],
            admin[1],
            token=os.environ.get(TOKEN_ENV) or None,
            ssl_context=args.admin_tls,
            allowed_hosts=args.admin_allow_host,
        )
        try:
            await server.start()
        except OSError as exc:
            problem = f"cannot serve the admin API on {admin[0]}:{admin[1]}: {exc.strerror or exc}"
            log.say("admin_failed", f"pipes run: {problem}", level="error", error=problem)
            return 1
        log.say(
            "admin_started",
            f"pipes: admin API on {server.url} ({count} workers)",
            url=server.url,
            workers=count,
        )
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        name = signal.Signals(signum).name
        if signum != signal.SIGHUP:
            again = supervisor.stopping
            text = f"pipes: {name}{' again' if again else ''}, {'exiting at once' if again else 'draining'} (workers: {count})"
            log.say("signal_received", text, signal=name, action="exit" if again else "drain")
        supervisor.signal(signum)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(signum, on_signal, signum)
    shown: list[_Totals] = []
    show_progress = not args.no_progress and not log.json
    tasks = [asyncio.create_task(_poll(supervisor, shown))]
    if show_progress:
        tasks.append(asyncio.create_task(Progress(lambda: shown, terminal).run()))
    try:
        code = await supervisor.run()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(signum)
        if server is not None:
            await server.stop()
    rows = _merged_summary(supervisor.summaries())
    for line, record in zip(summary_lines(rows), summary_records(rows), strict=True):
        log.say("pipe_summary", line, **record)
    supervisor.close()
    return code
