"""The live progress bar of ``pipes map`` (Rich) and the summary line every run ends with.

The bar is drawn only on a terminal: items and bytes done of the total,
records read per second, the time left (by bytes, which tracks work better
than items of uneven size) and the failures so far. Log lines printed while
it runs appear above it.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)

__all__ = ["MapProgress", "summary_line"]


class MapProgress:
    """Start, update after each finished task, stop; does nothing when ``enabled`` is false."""

    def __init__(
        self,
        name: str,
        total_items: int,
        total_bytes: int,
        enabled: bool,
        records_before: int = 0,
        stream: TextIO | None = None,
    ) -> None:
        self.enabled = enabled
        self._by_bytes = total_bytes > 0
        self._total_items = total_items
        self._started = time.monotonic()
        self._records_before = records_before  # a resumed run's rate counts this session only
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        if not enabled:
            return
        columns: list[Any] = [
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[items]}"),
        ]
        if self._by_bytes:
            columns.append(DownloadColumn())
        columns += [
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[failures]}"),
        ]
        self._progress = Progress(*columns, console=Console(file=stream or sys.stderr), transient=False)
        self._task = self._progress.add_task(
            name, total=total_bytes if self._by_bytes else total_items, items="", rate="", failures=""
        )

    def start(self) -> None:
        self._started = time.monotonic()
        if self._progress is not None:
            self._progress.start()

    def update(self, items_done: int, bytes_done: int, records: int, failed: int) -> None:
        if self._progress is None or self._task is None:
            return
        elapsed = time.monotonic() - self._started
        # Over the whole run: tasks finish in steps, so a short window would flicker to 0.
        rate = (records - self._records_before) / elapsed if elapsed > 0 else 0.0
        self._progress.update(
            self._task,
            completed=bytes_done if self._by_bytes else items_done,
            items=f"{items_done:,}/{self._total_items:,} items",
            rate=f"{_short(rate)} records/s",
            failures=f"[red]{failed:,} failed" if failed else "",
        )

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def _short(value: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= size:
            return f"{value / size:.1f}{unit}"
    return f"{value:.0f}"


def summary_line(summary: dict[str, Any]) -> str:
    """One line: outcome, items, records, groups, time and rate, executor, and where the result is."""
    items = summary["items"]
    records = summary["records"]
    wall = summary["wall_s"]
    rate = records["read_this_session"] / wall if wall > 0 else 0.0
    failed = f", {items['failed']:,} failed" if items["failed"] else ""
    pending = f", {items['pending']:,} pending" if items["pending"] else ""
    line = (
        f"{summary['name']}: {summary['status'].lower()}; items {items['succeeded']:,}/{items['total']:,} done"
        f"{failed}{pending}; records read {records['read']:,}, filtered out {records['filtered_out']:,}, "
        f"mapped {records['mapped']:,}; {summary['groups']:,} result records in {wall:.1f}s "
        f"({rate:,.0f} records/s) on {summary['executor']}"
    )
    if summary.get("reason"):
        line += f"; {summary['reason']}"
    if summary.get("result_path"):
        line += f"; result in {summary['result_path']}"
    return line
