"""What can go wrong with one item, by whether trying again can help.

The job decides from the type alone (as the pipe runner does): an
``ItemDataError`` fails the item at once; an ``OSError`` with an errno (a
file system or network error) and any exception from user code are retried
with backoff up to ``retry.max_attempts``.
"""

from __future__ import annotations

__all__ = ["ItemDataError", "is_retryable"]


class ItemDataError(Exception):
    """The item's content is bad (corrupt, wrong shape, wrong types); retrying cannot help."""


def is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, ItemDataError):
        return False
    if isinstance(exc, OSError):
        # gzip/bz2 report corrupt data as OSError without an errno; real I/O errors carry one.
        return exc.errno is not None
    return True
