"""Events per second per pipe, from the counters the daemon already keeps.

Rates need two readings of the counters some time apart. Rather than a
background task that samples forever, ``RateMeter`` keeps the readings its
callers take (one per ``GET /rates``, at most one per ``min_gap_s``) for
``window_s``, and answers each call with the rate between the oldest reading
in the window and now. A console polling every second thus sees the rate over
the last few seconds; the first call ever has nothing to compare with and
answers ``None``. A counter that went down (a pipe removed and added again
under the same name) has no rate until its new readings fill the window.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["COUNTERS", "RateMeter", "Rates"]

#: The counters of ``pipes.status.PipeStats`` that get a rate.
COUNTERS = ("received", "filtered", "dropped", "delivered", "failed", "retried", "dead_lettered")

type Counts = Mapping[str, int]


@dataclass(frozen=True)
class Rates:
    """Per pipe, events per second of each counter (None when not known yet), and over how long."""

    window_s: float | None
    per_pipe: dict[str, dict[str, float] | None]


class RateMeter:
    """Rates from readings of cumulative counters; see the module docstring."""

    def __init__(self, window_s: float = 5.0, min_gap_s: float = 0.5) -> None:
        self.window_s = window_s
        self.min_gap_s = min_gap_s
        self._readings: deque[tuple[float, dict[str, Counts]]] = deque()

    def observe(self, now: float, counts: Mapping[str, Counts]) -> Rates:
        """Take a reading at ``now`` (monotonic seconds) and answer with the rates up to it."""
        while len(self._readings) > 1 and self._readings[1][0] <= now - self.window_s:
            self._readings.popleft()  # keep one reading at or before the window's start
        base = self._readings[0] if self._readings else None
        if not self._readings or now - self._readings[-1][0] >= self.min_gap_s:
            self._readings.append((now, {name: dict(c) for name, c in counts.items()}))
        if base is None or now - base[0] <= 0:
            return Rates(None, {name: None for name in counts})
        elapsed = now - base[0]
        per_pipe: dict[str, dict[str, float] | None] = {}
        for name, current in counts.items():
            before = base[1].get(name)
            if before is None or any(current.get(k, 0) < before.get(k, 0) for k in COUNTERS):
                per_pipe[name] = None
                continue
            per_pipe[name] = {k: (current.get(k, 0) - before.get(k, 0)) / elapsed for k in COUNTERS}
        return Rates(elapsed, per_pipe)
