"""The ``schedule`` source: events at fixed instants, from a rate or a cron expression.

EventBridge Scheduler's job inside a pipe: pair it with the ``http`` enricher
to poll an API. Each instant becomes one event, ``{"name": ..., "scheduled_time":
"2026-11-30T12:00:00.000Z"}`` (the whole record is the body), on one
partition whose position is that time; so the checkpoint is the last instant
that settled, and a restart neither fires an instant twice nor skips one
without saying so:

- ``catch_up: latest`` (default): of the instants missed while the pipe was
  not running, only the most recent fires (the others are logged as skipped);
- ``all``: every missed instant fires, oldest first;
- ``none``: none of them; the next fire is the next instant from now.

While the pipe runs every instant fires, late rather than never when the pipe
is held up. A rate's instants are multiples of it since the Unix epoch (``1h``
fires on the hour, UTC); a cron expression (five fields, or ``@hourly`` and
the like) is read in ``timezone``, daylight saving included, by ``croniter``.
Without a checkpoint the first instant is the first one at or after the start.
Time comes from the injected clock (``Clock.wall``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import Field, field_validator, model_validator

from pipes.clock import Clock, SystemClock, iso_utc
from pipes.connector import Connector, ConnectorOptions, Source, SourceContext
from pipes.errors import PipeFailed
from pipes.events import Event
from pipes.units import Duration

__all__ = ["ScheduleOptions", "ScheduleSource", "connector"]

PARTITION = "schedule"
#: Instants counted one by one when logging how many were skipped, at most.
_COUNT_LIMIT = 100_000


class ScheduleOptions(ConnectorOptions):
    rate: Duration | None = Field(
        default=None, ge=0.001, description="Fire every this long (`5m`), on multiples of it since the epoch."
    )
    cron: str | None = Field(
        default=None,
        description="A five-field cron expression (`*/15 8-18 * * mon-fri`) or @hourly, @daily, ...",
    )
    timezone: str | None = Field(
        default=None, description="IANA time zone the cron expression is read in (default UTC)."
    )
    name: str | None = Field(
        default=None, description="The `name` field of the events (default: the pipe's name)."
    )
    catch_up: Literal["latest", "all", "none"] = Field(
        default="latest",
        description="Instants missed while the pipe was not running: fire the latest only, all of them, or none.",
    )

    @field_validator("cron")
    @classmethod
    def _cron(cls, cron: str | None) -> str | None:
        if cron is None:
            return None
        if not cron.strip().startswith("@") and len(cron.split()) != 5:
            raise ValueError(
                f"cron takes five fields (minute hour day month weekday), got {len(cron.split())}"
            )
        if not croniter.is_valid(cron):
            raise ValueError(f"invalid cron expression {cron!r}")
        return cron

    @field_validator("timezone")
    @classmethod
    def _zone(cls, zone: str | None) -> str | None:
        if zone is not None:
            try:
                ZoneInfo(zone)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(
                    f"unknown time zone {zone!r} (use an IANA name such as Europe/Berlin)"
                ) from None
        return zone

    @model_validator(mode="after")
    def _one_schedule(self) -> Self:
        if (self.rate is None) == (self.cron is None):
            raise ValueError("give exactly one of rate or cron")
        if self.rate is not None and self.timezone is not None:
            raise ValueError("timezone applies to cron only (a rate counts from the epoch)")
        return self


class Instants(Protocol):
    def after(self, t: float) -> float:
        """The first instant strictly after ``t`` (epoch seconds)."""
        ...

    def at_or_before(self, t: float) -> float:
        """The last instant at or before ``t``."""
        ...


class RateInstants:
    """Multiples of the rate since the epoch, computed in whole milliseconds (no float drift)."""

    def __init__(self, rate_s: float) -> None:
        self.step_ms = max(1, round(rate_s * 1000))

    def after(self, t: float) -> float:
        return (math.floor(t * 1000) // self.step_ms + 1) * self.step_ms / 1000

    def at_or_before(self, t: float) -> float:
        return (math.floor(t * 1000) // self.step_ms) * self.step_ms / 1000


class CronInstants:
    def __init__(self, expression: str, zone: str | None) -> None:
        self.expression = expression
        self.zone = ZoneInfo(zone) if zone is not None else UTC

    def _at(self, t: float) -> datetime:
        return datetime.fromtimestamp(t, tz=self.zone)

    def after(self, t: float) -> float:
        return float(croniter(self.expression, self._at(t)).get_next(float))

    def at_or_before(self, t: float) -> float:
        return float(croniter(self.expression, self._at(t + 0.001)).get_prev(float))


def _parse_time(position: Any) -> float:
    try:
        return datetime.fromisoformat(str(position)).timestamp()
    except ValueError:
        raise PipeFailed(
            f"schedule: the checkpoint {position!r} is not a time; reset it with `pipes run --reset-checkpoint`"
        ) from None


class ScheduleSource(Source):
    options_model = ScheduleOptions
    options: ScheduleOptions

    def __init__(self, options: ScheduleOptions) -> None:
        super().__init__(options)
        self.instants: Instants = (
            RateInstants(options.rate)
            if options.rate is not None
            else CronInstants(options.cron or "", options.timezone)
        )
        self._clock: Clock = SystemClock()
        self._name = options.name or ""
        self._next = 0.0
        self._once = False
        self._end = math.inf
        #: Events made in this run (tests wait for the pipe to have settled them all).
        self.fired = 0

    async def start(self, context: SourceContext) -> None:
        self._clock = context.clock
        self._name = self.options.name or context.pipe
        now = self._clock.wall()
        last_position = context.checkpoint.get(PARTITION)
        instants = self.instants
        if last_position is None:
            self._next = instants.after(now - 0.001)
        else:
            last = _parse_time(last_position)
            first_missed = instants.after(last)
            latest = instants.at_or_before(now)
            mode = self.options.catch_up
            if first_missed > now or mode == "all":
                self._next = first_missed
            else:
                missed = self._count(first_missed, latest)
                if mode == "latest":
                    self._next = latest
                    skipped = missed - 1
                else:
                    self._next = instants.after(now)
                    skipped = missed
                if skipped:
                    context.log.info(
                        "schedule_skipped",
                        catch_up=mode,
                        skipped=skipped,
                        first=iso_utc(first_missed),
                        last=iso_utc(latest if mode == "none" else instants.at_or_before(latest - 0.001)),
                    )
        self._once = context.once
        if context.once:
            self._end = now

    def _count(self, first: float, last: float) -> int:
        """Instants from ``first`` to ``last``, both included (counted up to a limit)."""
        if isinstance(self.instants, RateInstants):
            return round((last - first) * 1000) // self.instants.step_ms + 1
        count, at = 0, first
        while at <= last and count < _COUNT_LIMIT:
            count += 1
            at = self.instants.after(at)
        return count

    async def read(self, max_events: int, timeout_s: float) -> list[Event]:
        clock = self._clock
        now = clock.wall()
        if self._next > now:
            if self._once:
                return []
            await clock.sleep(min(timeout_s, self._next - now))
            now = clock.wall()
        limit = min(now, self._end)
        events: list[Event] = []
        at = self._next
        while at <= limit and len(events) < max_events:
            when = iso_utc(at)
            events.append(Event({"name": self._name, "scheduled_time": when}, PARTITION, when, ""))
            at = self.instants.after(at)
        self._next = at
        self.fired += len(events)
        return events

    def caught_up(self) -> bool:
        return self._next > self._end

    def lag(self) -> Mapping[str, int] | None:
        return {PARTITION: 1 if self._next <= self._clock.wall() else 0}


connector = Connector(
    name="schedule",
    description="Events at fixed instants (a rate or a cron expression in a time zone); resumes without "
    "firing twice.",
    source=ScheduleSource,
)
