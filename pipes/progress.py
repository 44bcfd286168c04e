"""The live progress line per pipe on a terminal, and the summary every run ends with."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from pipes.status import PipeStats
from pipes.terminal import TerminalLines

__all__ = ["PipeView", "Progress", "summary_lines", "summary_records"]


class PipeView(Protocol):
    """What the progress line and the summary read of a pipe (a runner, or a daemon's totals)."""

    @property
    def name(self) -> str: ...

    @property
    def state(self) -> str: ...

    @property
    def stats(self) -> PipeStats: ...


def _line(runner: PipeView, rate: float) -> str:
    s = runner.stats
    failed = f", failed {s.failed}" if s.failed else ""
    dead = f", dead-lettered {s.dead_lettered}" if s.dead_lettered else ""
    return (
        f"{runner.name} [{runner.state}] in {s.received:,}, filtered {s.filtered:,}, "
        f"delivered {s.delivered:,}{failed}{dead}, {rate:,.0f}/s"
    )


class Progress:
    """Redraws one line per pipe, twice a second, in the live block of a terminal.

    The block is drawn by ``TerminalLines``, which keeps it below the log lines
    written meanwhile; when the run ends, the block is removed (the summary
    says the same, for good).
    """

    def __init__(
        self,
        runners: Iterable[PipeView] | Callable[[], Iterable[PipeView]],
        terminal: TerminalLines | None = None,
        interval_s: float = 0.5,
    ) -> None:
        #: The pipes to show, or a function giving them each time (a daemon's set changes).
        self.runners = runners if callable(runners) else list(runners)
        self.terminal = terminal or TerminalLines(sys.stderr)
        self.interval_s = interval_s
        self._last: dict[str, tuple[float, int]] = {}

    @property
    def enabled(self) -> bool:
        return self.terminal.live

    async def run(self) -> None:
        if not self.enabled:
            return
        try:
            while True:
                self.draw()
                await asyncio.sleep(self.interval_s)
        finally:
            self.terminal.show([])

    def lines(self) -> list[str]:
        now = time.monotonic()
        lines = []
        runners = self.runners() if callable(self.runners) else self.runners
        for runner in runners:
            before = self._last.get(runner.name, (now, runner.stats.received))
            elapsed = now - before[0]
            rate = (runner.stats.received - before[1]) / elapsed if elapsed > 0 else 0.0
            self._last[runner.name] = (now, runner.stats.received)
            lines.append(_line(runner, rate))
        return lines

    def draw(self) -> None:
        self.terminal.show(self.lines())


type SummaryRow = tuple[PipeView, float, str | None]
"""A pipe, the seconds it ran (its rate divides by these), and its error if it failed."""


def summary_records(runners: Iterable[SummaryRow]) -> list[dict[str, Any]]:
    """Per pipe: its final state and counters, the time it ran and its rate, and its error if it failed.

    A pipe that never ran (it could not connect, or was stopped first) says so:
    ``started`` is false, and its counters are all zero by construction.
    """
    out = []
    for runner, seconds, error in runners:
        s = runner.stats
        out.append(
            {
                "pipe": runner.name,
                "state": runner.state,
                "started": seconds > 0 or s.received > 0,
                "received": s.received,
                "filtered": s.filtered,
                "dropped": s.dropped,
                "delivered": s.delivered,
                "dead_lettered": s.dead_lettered,
                "failed_attempts": s.failed,
                "seconds": seconds,
                "events_per_second": s.received / seconds if seconds > 0 else 0.0,
                "error": error,
            }
        )
    return out


def summary_lines(runners: Iterable[SummaryRow]) -> list[str]:
    """One line per pipe: counts, rate over the time it ran, and its error if it failed."""
    out = []
    for r in summary_records(runners):
        if not r["started"]:
            why = r["error"] or "stopped before it could connect"
            out.append(f"{r['pipe']}: never started; {why}")
            continue
        dropped = f"dropped {r['dropped']:,}, " if r["dropped"] else ""
        line = (
            f"{r['pipe']}: {r['state'].lower()}; received {r['received']:,}, filtered {r['filtered']:,}, "
            f"{dropped}delivered {r['delivered']:,}, dead-lettered {r['dead_lettered']:,}, "
            f"failed attempts {r['failed_attempts']:,} in {r['seconds']:.1f}s ({r['events_per_second']:,.0f} events/s)"
        )
        if r["error"]:
            line += f"; error: {r['error']}"
        out.append(line)
    return out
