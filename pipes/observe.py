"""Logging set-up and the runner's observation hooks.

Logs are an interface: a stable event name plus bound fields (``pipe``,
``stage``, ``partition``). Normal operation is quiet at INFO; per-event lines
exist only at TRACE, and the hot path checks a boolean before building them.
Metrics are fed through ``RunnerObserver`` so that the runner knows nothing of
Prometheus; the daemon plugs its collector in.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Protocol

import structlog

__all__ = ["LEVELS", "NullObserver", "PipeLog", "RunnerObserver", "configure_logging"]

#: Per-pipe log levels, as AWS Pipes names them, mapped to logging levels.
LEVELS = {"OFF": logging.CRITICAL + 10, "ERROR": logging.ERROR, "INFO": logging.INFO, "TRACE": 5}


def configure_logging(fmt: str = "console", stream: Any = None) -> None:
    """JSON lines (``json``) or readable console lines; to stderr by default."""
    renderer: Any
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        logger_factory=structlog.PrintLoggerFactory(file=stream or sys.stderr),
        cache_logger_on_first_use=False,
    )


class PipeLog:
    """A pipe's logger: bound with the pipe name, filtered by the pipe's ``log_level``."""

    def __init__(self, pipe: str, level: str = "INFO", base: Any = None) -> None:
        self._log = (base or structlog.get_logger()).bind(pipe=pipe)
        self._level = LEVELS[level]
        #: Checked on the hot path before any per-event work is done for logging.
        self.tracing = self._level <= LEVELS["TRACE"]

    def bind(self, **fields: Any) -> Any:
        return self._log.bind(**fields)

    def trace(self, event: str, **fields: Any) -> None:
        if self.tracing:
            self._log.debug(event, level_name="TRACE", **fields)

    def info(self, event: str, **fields: Any) -> None:
        if self._level <= logging.INFO:
            self._log.info(event, **fields)

    def warning(self, event: str, **fields: Any) -> None:
        if self._level <= logging.WARNING:
            self._log.warning(event, **fields)

    def error(self, event: str, **fields: Any) -> None:
        if self._level <= logging.ERROR:
            self._log.error(event, **fields)


class RunnerObserver(Protocol):
    """What a runner reports for metrics; every call is cheap and never raises."""

    def events(self, kind: str, count: int, stage: str | None = None) -> None:
        """``kind``: received, filtered, delivered, failed (with stage), dead_lettered, retried, dropped."""

    def duration(self, stage: str, seconds: float) -> None:
        """Time one batch spent in ``stage`` (``batch`` for the whole batch)."""

    def state(self, state: str) -> None:
        """The pipe's current state changed."""


class NullObserver:
    def events(self, kind: str, count: int, stage: str | None = None) -> None:
        return None

    def duration(self, stage: str, seconds: float) -> None:
        return None

    def state(self, state: str) -> None:
        return None
