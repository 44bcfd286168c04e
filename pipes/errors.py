"""One exception hierarchy for the whole project.

The runner decides what to do with a failure from its type alone, never from
its message: a ``RetryableError`` (or any exception we did not classify) is
retried with backoff, a ``FatalError`` goes straight to the dead letter.
A ``RetryableError`` may say when trying again makes sense at the earliest
(``retry_after_s``: an HTTP ``Retry-After``, a broker's throttle time); the
runner waits at least that long. ``PipeFailed`` is the runner's own verdict
that a whole pipe cannot run (a connector refused its definition, a checkpoint
is unreadable); it is what ``PipeRunner.run`` raises.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "ConnectorError",
    "FatalError",
    "PipeFailed",
    "PipesError",
    "RetryableError",
]


class PipesError(Exception):
    """Base of every error this project raises on purpose."""


class ConfigError(PipesError, ValueError):
    """A user's definition is wrong. ``str()`` is one line that says where and what."""


class ConnectorError(PipesError):
    """A connector could not do its I/O."""


class RetryableError(ConnectorError):
    """Transient: the same call may succeed later (broker down, timeout, throttled)."""

    def __init__(self, message: str = "", retry_after_s: float | None = None) -> None:
        super().__init__(message)
        #: The earliest useful retry, in seconds from now, when the other system said so.
        self.retry_after_s = retry_after_s


class FatalError(ConnectorError):
    """Permanent for this event: retrying cannot help (rejected payload, too large).

    Raised by a connector's ``start``, it means the other system refused the
    definition: the pipe cannot run.
    """


class PipeFailed(FatalError):
    """The whole pipe cannot run; ``str()`` says why in one line."""
