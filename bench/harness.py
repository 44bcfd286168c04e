"""What the broker benchmarks share: run a contender as users run it, and measure its process tree.

A contender is a command line (the `pipes` command on a generated pipe file, a
hand-written loop script, two copies of it under `fanout.py`, a Quix Streams
app). The harness starts it as a subprocess tree, watches the broker until the
work is settled (the scenario says what that means: committed offsets at the
preload's ends, an empty pending list), then stops it with SIGTERM, as an
operator would, and reaps it with ``os.wait4``. Nothing is measured inside the
contender, so every contender, and `pipes run --workers N` later, is measured
the same way.

Figures of one run:

- events/s over the whole run: from starting the command to the moment the
  broker showed everything settled (start-up, group join and the last commit
  included);
- events/s steady: from the first output record to the last, by the broker's
  clock of the output (Kafka record timestamps, Redis stream ids);
- CPU seconds of the whole tree (``wait4``: the top process and every
  descendant it reaped), and CPU per event over the whole run and over the
  steady part (the tree's CPU sampled every 50 ms, interpolated at the first
  and last output record);
- peak RSS: the largest of the processes, and the sum of each process's peak
  (``VmHWM``) for a contender of several processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import socket
import statistics
import subprocess
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:
    import psutil
except ImportError:  # pragma: no cover - a message instead of a traceback
    raise SystemExit("bench/ needs the bench extra: .venv/bin/pip install -e '.[dev,bench]'") from None

__all__ = [
    "Contender",
    "ContenderFailed",
    "Run",
    "Tree",
    "display_order",
    "free_port",
    "print_scaling",
    "print_table",
    "rounds_order",
    "run_contender",
]

#: How often the harness samples the tree and asks the broker whether the work is settled.
POLL_S = 0.05
#: How long a contender may take to exit after SIGTERM before it is killed (and fails).
STOP_TIMEOUT_S = 60.0


class ContenderFailed(RuntimeError):
    """The contender crashed, did not finish in time, did not stop cleanly, or got the output wrong."""


@dataclass(frozen=True)
class Contender:
    """One command line to measure."""

    name: str
    argv: list[str]
    processes: int = 1
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Tree:
    """What the harness saw of one run of a contender's process tree (wall times are epoch seconds)."""

    started: float
    settled: float
    cpu_s: float
    samples: list[tuple[float, float]]  # (time, CPU seconds of the tree so far)
    peak_rss_max_mib: float
    peak_rss_sum_mib: float
    processes_seen: int

    def cpu_at(self, when: float) -> float:
        """The tree's CPU seconds at ``when``, interpolated between samples."""
        points = self.samples
        if not points or when <= points[0][0]:
            return points[0][1] if points else 0.0
        for (t0, c0), (t1, c1) in itertools.pairwise(points):
            if when <= t1:
                return c0 + (c1 - c0) * (when - t0) / (t1 - t0) if t1 > t0 else c1
        return points[-1][1]


@dataclass(frozen=True)
class Run:
    """The figures of one run of one contender."""

    name: str
    processes: int
    events: int
    seconds: float
    steady_seconds: float
    cpu_s: float
    steady_cpu_s: float
    peak_rss_max_mib: float
    peak_rss_sum_mib: float
    processes_seen: int

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds

    @property
    def steady_events_per_s(self) -> float:
        return self.events / self.steady_seconds if self.steady_seconds > 0 else 0.0

    @property
    def cpu_us_per_event(self) -> float:
        return self.cpu_s / self.events * 1e6

    @property
    def steady_cpu_us_per_event(self) -> float:
        return self.steady_cpu_s / self.events * 1e6

    @classmethod
    def of(
        cls, contender: Contender, events: int, tree: Tree, first_output: float, last_output: float
    ) -> Run:
        """Figures from the tree and the output's first and last broker timestamps."""
        # The broker showed everything settled no earlier than the last output record.
        ended = max(tree.settled, last_output)
        return cls(
            name=contender.name,
            processes=contender.processes,
            events=events,
            seconds=ended - tree.started,
            steady_seconds=last_output - first_output,
            cpu_s=tree.cpu_s,
            steady_cpu_s=tree.cpu_at(last_output) - tree.cpu_at(first_output),
            peak_rss_max_mib=tree.peak_rss_max_mib,
            peak_rss_sum_mib=tree.peak_rss_sum_mib,
            processes_seen=tree.processes_seen,
        )

    def line(self) -> str:
        rss = f"{self.peak_rss_max_mib:.0f} MiB"
        if self.processes > 1:
            rss += f" (sum {self.peak_rss_sum_mib:.0f} over {self.processes_seen} processes)"
        return (
            f"{self.name:10} {self.events_per_s:>9,.0f} ev/s (steady {self.steady_events_per_s:>9,.0f}) "
            f"in {self.seconds:5.2f}s; CPU {self.cpu_s:5.2f}s = {self.cpu_us_per_event:5.1f} us/ev "
            f"(steady {self.steady_cpu_us_per_event:5.1f}); peak RSS {rss}"
        )


def _vm_hwm_kib(pid: int) -> int:
    """The process's peak resident set (VmHWM), in KiB; 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class _TreeSampler(threading.Thread):
    """Samples the CPU of a process tree and each process's peak RSS until stopped."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self._root = psutil.Process(pid)
        self._known: dict[int, psutil.Process] = {pid: self._root}
        self._stopped = threading.Event()
        self.samples: list[tuple[float, float]] = []
        self.hwm_kib: dict[int, int] = {}

    def run(self) -> None:
        tick = 0
        while True:
            if tick % 5 == 0:  # finding new descendants scans every process: not on every tick
                try:
                    for child in self._root.children(recursive=True):
                        self._known.setdefault(child.pid, child)
                except psutil.Error:
                    pass
            self.sample()
            tick += 1
            if self._stopped.wait(POLL_S):
                return

    def sample(self) -> None:
        # A reaped process's CPU moves into its parent's children_* times, so the
        # sum over the living tree counts every process once.
        total = 0.0
        for pid, process in list(self._known.items()):
            try:
                times = process.cpu_times()
            except psutil.Error:
                continue
            total += times.user + times.system + times.children_user + times.children_system
            self.hwm_kib[pid] = max(self.hwm_kib.get(pid, 0), _vm_hwm_kib(pid))
        self.samples.append((time.time(), total))

    def stop(self) -> None:
        self._stopped.set()
        self.join()


def _reap(pid: int) -> tuple[int, Any] | None:
    """(exit code, rusage) once the process has exited, else None."""
    done, status, usage = os.wait4(pid, os.WNOHANG)
    if done == 0:
        return None
    return os.waitstatus_to_exitcode(status), usage


def _tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(f"    | {line}" for line in text[-lines:])


def _spawn(contender: Contender, workdir: Path, stderr_path: Path) -> subprocess.Popen[bytes]:
    with open(stderr_path, "wb") as stderr:
        return subprocess.Popen(
            contender.argv,
            cwd=workdir,
            env={**os.environ, **contender.env},
            stdin=subprocess.DEVNULL,
            stdout=stderr,
            stderr=stderr,
            start_new_session=True,  # its own process group, to kill the whole tree if it hangs
        )


def _kill_tree(process: subprocess.Popen[bytes], reaped: tuple[int, Any] | None) -> tuple[int, Any]:
    """Kill whatever is left of the tree; the top process's (exit code, rusage), reaped if it was not."""
    with contextlib.suppress(ProcessLookupError):
        # A descendant left behind (it should have stopped with its parent) must not outlive the run.
        os.killpg(process.pid, signal.SIGKILL)
    if reaped is None:
        _, status, usage = os.wait4(process.pid, 0)
        reaped = (os.waitstatus_to_exitcode(status), usage)
    process.returncode = reaped[0]  # reaped here, not by Popen
    return reaped


async def run_contender(
    contender: Contender,
    workdir: Path,
    settled: Callable[[], Awaitable[bool]],
    timeout_s: float,
) -> Tree:
    """Start the contender in ``workdir``, wait until ``settled()``, stop it with SIGTERM, measure its tree.

    Raises ContenderFailed when it exits on its own, does not settle within
    ``timeout_s``, or does not exit with status 0 after SIGTERM (its stderr,
    kept in ``workdir``, is quoted).
    """
    stderr_path = workdir / f"{contender.name.replace(' ', '-')}.stderr"
    started = time.time()
    process = _spawn(contender, workdir, stderr_path)
    sampler = _TreeSampler(process.pid)
    sampler.start()
    reaped: tuple[int, Any] | None = None
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if (reaped := _reap(process.pid)) is not None:
                raise ContenderFailed(
                    f"{contender.name}: exited with status {reaped[0]} before the work was settled\n"
                    + _tail(stderr_path)
                )
            if await settled():
                break
            if time.monotonic() > deadline:
                raise ContenderFailed(
                    f"{contender.name}: not settled after {timeout_s:.0f}s\n" + _tail(stderr_path)
                )
            await asyncio.sleep(POLL_S)
        settled_at = time.time()
        process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while (reaped := _reap(process.pid)) is None:
            if time.monotonic() > deadline:
                raise ContenderFailed(
                    f"{contender.name}: still running {STOP_TIMEOUT_S:.0f}s after SIGTERM\n"
                    + _tail(stderr_path)
                )
            await asyncio.sleep(POLL_S)
    finally:
        reaped = _kill_tree(process, reaped)
        sampler.stop()
    code, usage = reaped
    if code != 0:
        raise ContenderFailed(
            f"{contender.name}: exited with status {code} after SIGTERM\n" + _tail(stderr_path)
        )
    sampled_cpu = sampler.samples[-1][1] if sampler.samples else 0.0
    hwm = [kib for kib in sampler.hwm_kib.values() if kib]
    return Tree(
        started=started,
        settled=settled_at,
        # wait4 counts every descendant its parent reaped; the samples also see one that was not.
        cpu_s=max(usage.ru_utime + usage.ru_stime, sampled_cpu),
        samples=sampler.samples,
        # Not wait4's ru_maxrss: Linux carries the pre-exec size of a forked child into it,
        # so it reports the harness's own size when that is larger.
        peak_rss_max_mib=max(hwm, default=0) / 1024,
        peak_rss_sum_mib=sum(hwm) / 1024,
        processes_seen=len(sampler.hwm_kib),
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def rounds_order(names: Sequence[str], round_no: int) -> list[str]:
    """The order of contenders in a round: reversed every other round (the broker slows as it fills)."""
    return list(names) if round_no % 2 == 0 else list(reversed(names))


def print_table(title: str, runs: dict[str, list[Run]], baseline: str = "loop") -> None:
    """A Markdown table, one line per contender: the median of its rounds, and its ratios to the baseline.

    The ratios compare steady events/s (higher is better) and steady CPU per
    event (lower is better) with the baseline's.
    """

    def median(name: str, figure: Callable[[Run], float]) -> float:
        return statistics.median(figure(r) for r in runs[name])

    rounds = max(len(r) for r in runs.values())
    has_base = baseline in runs
    base_rate = median(baseline, lambda r: r.steady_events_per_s) if has_base else 0.0
    base_cpu = median(baseline, lambda r: r.steady_cpu_us_per_event) if has_base else 0.0
    print(f"\n{title} (median of {rounds} round{'s' if rounds > 1 else ''})\n")
    print(
        "| contender | events/s whole | events/s steady | x loop | CPU s | us/event whole "
        "| us/event steady | x loop | peak RSS MiB (max / sum) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, rs in runs.items():
        rate = median(name, lambda r: r.steady_events_per_s)
        cpu = median(name, lambda r: r.steady_cpu_us_per_event)
        rss = f"{median(name, lambda r: r.peak_rss_max_mib):.0f}"
        if rs[0].processes > 1:
            rss += f" / {median(name, lambda r: r.peak_rss_sum_mib):.0f}"
        rate_ratio = f"{rate / base_rate:.2f}x" if base_rate else "-"
        cpu_ratio = f"{cpu / base_cpu:.2f}x" if base_cpu else "-"
        print(
            f"| {name} | {median(name, lambda r: r.events_per_s):,.0f} | {rate:,.0f} | {rate_ratio} "
            f"| {median(name, lambda r: r.cpu_s):.2f} | {median(name, lambda r: r.cpu_us_per_event):.1f} "
            f"| {cpu:.1f} | {cpu_ratio} | {rss} |"
        )


def display_order(name: str) -> tuple[int, str]:
    """Table order: the loop first (the baseline), its scaling reference, the peer, then the pipe."""
    return ({"loop": 0, "loop x2": 1, "quix": 2, "pipes before": 3, "pipes": 4}.get(name, 5), name)


def print_scaling(runs: dict[str, list[Run]]) -> None:
    """How much two processes add over one, for the loop and for the pipe (steady events/s)."""

    def steady(name: str) -> float:
        return statistics.median(r.steady_events_per_s for r in runs[name])

    lines = []
    if "loop" in runs and "loop x2" in runs:
        lines.append(f"loop x2 / loop {steady('loop x2') / steady('loop'):.2f}x")
    for name in runs:
        if name.startswith("pipes x") and "pipes" in runs:
            lines.append(f"{name} / pipes {steady(name) / steady('pipes'):.2f}x")
    if lines:
        print("\nscaling (steady events/s): " + "; ".join(lines))
