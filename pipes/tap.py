"""Live taps: copies of what passes a pipe's stages, for a viewer (``pipes tap``).

A ``TapHub`` belongs to one pipe; the daemon keeps it on the pipe's handle, so
a tap stays attached while the pipe restarts. While nothing is attached the
hub is not ``active`` and the runner asks for nothing per event: one check of
``active`` per batch. While a tap is attached, the runner records each event's
fate per stage (``pipes.pipeline.Tally.trace``) and ``offer``s it here; a tap
that wants it copies it, as JSON bytes, into its own bounded buffer.

A tap never holds the pipe up: when its viewer does not keep up, the buffer
fills and further lines are dropped and counted (``dropped``), and lines over
the tap's ``rate`` are skipped and counted (``over_rate``). The pipe's own
events are never touched: a tap line is a copy made when it is offered.

A tap line is a JSON object: ``time``, ``pipe``, ``stage``, ``outcome``
(received, matched, filtered, enriched, dropped, transformed, delivered,
failed, dead_lettered), ``partition``, ``position``, and what the stage saw:
``record`` (source, filter, enrichment; ``result`` too for an enrichment),
``payload`` (transform, target), ``dead_letter`` (the dead-letter record),
``error`` (a failure). A tap's ``where`` pattern is matched against that
object, so ``{"outcome": ["filtered"]}`` selects what the filter refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import Iterable
from typing import Any

import orjson

from pipes.clock import Clock, SystemClock, iso_utc
from pipes.events import Event
from pipes.patterns import EventFilter

__all__ = [
    "BUFFER",
    "BUFFER_BYTES",
    "DEFAULT_RATE",
    "MAX_TAPS",
    "STAGES",
    "Tap",
    "TapHub",
    "TooManyTaps",
    "tap_line",
]

#: The stages a tap can watch, in the order events meet them.
STAGES = ("source", "filter", "enrichment", "transform", "target", "dead_letter")
#: Lines a tap holds for its viewer; beyond, lines are dropped (and counted).
BUFFER = 256
#: Bytes a tap holds for its viewer (records can be large); beyond, lines are dropped too.
BUFFER_BYTES = 4 * 1024 * 1024
#: Lines per second a tap copies unless told otherwise (as Vector's tap: 100 per 500 ms).
DEFAULT_RATE = 200.0
#: Taps one pipe accepts at once: each one costs the pipe a little CPU per event.
MAX_TAPS = 8

#: Stages whose lines carry the record; the others carry the payload.
_RECORD_STAGES = frozenset({"source", "filter", "enrichment"})


class TooManyTaps(Exception):
    """The pipe has ``MAX_TAPS`` taps attached already."""


def tap_line(stage: str, outcome: str, event: Event, detail: Any) -> dict[str, Any]:
    """The tap line of one trace entry (``pipes.pipeline.Tally.trace``), without ``time`` and ``pipe``."""
    line: dict[str, Any] = {
        "stage": str(stage),
        "outcome": outcome,
        "partition": event.partition,
        "position": event.position,
    }
    if stage == "dead_letter":
        line["dead_letter"] = detail
        return line
    if stage in _RECORD_STAGES:
        line["record"] = event.record
        if outcome == "enriched":
            line["result"] = detail
    else:
        line["payload"] = detail if outcome == "transformed" else event.payload
    if outcome == "failed":
        line["error"] = {"type": type(detail).__name__, "message": str(detail)}
    return line


def _copy(line: dict[str, Any]) -> bytes:
    """The line as JSON bytes: the copy the viewer gets, whatever happens to the event later."""
    try:
        return orjson.dumps(line, default=repr, option=orjson.OPT_NON_STR_KEYS)
    except (TypeError, orjson.JSONEncodeError):  # e.g. an integer beyond 64 bits
        return json.dumps(line, default=repr, ensure_ascii=False, separators=(",", ":")).encode()


class Tap:
    """One viewer's subscription: which stages, which lines, how many, how fast.

    ``lines()`` hands over what was copied since the last call; ``reason`` is
    set once the tap ended (its ``limit`` reached, the pipe removed, the
    daemon stopping, or the viewer gone).
    """

    def __init__(
        self,
        clock: Clock,
        stages: Iterable[str] | None = None,
        where: EventFilter | None = None,
        limit: int | None = None,
        rate: float | None = DEFAULT_RATE,
        buffer: int = BUFFER,
    ) -> None:
        self.stages = frozenset(stages) if stages else frozenset(STAGES)
        unknown = self.stages - set(STAGES)
        if unknown:
            raise ValueError(f"unknown stage {sorted(unknown)[0]!r} (use {', '.join(STAGES)})")
        if limit is not None and limit < 1:
            raise ValueError("limit must be at least 1")
        if rate is not None and rate <= 0:
            raise ValueError("rate must be more than 0 (or none for no limit)")
        self.where = where
        self.limit = limit
        self.rate = rate
        self.buffer = buffer
        self._clock = clock
        #: Lines copied for the viewer (what ``limit`` counts).
        self.sent = 0
        #: Lines lost because the viewer did not keep up.
        self.dropped = 0
        #: Lines skipped because they came faster than ``rate``.
        self.over_rate = 0
        self.reason: str | None = None
        self._lines: deque[bytes] = deque()
        self._bytes = 0
        self._ready = asyncio.Event()
        self._tokens = rate if rate is not None else 0.0
        self._refilled = clock.monotonic()

    @property
    def ended(self) -> bool:
        return self.reason is not None

    def wants(self, line: dict[str, Any]) -> bool:
        """Whether ``line`` is for this tap (its ``where``); without one, every line of its stages is."""
        return self.where is None or self.where.matches(line)

    def admit(self) -> bool:
        """Room for one more line: within the rate and the buffer (what is turned away is counted)."""
        if self.reason is not None:
            return False
        if self.rate is not None and not self._token():
            self.over_rate += 1
            return False
        if len(self._lines) >= self.buffer or self._bytes >= BUFFER_BYTES:
            self.dropped += 1
            return False
        return True

    def push(self, line: dict[str, Any]) -> None:
        """Copy an admitted line for the viewer."""
        data = _copy(line)
        self._lines.append(data)
        self._bytes += len(data)
        self.sent += 1
        self._ready.set()
        if self.limit is not None and self.sent >= self.limit:
            self.close("limit")

    def take(self, line: dict[str, Any]) -> None:
        """``line`` copied if this tap wants it and has room; counted if it has not."""
        if self.wants(line) and self.admit():
            self.push(line)

    def _token(self) -> bool:
        assert self.rate is not None
        now = self._clock.monotonic()
        self._tokens = min(self.rate, self._tokens + (now - self._refilled) * self.rate)
        self._refilled = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    async def lines(self, wait_s: float) -> list[bytes]:
        """What was copied since the last call; waits up to ``wait_s`` for something (or the end)."""
        if not self._lines and self.reason is None:
            self._ready.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ready.wait(), wait_s)
        out = list(self._lines)
        self._lines.clear()
        self._bytes = 0
        return out

    def close(self, reason: str) -> None:
        """End the tap (the lines already copied can still be taken); the first reason stays."""
        if self.reason is None:
            self.reason = reason
        self._ready.set()

    def counts(self) -> dict[str, int]:
        return {"sent": self.sent, "dropped": self.dropped, "over_rate": self.over_rate}


class TapHub:
    """The taps of one pipe; ``active`` is the one thing the hot path reads."""

    def __init__(self, pipe: str = "", clock: Clock | None = None, max_taps: int = MAX_TAPS) -> None:
        self.pipe = pipe
        self.clock = clock or SystemClock()
        self.max_taps = max_taps
        self.taps: list[Tap] = []
        #: True while a tap is attached: the runner then records each event's way for ``offer``.
        self.active = False
        self._stages: frozenset[str] = frozenset()

    def attach(
        self,
        stages: Iterable[str] | None = None,
        where: EventFilter | None = None,
        limit: int | None = None,
        rate: float | None = DEFAULT_RATE,
        buffer: int = BUFFER,
    ) -> Tap:
        """A new tap; ``ValueError`` for a bad argument, ``TooManyTaps`` when the pipe has enough."""
        self._forget_ended()
        if len(self.taps) >= self.max_taps:
            raise TooManyTaps(f"pipe {self.pipe!r} has {len(self.taps)} taps attached already")
        tap = Tap(self.clock, stages, where, limit, rate, buffer)
        self.taps.append(tap)
        self._changed()
        return tap

    def detach(self, tap: Tap, reason: str = "detached") -> None:
        tap.close(reason)
        if tap in self.taps:
            self.taps.remove(tap)
        self._changed()

    def close(self, reason: str) -> None:
        """End every tap (the pipe is gone, the daemon stops)."""
        for tap in self.taps:
            tap.close(reason)
        self.taps.clear()
        self._changed()

    def wants(self, stage: str) -> bool:
        """Whether a tap watches ``stage`` (so the caller can skip building what it would offer)."""
        return stage in self._stages

    def offer(self, entries: Iterable[tuple[str, str, Event, Any]]) -> None:
        """Trace entries (stage, outcome, event, detail) for the taps that watch their stage."""
        if not self.active:
            return
        stages = self._stages
        time: str | None = None
        for stage, outcome, event, detail in entries:
            if stage not in stages:
                continue
            line: dict[str, Any] | None = None
            for tap in self.taps:
                if stage not in tap.stages:
                    continue
                # A tap without a pattern is turned away (rate, full buffer) before any line is built.
                if tap.where is None and not tap.admit():
                    continue
                if line is None:
                    if time is None:
                        time = iso_utc(self.clock.wall())
                    line = {"time": time, "pipe": self.pipe, **tap_line(stage, outcome, event, detail)}
                if tap.where is None:
                    tap.push(line)
                else:
                    tap.take(line)
        if any(tap.ended for tap in self.taps):
            self._forget_ended()

    def _forget_ended(self) -> None:
        alive = [tap for tap in self.taps if not tap.ended]
        if len(alive) != len(self.taps):
            self.taps = alive
            self._changed()

    def _changed(self) -> None:
        self._stages = frozenset().union(*(tap.stages for tap in self.taps))
        self.active = bool(self.taps)
