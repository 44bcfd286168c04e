"""A pipe's page when things go wrong: counters per stage, the checkpoint, and the dead letters read back.

One pipe of a finite generator whose target is down: every event is retried
once and dead-lettered to a file. The page must say so in numbers that agree
with the admin API, and list the dead letters with their error.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from console_kit import RunningDaemon, log_in

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

EVENTS = 12
SINK = """
def write(batch, options):
    raise RuntimeError("reporting db is down")
"""


def wait_for(condition: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (found := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.1)  # polling a condition with a deadline
    return found


def stat(page: Any, stage: str, label: str) -> int:
    """The number a stage's box shows beside ``label`` (without its rate)."""
    text = page.locator(f".stage[data-stage='{stage}'] dt:text-is('{label}') + dd").inner_text()
    return int(text.split()[0].replace(",", ""))


def test_the_pipe_page_counts_per_stage_and_lists_the_dead_letters_with_their_error(
    tmp_path: Path, start_daemon: Callable[..., RunningDaemon], page: Any
) -> None:
    folder = tmp_path / "pipes"
    folder.mkdir()
    (folder / "down_sink.py").write_text(SINK)
    definition = {
        "name": "reporting",
        "source": {"type": "generator", "count": EVENTS},
        "filter": [{"body": {"detail-type": ["OrderPlaced", "CartUpdated", "CheckoutStarted"]}}],
        "target": {"type": "python", "function": "down_sink:write"},
        "retry": {"max_attempts": 1},
        "dead_letter": {"type": "file", "path": "dlq/reporting.jsonl"},
        "batch": {"size": 4, "window": 0},
        "checkpoint_interval": "50ms",
    }
    (folder / "reporting.yaml").write_text(json.dumps(definition))
    daemon = start_daemon(folder)
    status = wait_for(
        lambda: (
            (found := daemon.api("/pipes/reporting")[1])
            and found["counters"]["received"] == EVENTS
            and found["counters"]["dead_lettered"] + found["counters"]["filtered"] == EVENTS
            and found["checkpoint"] == {"generator": EVENTS - 1}  # committed past the last event
            and found
        ),
        60,
        f"every event to be filtered out or dead-lettered:\n{daemon.stderr()}",
    )
    counters = status["counters"]
    assert counters["dead_lettered"] > 0 and counters["delivered"] == 0

    log_in(page, daemon)
    page.goto(f"{daemon.url}/ui/#/pipes/reporting")
    page.wait_for_selector("section.pipe-page[data-pipe='reporting'] .stages")
    assert stat(page, "source", "received") == EVENTS
    assert stat(page, "filter", "filtered out") == counters["filtered"]
    assert stat(page, "filter", "passed") == EVENTS - counters["filtered"]
    assert stat(page, "target", "delivered") == 0
    assert stat(page, "target", "failed attempts") == counters["failed_by_stage"]["target"]
    assert stat(page, "dead_letter", "dead-lettered") == counters["dead_lettered"]

    # The checkpoint per partition, as the API has it: every event is settled, none left to read.
    row = page.locator("[data-panel='checkpoints'] tr[data-partition='generator']")
    assert row.locator("td").all_inner_texts() == ["generator", str(EVENTS - 1), "0"]

    # The dead letters, read back from the file: how many wait, and each with its error.
    panel = page.locator("[data-panel='dead-letters']")
    page.wait_for_selector(f"[data-panel='dead-letters'] p:has-text('{counters['dead_lettered']} waiting')")
    lines = panel.locator("ol.tap-lines li")
    assert lines.count() == counters["dead_lettered"]
    assert all("reporting db is down" in text for text in lines.all_inner_texts())


SLOW = """
import asyncio

async def write(batch, options):
    await asyncio.sleep(0.2)  # a target that keeps up with far less than the source offers
"""


def test_lag_shows_on_the_source_side_of_the_map_and_per_partition_on_the_pipe_page(
    tmp_path: Path, start_daemon: Callable[..., RunningDaemon], page: Any
) -> None:
    folder = tmp_path / "pipes"
    folder.mkdir()
    (folder / "slow_sink.py").write_text(SLOW)
    definition = {
        "name": "backlog",
        "source": {"type": "generator", "count": 1_000_000},
        "target": {"type": "python", "function": "slow_sink:write"},
        "batch": {"size": 10, "window": 0},
    }
    (folder / "backlog.yaml").write_text(json.dumps(definition))
    daemon = start_daemon(folder)
    wait_for(
        lambda: (daemon.api("/pipes/backlog")[1].get("source_lag") or {}).get("generator", 0) > 0,
        30,
        f"the pipe to fall behind its source:\n{daemon.stderr()}",
    )
    log_in(page, daemon)
    lag = page.wait_for_selector("svg.map g.lag[data-pipe='backlog']")
    shown = int((lag.text_content() or "").strip().removeprefix("lag ").replace(",", ""))
    assert 0 < shown <= 1_000_000
    # On the line from the source system to the pipe: nearer the source than the target.
    source = page.locator("svg.map g.system[data-kind='connector']").bounding_box()
    target = page.locator("svg.map g.system[data-kind='python_function']").bounding_box()
    box = lag.bounding_box()
    assert source is not None and target is not None and box is not None
    assert abs(box["x"] - source["x"]) < abs(box["x"] - target["x"])

    page.click("svg.map g.pipe[data-pipe='backlog']")
    cell = page.wait_for_selector("[data-panel='checkpoints'] tr[data-partition='generator'] td:nth-child(3)")
    assert int(cell.inner_text().replace(",", "")) > 0
