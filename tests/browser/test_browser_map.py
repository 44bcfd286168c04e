"""The console's map and a pipe's page, on a daemon running the shop story of configs/shop/.

Five pipes share a Redis stream (shop.cart) and a Kafka topic (shop.orders) on
the real Redis and Kafka-protocol servers of the test suite; the map must draw
each of those systems once, and each pipe between the right ones.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from console_kit import ROOT, RunningDaemon, log_in, run_async, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.integration]

#: (kind, name) of every system of the shop story, as the map labels them.
SYSTEMS = {
    "generator": ("connector", "generator"),
    "cart": ("redis_stream", "shop.cart"),
    "orders": ("kafka_topic", "shop.orders"),
    "payments": ("redis_stream", "shop.payments"),
    "reporting": ("file", "out/reporting/orders.jsonl"),
    "fulfilment": ("redis_list", "shop.fulfilment"),
    "dlq": ("file", "dlq/cart-to-orders.jsonl"),
}
#: pipe -> (sources, targets, dead letters), by the keys of SYSTEMS.
PIPES = {
    "cart-simulator": (["generator"], ["cart"], []),
    "cart-to-orders": (["cart"], ["orders"], ["dlq"]),
    "orders-to-payments": (["orders"], ["payments"], []),
    "orders-to-reporting": (["orders"], ["reporting"], []),
    "big-orders-to-fulfilment": (["orders"], ["fulfilment"], []),
}


def create_topic(kafka: Any, name: str) -> None:
    try:
        run_async(lambda: kafka.create_topic(name, partitions=2))
    except Exception as exc:  # an external broker that has it from an earlier run
        if "exist" not in str(exc).lower():
            raise


def wait_for(condition: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (found := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.1)  # polling a condition with a deadline
    return found


@pytest.fixture
def shop(
    tmp_path: Path, kafka: Any, redis_url: str, start_daemon: Callable[..., RunningDaemon]
) -> RunningDaemon:
    folder = tmp_path / "shop"
    shutil.copytree(ROOT / "configs" / "shop", folder)
    create_topic(kafka, "shop.orders")
    daemon = start_daemon(
        folder, env={"REDIS_URL": redis_url, "KAFKA_BOOTSTRAP": kafka.bootstrap, "KAFKA_IDEMPOTENT": "false"}
    )
    wait_for(lambda: daemon.api("/readyz")[0] == 200, 60, f"every shop pipe RUNNING:\n{daemon.stderr()}")
    return daemon


def test_the_map_shows_each_system_once_and_each_pipe_between_the_right_systems(
    shop: RunningDaemon, page: Any
) -> None:
    log_in(page, shop)
    page.wait_for_selector("svg.map g.pipe")
    nodes = page.eval_on_selector_all(
        "svg.map g.system",
        "els => els.map(e => ({id: e.dataset.system, kind: e.dataset.kind, name: e.querySelector('.name').textContent}))",
    )
    by_label = {(n["kind"], n["name"]): n["id"] for n in nodes}
    assert len(nodes) == len(SYSTEMS), nodes  # each system once: no duplicates, nothing extra
    assert set(by_label) == set(SYSTEMS.values())
    ids = {key: by_label[label] for key, label in SYSTEMS.items()}

    edges = page.eval_on_selector_all(
        "svg.map g.edge path",
        "els => els.map(e => [e.dataset.pipe, e.dataset.role, e.dataset.system])",
    )
    drawn = {(pipe, role, system) for pipe, role, system in edges}
    expected = {
        (pipe, role, ids[key])
        for pipe, (sources, targets, dead) in PIPES.items()
        for role, keys in (("source", sources), ("target", targets), ("dead_letter", dead))
        for key in keys
    }
    assert drawn == expected
    pills = page.eval_on_selector_all("svg.map g.pipe", "els => els.map(e => e.dataset.pipe)")
    assert sorted(pills) == sorted(PIPES)

    # Counters move while events flow, without reloading the page.
    cell = "tr[data-pipe='orders-to-payments'] td.delivered"

    def delivered() -> int:
        text = page.inner_text(cell)
        return int(text.replace(",", "")) if re.fullmatch(r"[\d,]+", text) else 0

    first = wait_for(delivered, 60, f"orders-to-payments to deliver:\n{shop.stderr()}")
    wait_for(lambda: delivered() > first, 30, "the delivered counter to move")
    page.wait_for_selector("svg.map g.pipe[data-pipe='orders-to-payments'] .rate >> text=/\\d.*→.*\\d/")
    screenshot(page, "console-map")

    # A pipe's page, and stopping the pipe from it.
    page.click("svg.map g.pipe[data-pipe='cart-to-orders']")
    page.wait_for_selector("section.pipe-page[data-pipe='cart-to-orders'] .stages")
    page.wait_for_selector("[data-panel='checkpoints'] tr[data-partition='shop.cart']")
    page.wait_for_selector(".stage[data-stage='source'] pre.written")  # the file as written, read once
    assert "stream: shop.cart" in page.inner_text(".stage[data-stage='source']")
    assert "OrderPlaced" in page.inner_text(".stage[data-stage='filter']")
    # Its dead letters, read back from the file dead letter (none waiting in a healthy run).
    page.wait_for_selector("[data-panel='dead-letters'] p:has-text('waiting')")
    # A live tap of a stage: lines come as events pass it.
    page.click("[data-panel='tap'] button:has-text('Start tap')")
    page.wait_for_selector("[data-panel='tap'] ol.tap-lines li", timeout=30_000)
    assert "shop.cart@" in page.inner_text("[data-panel='tap'] ol.tap-lines li")
    page.click("[data-panel='tap'] button:has-text('Stop tap')")
    screenshot(page, "console-pipe")
    page.click("button:has-text('Stop')")
    status = wait_for(
        lambda: (found := shop.api("/pipes/cart-to-orders")[1])["state"] == "STOPPED" and found,
        40,
        "the pipe to stop",
    )
    assert status["desired_state"] == "STOPPED"
    page.wait_for_selector(".chip[data-state='STOPPED']")
    page.wait_for_selector("button:has-text('Start')")
    others = {p["name"]: p["state"] for p in shop.api("/pipes")[1]["pipes"]}
    assert others.pop("cart-to-orders") == "STOPPED"
    assert set(others.values()) == {"RUNNING"}
    page.click("button:has-text('Start')")
    wait_for(
        lambda: shop.api("/pipes/cart-to-orders")[1]["state"] == "RUNNING", 40, "the pipe to start again"
    )
    page.wait_for_selector(".chip[data-state='RUNNING']")


def test_a_failing_pipe_stands_out_on_the_map_and_its_page_says_why(
    tmp_path: Path, start_daemon: Callable[..., RunningDaemon], page: Any
) -> None:
    from console_kit import free_port

    folder = tmp_path / "pipes"
    folder.mkdir()
    (folder / "fine.yaml").write_text(
        "name: fine\nsource: {type: generator, count: null, rate: 20}\ntarget: {type: file, path: out/fine.jsonl}\n"
    )
    nowhere = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    (folder / "broken.yaml").write_text(
        f"name: broken\nsource: {{type: generator, count: null, rate: 20}}\n"
        f"target: {{type: redis_list, url: '{nowhere}', list: jobs, connect_timeout: 1s}}\n"
    )
    daemon = start_daemon(folder)
    wait_for(lambda: daemon.api("/pipes/broken")[1]["state"] == "FAILED", 30, "broken to fail")
    log_in(page, daemon)
    page.wait_for_selector("svg.map g.pipe.state-bad[data-pipe='broken']")
    assert page.get_attribute("svg.map g.pipe[data-pipe='fine']", "class") == "pipe state-ok"
    banner = page.inner_text("p.alert")
    assert "broken" in banner and "fine" not in banner
    assert "connect" in page.inner_text("tr[data-pipe='broken'] td.error-cell").lower()
    page.click("p.alert a:has-text('broken')")
    error = page.inner_text(".last-error")
    assert "connect" in error.lower() and "127.0.0.1" in error
