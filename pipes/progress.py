"""The live progress line per pipe on a terminal, and the summary every run ends with."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterable
from typing import TextIO

from pipes.runner import PipeRunner

__all__ = ["Progress", "summary_lines"]


def _line(runner: PipeRunner, rate: float) -> str:
    s = runner.stats
    failed = f", failed {s.failed}" if s.failed else ""
    dead = f", dead-lettered {s.dead_lettered}" if s.dead_lettered else ""
    return (
        f"{runner.name} [{runner.state}] in {s.received:,}, filtered {s.filtered:,}, "
        f"delivered {s.delivered:,}{failed}{dead}, {rate:,.0f}/s"
    )


class Progress:
    """Rewrites one line per pipe in place, twice a second, while a run lasts."""

    def __init__(self, runners: Iterable[PipeRunner], stream: TextIO | None = None, interval_s: float = 0.5):
        self.runners = list(runners)
        self.stream = stream or sys.stderr
        self.interval_s = interval_s
        self._last: dict[str, tuple[float, int]] = {}
        self._drawn = 0

    @property
    def enabled(self) -> bool:
        return self.stream.isatty()

    async def run(self) -> None:
        if not self.enabled:
            return
        try:
            while True:
                self.draw()
                await asyncio.sleep(self.interval_s)
        finally:
            self.draw()

    def draw(self) -> None:
        now = time.monotonic()
        lines = []
        for runner in self.runners:
            before = self._last.get(runner.name, (now, runner.stats.received))
            elapsed = now - before[0]
            rate = (runner.stats.received - before[1]) / elapsed if elapsed > 0 else 0.0
            self._last[runner.name] = (now, runner.stats.received)
            lines.append(_line(runner, rate))
        if self._drawn:
            self.stream.write(f"\x1b[{self._drawn}F")
        for line in lines:
            self.stream.write("\x1b[2K" + line + "\n")
        self._drawn = len(lines)
        self.stream.flush()


def summary_lines(runners: Iterable[tuple[PipeRunner, float, str | None]]) -> list[str]:
    """One line per pipe: counts, rate over the whole run, and its error if it failed."""
    out = []
    for runner, seconds, error in runners:
        s = runner.stats
        rate = s.received / seconds if seconds > 0 else 0.0
        line = (
            f"{runner.name}: {runner.state.lower()}; received {s.received:,}, filtered {s.filtered:,}, "
            f"delivered {s.delivered:,}, dead-lettered {s.dead_lettered:,}, failed attempts {s.failed:,} "
            f"in {seconds:.1f}s ({rate:,.0f} events/s)"
        )
        if error:
            line += f"; error: {error}"
        out.append(line)
    return out
