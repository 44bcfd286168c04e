"""The progress bar of pipes map and its summary line."""

from __future__ import annotations

import io

from pipes.map.progress import MapProgress, summary_line


def test_the_bar_shows_items_bytes_rate_and_failures() -> None:
    stream = io.StringIO()
    progress = MapProgress("weather", total_items=10, total_bytes=2_000_000, enabled=True, stream=stream)
    progress.start()
    progress.update(items_done=5, bytes_done=1_000_000, records=1000, failed=2)
    progress.stop()
    text = stream.getvalue()
    assert "weather" in text
    assert "5/10 items" in text
    assert "1.0/2.0 MB" in text
    assert "records/s" in text
    assert "2 failed" in text


def test_a_disabled_bar_writes_nothing() -> None:
    stream = io.StringIO()
    progress = MapProgress("weather", 10, 0, enabled=False, stream=stream)
    progress.start()
    progress.update(1, 0, 10, 0)
    progress.stop()
    assert stream.getvalue() == ""


def test_the_summary_line() -> None:
    summary = {
        "name": "m",
        "status": "FAILED",
        "reason": "3 of 24 items failed (tolerated: 5%); repair them and run with --redrive",
        "wall_s": 2.0,
        "executor": "local (2 workers)",
        "items": {"total": 24, "succeeded": 20, "failed": 3, "pending": 1},
        "records": {"read": 1000, "filtered_out": 900, "mapped": 100, "read_this_session": 800},
        "groups": 0,
        "result_path": "",
    }
    assert summary_line(summary) == (
        "m: failed; items 20/24 done, 3 failed, 1 pending; records read 1,000, filtered out 900, mapped 100; "
        "0 result records in 2.0s (400 records/s) on local (2 workers); "
        "3 of 24 items failed (tolerated: 5%); repair them and run with --redrive"
    )
