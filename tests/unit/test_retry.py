"""The retry policy: full-jitter exponential backoff and the give-up rule."""

from __future__ import annotations

import random

from pipes.errors import FatalError, RetryableError
from pipes.events import Event
from pipes.models import RetryConfig
from pipes.pipeline import Failure, Stage
from pipes.retry import RetryPolicy, dead_letter_record


def test_backoff_is_full_jitter_under_a_doubling_ceiling() -> None:
    policy = RetryPolicy(RetryConfig(backoff_initial=0.2, backoff_max=3.0), random.Random(1))
    for attempt, ceiling in [(1, 0.2), (2, 0.4), (3, 0.8), (4, 1.6), (5, 3.0), (40, 3.0)]:
        waits = [policy.backoff(attempt) for _ in range(500)]
        assert all(0 <= w <= ceiling for w in waits)
        assert max(waits) > ceiling * 0.9  # spread over the whole range, not a fixed delay
        assert min(waits) < ceiling * 0.1


def failure(error: Exception, attempts: int) -> Failure:
    event = Event(record={}, partition="p", position=0)
    return Failure(event, Stage.TARGET, 0, error, attempts=attempts, received_at=100.0)


def test_gives_up_on_fatal_errors_attempts_and_age() -> None:
    policy = RetryPolicy(RetryConfig(max_attempts=3, max_event_age=60.0))
    assert policy.gives_up(failure(FatalError("no"), 1), 100.0)
    assert not policy.gives_up(failure(RetryableError("later"), 1), 100.0)
    assert policy.gives_up(failure(RetryableError("later"), 3), 100.0)
    assert policy.gives_up(failure(RetryableError("later"), 1), 160.0)
    assert not RetryPolicy(RetryConfig(max_attempts=3, max_event_age=None)).gives_up(
        failure(RetryableError("later"), 1), 10_000.0
    )


def test_gives_up_when_the_asked_for_wait_ends_past_the_age_limit() -> None:
    policy = RetryPolicy(RetryConfig(max_attempts=10, max_event_age=60.0))
    soon, late = failure(RetryableError("429", 5.0), 1), failure(RetryableError("429", 3600.0), 1)
    soon.not_before, late.not_before = 105.0, 3700.0  # received at 100: too old from 160 on
    assert not policy.gives_up(soon, 100.0)
    assert policy.gives_up(late, 100.0)
    late.not_before = 159.9
    assert not policy.gives_up(late, 100.0)
    without_age = RetryPolicy(RetryConfig(max_attempts=10, max_event_age=None))
    late.not_before = 1e9
    assert not without_age.gives_up(late, 100.0)  # no age limit: wait as long as asked


def test_dead_letter_record_layout() -> None:
    event = Event(record={"body": 1}, partition="p", position=0)
    failed = Failure(event, Stage.TARGET, 0, RetryableError("down"), 2, 0.0, 1.5)
    assert dead_letter_record("pipe", failed) == {
        "pipe": "pipe",
        "stage": "target",
        "error": {"type": "RetryableError", "message": "down"},
        "attempts": 2,
        "first_attempt_at": "1970-01-01T00:00:00.000Z",
        "last_attempt_at": "1970-01-01T00:00:01.500Z",
        "record": {"body": 1},
    }


def test_an_errors_details_join_the_error_object_without_replacing_its_keys() -> None:
    class Refused(FatalError):
        def __init__(self) -> None:
            super().__init__("HTTP 400")
            self.details = {"status": 400, "body": "bad sku", "type": "ignored", "message": "ignored"}

    event = Event(record={"body": 1}, partition="p", position=0)
    letter = dead_letter_record("pipe", Failure(event, Stage.TARGET, 0, Refused(), 1))
    assert letter["error"] == {"type": "Refused", "message": "HTTP 400", "status": 400, "body": "bad sku"}
