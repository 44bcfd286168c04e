"""Times on the command line: ISO 8601 and now-DURATION, and nothing that could be a position."""

from __future__ import annotations

import pytest

from pipes.times import looks_like_time, parse_time

NOW = 1_764_000_000.0  # 2025-11-24T16:00:00Z


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now", NOW),
        ("NOW", NOW),
        ("now-1h", NOW - 3600),
        ("now - 90m", NOW - 5400),
        ("now-2d", NOW - 2 * 86400),
        ("now-500ms", NOW - 0.5),
        ("2025-11-24T16:00:00Z", NOW),
        ("2025-11-24T17:00:00+01:00", NOW),
        ("2025-11-24T16:00:00", NOW),  # no zone: UTC
        ("2025-11-24T16:00:00.250Z", NOW + 0.25),
        ("2025-11-24", NOW - 16 * 3600),
    ],
)
def test_times_operators_write(text: str, expected: float) -> None:
    assert parse_time(text, NOW) == pytest.approx(expected)
    assert looks_like_time(text)


@pytest.mark.parametrize("text", ["1700000000", "500", "1700000000000-0", "p0=3", "beginning", ""])
def test_positions_are_not_times(text: str) -> None:
    assert not looks_like_time(text)
    with pytest.raises(ValueError, match="not a time"):
        parse_time(text, NOW)


@pytest.mark.parametrize("text", ["now-soon", "now-1y", "2025-13-40T00:00:00Z"])
def test_a_bad_time_is_one_line_saying_what_is_accepted(text: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_time(text, NOW)
    message = str(info.value)
    assert "\n" not in message
    assert "now-DURATION" in message and text in message
