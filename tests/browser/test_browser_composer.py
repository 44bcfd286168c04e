"""The composer: a redis_stream -> kafka pipe written in the browser, saved with --ui-write, run by the daemon."""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from console_kit import ROOT, RunningDaemon, log_in, run_async, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.integration]

FILTER = '{"body": {"detail-type": ["OrderPlaced"], "detail": {"total": [{"numeric": [">", 100]}]}}}'
TEMPLATE = '{"order": <$.body.detail.order_id>, "total": <$.body.detail.total>}'


def wait_for(condition: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (found := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.1)  # polling a condition with a deadline
    return found


async def read_topic(bootstrap: str, topic: str, at_least: int, timeout_s: float = 30.0) -> list[Any]:
    """Records of ``topic`` from its start, once there are ``at_least`` (the pipe keeps adding more)."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    try:
        records: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while len(records) < at_least:
            if time.monotonic() > deadline:
                raise AssertionError(f"{topic}: {len(records)} records after {timeout_s}s")
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                records.extend(batch)
        return records
    finally:
        await consumer.stop()


def field(page: Any, path: str) -> Any:
    return page.locator(f"[data-field='{path}']")


def open_more(page: Any, group: str) -> None:
    details = page.locator(f"details[data-more='{group}']")
    if details.count() and not details.evaluate("d => d.open"):
        details.locator("summary").click()


def test_the_composer_writes_a_redis_stream_to_kafka_pipe_that_the_daemon_runs(
    tmp_path: Path,
    kafka: Any,
    redis_url: str,
    start_daemon: Callable[..., RunningDaemon],
    page: Any,
) -> None:
    folder = tmp_path / "shop"
    shutil.copytree(ROOT / "configs" / "shop", folder)
    daemon = start_daemon(
        folder,
        "--ui-write",
        env={"REDIS_URL": redis_url, "KAFKA_BOOTSTRAP": kafka.bootstrap, "KAFKA_IDEMPOTENT": "false"},
    )
    tag = uuid.uuid4().hex[:8]
    topic = f"shop.big-carts-{tag}"
    log_in(page, daemon)
    page.click("header nav a:has-text('New pipe')")
    page.wait_for_selector("section.composer")

    field(page, "name").fill("big-carts")
    field(page, "description").fill("carts over 100 to their own topic")
    field(page, "source.type").select_option("redis_stream")
    field(page, "source.stream").fill("shop.cart")
    field(page, "source.group").fill(f"big-carts-{tag}")
    open_more(page, "source")
    field(page, "source.url").fill(redis_url)
    field(page, "source.starting_position").select_option("earliest")

    # A secret typed into the form is written as a ${VAR} reference, and the page names the variable.
    field(page, "source.password").fill("hunter2")
    page.wait_for_selector("[data-variables] li[data-variable='BIG_CARTS_SOURCE_PASSWORD']")
    yaml_text = field(page, "yaml").input_value()
    assert "password: ${BIG_CARTS_SOURCE_PASSWORD}" in yaml_text
    assert "hunter2" not in yaml_text
    assert "secret" in page.inner_text("li[data-variable='BIG_CARTS_SOURCE_PASSWORD']")
    page.click("[data-clear='source.password']")
    page.wait_for_selector("[data-variables] li[data-variable='BIG_CARTS_SOURCE_PASSWORD']", state="detached")

    field(page, "target.type").select_option("kafka")
    field(page, "target.bootstrap_servers").fill(kafka.bootstrap)
    field(page, "target.topic").fill(topic)
    open_more(page, "target")
    field(page, "target.idempotent").select_option("false")

    # The filter, tried on the sample event as it is typed: the sample is an order of 142.5.
    field(page, "filter").fill(FILTER)
    page.wait_for_selector("[data-editor='filter'] [data-verdict='match']")
    sample = json.loads(field(page, "sample").input_value())
    assert sample["body"]["detail"]["total"] == 142.5
    small = json.loads(json.dumps(sample))
    small["body"]["detail"]["total"] = 42.5
    field(page, "sample").fill(json.dumps(small, indent=2))
    page.wait_for_selector("[data-editor='filter'] [data-verdict='no-match']")
    field(page, "sample").fill(json.dumps(sample, indent=2))
    page.wait_for_selector("[data-editor='filter'] [data-verdict='match']")

    # The transform, rendered from the sample event.
    field(page, "transform").fill(TEMPLATE)
    output = page.wait_for_selector("[data-output='transform']")
    page.wait_for_function(
        "() => document.querySelector(\"[data-output='transform']\").textContent.includes('142.5')"
    )
    assert json.loads(output.inner_text()) == {"order": "ord-000000042", "total": 142.5}

    # An invalid value gets its error beside its field, from the server's check.
    field(page, "source.count").fill("lots")
    error = page.wait_for_selector("p.field-error[data-error-for='source.count']")
    assert "integer" in error.inner_text()
    field(page, "source.count").fill("")
    page.wait_for_selector("p.field-error[data-error-for='source.count']", state="detached")
    page.wait_for_selector("[data-check='ok']")
    for group in ("source", "target"):
        page.locator(f"details[data-more='{group}']").evaluate("d => { d.open = false; }")
    page.set_viewport_size({"width": 1440, "height": 1250})
    page.evaluate("() => { document.querySelector(\"[data-field='sample']\").scrollTop = 0; }")
    page.evaluate(
        "() => window.scrollTo(0, document.querySelector(\"[data-connector='source']\").getBoundingClientRect().top + window.scrollY - 60)"
    )
    screenshot(page, "console-composer", full_page=False)

    # Save: the file lands in the daemon's folder, the daemon reloads and runs the pipe.
    written = field(page, "yaml").input_value()
    page.click("[data-action='save']")
    page.wait_for_selector("[data-outcome='saved']")
    saved = folder / "big-carts.yaml"
    assert saved.read_text() == written
    assert page.inner_text("[data-outcome='saved'] code") == "shop/big-carts.yaml"
    assert "# A pipe: source -> filter -> transform -> target" in written  # the YAML's comment was kept
    status = wait_for(
        lambda: (
            (found := daemon.api("/pipes/big-carts")[1])
            and found.get("counters", {}).get("delivered", 0) >= 2
            and found
        ),
        60,
        f"big-carts to deliver:\n{daemon.stderr()}",
    )
    assert status["state"] == "RUNNING"
    records = run_async(lambda: read_topic(kafka.bootstrap, topic, at_least=2))
    for record in records:
        value = json.loads(record.value)
        assert set(value) == {"order", "total"} and value["total"] > 100, value

    # The new pipe is on the map, between the cart stream and its new topic.
    page.click("header nav a:has-text('Map')")
    page.wait_for_selector("svg.map g.pipe[data-pipe='big-carts']")
    source = page.get_attribute(
        "svg.map g.edge path[data-pipe='big-carts'][data-role='source']", "data-system"
    )
    assert source == page.get_attribute(
        "svg.map g.edge path[data-pipe='cart-to-orders'][data-role='source']", "data-system"
    )


HAND_WRITTEN = """\
# Orders for the reporting team: written by hand, laid out as its author likes.
name: reporting
description: orders for reporting
source: {type: generator, count: null, rate: 50}   # stands in for the cart service
filter:
  - body: {detail-type: [OrderPlaced], detail: {total: [{numeric: [">", 100]}], customer: {tier: [gold, silver]}}}
target:
  type: file
  path: out/reporting.jsonl
tests:                         # `pipes test` runs these
  - name: a big order goes on
    event: {body: {detail-type: OrderPlaced, detail: {order_id: ord-1, total: 120.5, customer: {tier: gold}}}}
    expect: {payload: {detail-type: OrderPlaced, detail: {order_id: ord-1, total: 120.5, customer: {tier: gold}}}}
"""


def test_editing_a_pipe_changes_only_what_was_edited_and_the_daemon_runs_the_edit(
    tmp_path: Path, start_daemon: Callable[..., RunningDaemon], page: Any
) -> None:
    folder = tmp_path / "pipes"
    folder.mkdir()
    file = folder / "reporting.yaml"
    file.write_text(HAND_WRITTEN)
    daemon = start_daemon(folder, "--ui-write")
    log_in(page, daemon)
    page.click("svg.map g.pipe[data-pipe='reporting']")
    page.click("section.pipe-page a:has-text('Edit')")
    page.wait_for_selector("section.composer[data-composer='reporting'] [data-check='ok']")
    field(page, "description").fill("orders for the reporting team")
    field(page, "target.path").fill("out/team.jsonl")
    page.wait_for_function(
        "() => document.querySelector(\"[data-field='yaml']\").value.includes('out/team.jsonl')"
    )
    page.wait_for_selector("[data-check='ok']")
    page.click("[data-action='save']")
    page.wait_for_selector("[data-outcome='saved']")
    # The file is the author's, but for the two values edited: comments and layout as they were.
    assert file.read_text() == HAND_WRITTEN.replace(
        "description: orders for reporting", "description: orders for the reporting team"
    ).replace("path: out/reporting.jsonl", "path: out/team.jsonl")
    out = folder.parent / "out" / "team.jsonl"
    wait_for(
        lambda: out.exists() and out.stat().st_size > 0, 30, f"the edited pipe to write:\n{daemon.stderr()}"
    )
    assert daemon.api("/pipes/reporting")[1]["state"] == "RUNNING"
