"""What an HTTP answer means for an event, and the errors that carry it to the dead letter.

The outcome of a request is decided here and nowhere else:

- 2xx: delivered;
- 408, 429, 5xx, a timeout or a connection error: retryable, and ``Retry-After``
  (seconds, or an HTTP date) is the earliest next attempt;
- any other status (3xx, 4xx): permanent, straight to the dead letter;
- ``retry_on`` / ``fail_on`` move single status codes from one side to the other.

A failed answer's error carries ``details`` (``status`` and the first KiB of
the response body), which ``pipes.retry.dead_letter_record`` adds to the dead
letter's ``error`` object, and ``execution_data`` (the request and the
response), which the pipe's log shows only when it includes execution data
(``log: {include_execution_data: true}``, ``pipes.trace``). Messages name the
method and the URL without its query or user info: those are where
credentials hide.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any, Final

from yarl import URL

from pipes.errors import FatalError, RetryableError

__all__ = [
    "BODY_EXCERPT_BYTES",
    "HttpFatalError",
    "HttpRetryableError",
    "StatusPolicy",
    "parse_retry_after",
    "safe_url",
]

#: How much of a failed response's body a dead letter keeps.
BODY_EXCERPT_BYTES: Final = 1024

_RETRYABLE_STATUSES: Final = frozenset({408, 429})


class HttpRetryableError(RetryableError):
    """A retryable answer (or no answer); ``details`` holds its status and body excerpt when there was one."""

    def __init__(
        self,
        message: str,
        retry_after_s: float | None = None,
        status: int | None = None,
        body: str | None = None,
    ) -> None:
        super().__init__(message, retry_after_s)
        self.status = status
        self.body = body
        self.details: dict[str, Any] = _details(status, body)
        #: The request and the response, for execution logs (``HttpClient.exchange``); None when unknown.
        self.execution_data: dict[str, Any] | None = None


class HttpFatalError(FatalError):
    """A permanent answer; ``details`` holds its status and body excerpt."""

    def __init__(self, message: str, status: int | None = None, body: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body
        self.details: dict[str, Any] = _details(status, body)
        #: The request and the response, for execution logs (``HttpClient.exchange``); None when unknown.
        self.execution_data: dict[str, Any] | None = None


def _details(status: int | None, body: str | None) -> dict[str, Any]:
    details: dict[str, Any] = {}
    if status is not None:
        details["status"] = status
    if body is not None:
        details["body"] = body
    return details


def safe_url(url: URL | str) -> str:
    """The URL for messages: scheme, host, port and path only (no user info, no query)."""
    parsed = url if isinstance(url, URL) else URL(url)
    try:
        return str(parsed.with_user(None).with_query(None).with_fragment(None))
    except ValueError:  # a relative or broken URL: say less rather than more
        return parsed.path or "<invalid url>"


def parse_retry_after(value: str | None, now_wall_s: float) -> float | None:
    """Seconds from now that ``Retry-After`` asks for (delay-seconds or an HTTP date); None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        # IMF-fixdate, and the obsolete RFC 850 and asctime forms RFC 9110 still asks us to read.
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # asctime has no zone: an HTTP date is GMT by definition
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now_wall_s)


class StatusPolicy:
    """Maps a status code onto delivered / retryable / permanent, with the pipe's overrides."""

    def __init__(self, retry_on: Collection[int] = (), fail_on: Collection[int] = ()) -> None:
        self.retry_on = frozenset(retry_on)
        self.fail_on = frozenset(fail_on)

    def delivered(self, status: int) -> bool:
        if status in self.fail_on or status in self.retry_on:
            return False
        return 200 <= status < 300

    def retryable(self, status: int) -> bool:
        """For a status that is not delivered: may a later attempt succeed?"""
        if status in self.retry_on:
            return True
        if status in self.fail_on:
            return False
        return status in _RETRYABLE_STATUSES or status >= 500

    def error(
        self,
        what: str,
        status: int,
        headers: Mapping[str, str],
        body: str,
        now_wall_s: float,
    ) -> HttpRetryableError | HttpFatalError:
        """The error for a response that was not delivered (``what``: method and safe URL)."""
        message = f"{what}: HTTP {status}"
        if self.retryable(status):
            wait = parse_retry_after(headers.get("Retry-After"), now_wall_s)
            return HttpRetryableError(message, retry_after_s=wait, status=status, body=body)
        return HttpFatalError(message, status=status, body=body)
