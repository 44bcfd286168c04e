"""When to retry a failed event, how long to wait, and what its dead letter says.

Kept apart from the runner so the policy reads in one place: full-jitter
exponential backoff (AWS's architecture blog calls it the best of the simple
schemes: it spreads retries of many failing events instead of synchronising
them), and a give-up rule from attempts, age and the error's type.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson

from pipes.clock import iso_utc
from pipes.errors import FatalError
from pipes.models import RetryConfig

if TYPE_CHECKING:
    from pipes.pipeline import Failure

__all__ = ["RetryPolicy", "dead_letter_record"]


class RetryPolicy:
    def __init__(self, config: RetryConfig, rng: random.Random | None = None) -> None:
        self.config = config
        self.rng = rng or random.Random()

    def backoff(self, attempt: int) -> float:
        """Seconds to wait before attempt ``attempt + 1``: uniform in [0, min(max, initial x 2^(attempt-1))]."""
        ceiling = min(self.config.backoff_max, self.config.backoff_initial * (2 ** min(attempt - 1, 30)))
        return self.rng.uniform(0, ceiling)

    def gives_up(self, failure: Failure, now_monotonic: float) -> bool:
        """True when the failed event must go to the dead letter rather than be tried again."""
        if isinstance(failure.error, FatalError) or failure.attempts >= self.config.max_attempts:
            return True
        age = self.config.max_event_age
        if age is None:
            return False
        # A wait the other system asked for (Retry-After) that ends past the event's age
        # limit would hold its partition that long only to give up then: give up now.
        too_old_at = failure.received_at + age
        return now_monotonic >= too_old_at or failure.not_before >= too_old_at


def dead_letter_record(
    pipe: str, failure: Failure, earlier: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The documented dead-letter record (docs/delivery.md); always JSON, whatever the event held.

    An event fails for good precisely when its data is odd (a value with no
    JSON form, say), and its dead letter must still be written: such values are
    kept as their ``repr`` rather than failing the dead letter too.

    An error may carry ``details``, a mapping of facts a connector knows about
    the failure (an HTTP target: the status code and the start of the response
    body); they are added to the ``error`` object beside ``type`` and
    ``message``, which they never replace.

    ``earlier`` is the dead letter a redrive sent again, when this failure is
    its next one: the new record counts the redrives (``redrive_count``) and
    keeps the first failure ever (``first_failure``: stage, error, attempts and
    times), so that what went wrong in the first place is never lost.
    """
    error: dict[str, Any] = {"type": type(failure.error).__name__, "message": str(failure.error)}
    details = getattr(failure.error, "details", None)
    if isinstance(details, Mapping):
        error.update((key, value) for key, value in details.items() if key not in error)
    # The record as the source gave it, every digit of huge integers included (decoding
    # for matching may have rounded them; a dead letter is for a person to read).
    failure.event.decode_exactly()
    record: dict[str, Any] = {
        "pipe": pipe,
        "stage": str(failure.stage),
        "error": error,
        "attempts": failure.attempts,
        "first_attempt_at": iso_utc(failure.first_attempt_at),
        "last_attempt_at": iso_utc(failure.last_attempt_at),
        "record": failure.event.record,
    }
    if earlier is not None:
        first = earlier.get("first_failure")
        if not isinstance(first, dict):
            first = {key: earlier.get(key) for key in _FAILURE_KEYS}
        count = earlier.get("redrive_count")
        record["redrive_count"] = (count if isinstance(count, int) else 0) + 1
        record["first_failure"] = first
    return _json_safe(record)


#: What describes one failure in a dead-letter record (kept as ``first_failure`` across redrives).
_FAILURE_KEYS = ("stage", "error", "attempts", "first_attempt_at", "last_attempt_at")


def _json_safe(value: dict[str, Any]) -> dict[str, Any]:
    try:
        orjson.dumps(value)
        return value
    except (TypeError, orjson.JSONEncodeError):
        safe: dict[str, Any] = json.loads(json.dumps(value, default=repr, ensure_ascii=False))
        return safe
