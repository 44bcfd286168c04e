"""One exception hierarchy for the whole project.

The runner decides what to do with a failure from its type alone, never from
its message: a ``RetryableError`` (or any exception we did not classify) is
retried with backoff, a ``FatalError`` goes straight to the dead letter.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "ConnectorError",
    "FatalError",
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


class FatalError(ConnectorError):
    """Permanent for this event: retrying cannot help (rejected payload, too large)."""
