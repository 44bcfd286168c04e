"""What a running pipe reports about itself: state, health, counters, as values.

The runner owns a ``PipeHealth`` and updates it where things happen (a failed
write, a read that came back, a connector that stopped answering); everyone
else reads a frozen ``PipeStatus`` snapshot (``PipeRunner.status()``), so the
daemon, the admin API and the progress line never reach into the runner.

States, as ``pipes status`` shows them:

- ``STARTING``: connecting; ``RUNNING``: moving events;
- ``DEGRADED``: running, but a system has not answered for longer than the
  pipe's ``stall_timeout`` (a frozen broker, a hung target); it clears by
  itself when the system answers again;
- ``FAILED``: failing (a system refuses or errors; events are retried, the
  pipe recovers by itself), or, with ``fatal``, stopped for good;
- ``STOPPING`` (draining) and ``STOPPED``;
- ``STANDBY`` (a daemon's view): with ``--coordination``, the pipe runs where
  its lease is held, and this daemon takes over if that one dies.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pipes.events import Position

__all__ = ["PipeHealth", "PipeState", "PipeStats", "PipeStatus"]


class PipeState(StrEnum):
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    DEGRADED = "DEGRADED"
    STOPPING = "STOPPING"
    STOPPED = "STOPPED"
    FAILED = "FAILED"
    #: ``--coordination``: the pipe runs on another daemon of the fleet, this one stands by.
    STANDBY = "STANDBY"


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

    def __add__(self, other: PipeStats) -> PipeStats:
        stages = dict(self.failed_by_stage)
        for stage, n in other.failed_by_stage.items():
            stages[stage] = stages.get(stage, 0) + n
        return PipeStats(
            received=self.received + other.received,
            filtered=self.filtered + other.filtered,
            dropped=self.dropped + other.dropped,
            delivered=self.delivered + other.delivered,
            failed=self.failed + other.failed,
            retried=self.retried + other.retried,
            dead_lettered=self.dead_lettered + other.dead_lettered,
            failed_by_stage=stages,
        )

    def copy(self) -> PipeStats:
        return self + PipeStats()


class PipeHealth:
    """The pipe's lifecycle state and what is wrong with it right now.

    ``failing`` maps a part of the pipe (``start``, ``source``, ``target``,
    ``dead_letter``, ``checkpoint``...) to its error message while that part
    keeps failing; ``stalled`` maps a part to why it looks frozen. Both clear
    per part when it works again, so one recovery never hides another failure.
    ``last_error`` is the newest message of a part still failing (or of a
    partial failure since the last clean pass), ``None`` once all recovered.
    """

    def __init__(self, on_change: Callable[[PipeState], None] | None = None) -> None:
        self.lifecycle = PipeState.STOPPED
        self.failing: dict[str, str] = {}
        self.stalled: dict[str, str] = {}
        self.fatal: str | None = None
        self._partial: tuple[str, str] | None = None
        self._on_change = on_change
        self._shown = self.state

    @property
    def state(self) -> PipeState:
        if self.fatal is not None:
            return PipeState.FAILED
        if self.lifecycle in (PipeState.RUNNING, PipeState.STARTING) and self.failing:
            return PipeState.FAILED
        if self.lifecycle is PipeState.RUNNING and self.stalled:
            return PipeState.DEGRADED
        return self.lifecycle

    @property
    def last_error(self) -> str | None:
        if self.fatal is not None:
            return self.fatal
        if self.failing:
            return next(reversed(self.failing.values()))
        return self._partial[1] if self._partial is not None else None

    @property
    def reason(self) -> str | None:
        """Why the pipe is not plainly RUNNING (None when it is)."""
        if self.fatal is not None:
            return self.fatal
        if self.failing:
            return "; ".join(self.failing.values())
        if self.stalled:
            return "; ".join(f"{part}: {why}" for part, why in self.stalled.items())
        return None

    def _changed(self) -> None:
        state = self.state
        if state != self._shown:
            self._shown = state
            if self._on_change is not None:
                self._on_change(state)

    def set_lifecycle(self, state: PipeState) -> None:
        self.lifecycle = state
        self._changed()

    def failed(self, part: str, message: str) -> None:
        """``part`` fails as a whole (nothing gets through): the pipe shows FAILED while it lasts."""
        self.failing.pop(part, None)  # re-inserted last: the newest failure is the one shown
        self.failing[part] = message
        self._changed()

    def partly_failed(self, part: str, message: str) -> None:
        """Some events of ``part`` failed while others went through: shown, but not a FAILED pipe."""
        changed = self.failing.pop(part, None) is not None
        self._partial = (part, message)
        if changed:
            self._changed()

    def recovered(self, part: str) -> None:
        if self._partial is not None and self._partial[0] == part:
            self._partial = None
        if self.failing.pop(part, None) is not None:
            self._changed()

    def stall(self, part: str, why: str) -> None:
        if self.stalled.get(part) != why:
            self.stalled[part] = why
            self._changed()

    def unstall(self, part: str) -> None:
        if self.stalled.pop(part, None) is not None:
            self._changed()

    def fail_for_good(self, message: str) -> None:
        self.fatal = message
        self._changed()


@dataclass(frozen=True)
class PipeStatus:
    """A pipe's state at one instant, as values."""

    name: str
    state: PipeState
    reason: str | None
    last_error: str | None
    stats: PipeStats
    in_flight: int
    positions: Mapping[str, Position]
    lag: Mapping[str, int] | None
    #: Seconds this runner has spent started (RUNNING, DEGRADED or FAILED-and-retrying).
    running_s: float
