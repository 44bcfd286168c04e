"""RateMeter: events per second from readings of cumulative counters."""

from __future__ import annotations

import pytest

from pipes.rates import COUNTERS, RateMeter


def counts(received: int, delivered: int = 0) -> dict[str, int]:
    return {"received": received, "delivered": delivered, "filtered": 0}


def test_the_first_reading_has_no_rate_and_the_next_compares_with_it() -> None:
    meter = RateMeter(window_s=5.0, min_gap_s=0.5)
    first = meter.observe(100.0, {"a": counts(0)})
    assert first.window_s is None and first.per_pipe == {"a": None}
    second = meter.observe(101.0, {"a": counts(50, 40)})
    assert second.window_s == pytest.approx(1.0)
    rates = second.per_pipe["a"]
    assert rates is not None and set(rates) == set(COUNTERS)
    assert rates["received"] == pytest.approx(50.0) and rates["delivered"] == pytest.approx(40.0)
    assert rates["failed"] == 0.0


def test_rates_cover_the_window_and_readings_closer_than_the_gap_are_not_kept() -> None:
    meter = RateMeter(window_s=5.0, min_gap_s=0.5)
    for second in range(0, 11):
        meter.observe(float(second), {"a": counts(second * 10)})
    # Readings at 5..10 s are kept (one at or before the window's start): the rate spans 5 s.
    late = meter.observe(10.2, {"a": counts(200)})  # 0.2 s after the last reading: compared, not kept
    assert late.window_s == pytest.approx(5.2)
    assert late.per_pipe["a"] == pytest.approx({k: 0.0 for k in COUNTERS} | {"received": (200 - 50) / 5.2})
    again = meter.observe(10.4, {"a": counts(110)})
    assert again.per_pipe["a"] is not None and again.per_pipe["a"]["received"] == pytest.approx(
        (110 - 50) / 5.4
    )


def test_a_counter_that_went_down_or_a_new_pipe_has_no_rate_yet() -> None:
    meter = RateMeter()
    meter.observe(0.0, {"a": counts(100)})
    later = meter.observe(1.0, {"a": counts(5), "b": counts(7)})  # a was removed and added again; b is new
    assert later.per_pipe == {"a": None, "b": None}
