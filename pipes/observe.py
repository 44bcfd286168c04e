"""Logging set-up and the runner's observation hooks.

Logs are an interface: a stable event name plus bound fields (``pipe``,
``stage``, ``partition``). Normal operation is quiet at INFO; per-event lines
exist only at TRACE, and the hot path checks a boolean before building them.
Metrics are fed through ``RunnerObserver`` so that the runner knows nothing of
Prometheus; the daemon plugs its collector in.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING, Any, Protocol

import structlog

if TYPE_CHECKING:
    from pipes.models import LogConfig

__all__ = ["LEVELS", "LogOutput", "NullObserver", "PipeLog", "RunnerObserver", "configure_logging"]

#: Per-pipe log levels, as AWS Pipes names them, mapped to logging levels.
LEVELS = {"OFF": logging.CRITICAL + 10, "ERROR": logging.ERROR, "INFO": logging.INFO, "TRACE": 5}

_HANDLER_NAME = "pipes"


class LogOutput:
    """Where ``pipes run`` writes; what ``configure_logging`` set up, and how to take it down.

    ``say`` is for what the command itself reports (the admin address, a
    signal, the summary): a plain line on the console, a structured event
    with JSON logs, so that every line of JSON output is one JSON object.
    """

    def __init__(self, fmt: str, stream: Any) -> None:
        self.json = fmt == "json"
        self.stream = stream

    def say(self, event: str, text: str, level: str = "info", **fields: Any) -> None:
        if self.json:
            getattr(structlog.get_logger(), level)(event, **fields)
        else:
            self.stream.write(text + "\n")
            self.stream.flush()

    def close(self) -> None:
        """Detach the standard-library handler and warning capture set up by ``configure_logging``."""
        _remove_handler()
        logging.captureWarnings(False)


def configure_logging(fmt: str = "console", stream: Any = None) -> LogOutput:
    """JSON lines (``json``) or readable console lines; to stderr by default.

    Records of the standard ``logging`` module (aiokafka's connection errors,
    asyncio's complaints) and Python warnings are rendered by the same
    processors as our own events, through structlog's ``ProcessorFormatter``:
    with ``json`` every line is one JSON object, whoever logged it. The root
    logger's level is left as it is (WARNING unless the embedding program chose).
    """
    out = stream or sys.stderr
    renderer: Any
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    worker = os.environ.get("PIPES_WORKER")  # a worker process of --workers names itself in every line
    tag: list[Any] = [_tagger(worker)] if worker else []
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            *tag,
            timestamper,
            structlog.processors.format_exc_info,
            renderer,
        ],
        logger_factory=structlog.WriteLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(out)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.stdlib.add_log_level,
                structlog.stdlib.add_logger_name,
                *tag,
                timestamper,
            ],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    _remove_handler()
    logging.getLogger().addHandler(handler)
    logging.captureWarnings(True)
    return LogOutput(fmt, out)


def _tagger(worker: str) -> Any:
    def tag(logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
        event.setdefault("worker", worker)
        return event

    return tag


def _remove_handler() -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() == _HANDLER_NAME:
            root.removeHandler(handler)


class PipeLog:
    """A pipe's logger: bound with the pipe name, filtered by the pipe's log level.

    ``execution_data`` says whether lines about events may carry what the
    events hold (records, payloads, a target's request and response): those
    can be personal data, so they are logged only when the pipe asks for it
    (``log: {include_execution_data: true}``), as AWS Pipes does.
    """

    def __init__(
        self, pipe: str, level: str = "INFO", base: Any = None, *, execution_data: bool = False
    ) -> None:
        self._log = (base or structlog.get_logger()).bind(pipe=pipe)
        self._level = LEVELS[level]
        #: Checked on the hot path before any per-event work is done for logging.
        self.tracing = self._level <= LEVELS["TRACE"]
        self.execution_data = execution_data

    @classmethod
    def for_config(cls, pipe: str, config: LogConfig, base: Any = None) -> PipeLog:
        """The logger a pipe's ``log:`` settings ask for."""
        return cls(pipe, config.level, base, execution_data=config.include_execution_data)

    def data(self, **fields: Any) -> dict[str, Any]:
        """``fields`` when execution data is to be logged, else nothing: ``log.error(..., **log.data(record=r))``."""
        return fields if self.execution_data else {}

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
