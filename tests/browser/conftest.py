"""Fixtures of the browser tests: headless Chromium driven by Playwright, and daemons to point it at.

The browser is the system's own Chromium (Debian's ``chromium`` package), never
one Playwright downloads. Where none is installed the tests skip with one
line; with ``PIPES_REQUIRE_BROWSER=1`` (CI sets it) a missing browser fails
them instead, so CI never passes by skipping. Redis and Kafka come from the
integration suite's fixtures (the same real servers, started here if needed).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

from console_kit import PIPES, TOKEN, RunningDaemon, free_port
from kafka_broker import kafka, kafka_broker  # noqa: F401
from redis_server import redis_url  # noqa: F401

REQUIRE_ENV = "PIPES_REQUIRE_BROWSER"
#: Flags that work in containers and CI (no sandbox as root, no GPU, nothing fetched in the background).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    """The system Chromium: $PIPES_CHROMIUM, /usr/bin/chromium, or chromium on the PATH."""
    for candidate in (os.environ.get("PIPES_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def _unavailable(reason: str) -> None:
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason}, and {REQUIRE_ENV}=1 forbids skipping the browser tests", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    path = chromium_path()
    if path is None:
        _unavailable("no Chromium found (apt-get install chromium, or set PIPES_CHROMIUM)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("Playwright is not installed (pip install -e '.[dev]')")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser context (no cookies) and a page in it; page errors fail the test."""
    context = browser.new_context(viewport={"width": 1440, "height": 900}, accept_downloads=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.set_default_timeout(15_000)
    try:
        yield page
    finally:
        context.close()
    assert not errors, f"errors in the page: {errors}"


@pytest.fixture
def start_daemon(tmp_path: Path) -> Iterator[Callable[..., RunningDaemon]]:
    """Starts ``pipes run FOLDER`` in FOLDER's parent (so paths read as the user wrote them), and stops it after."""
    started: list[RunningDaemon] = []

    def start(
        folder: Path, *args: str, token: str | None = TOKEN, env: dict[str, str] | None = None
    ) -> RunningDaemon:
        port = free_port()
        cwd = folder.parent
        full_env = {**os.environ, **(env or {})}
        full_env.pop("PIPES_ADMIN_TOKEN", None)
        if token:
            full_env["PIPES_ADMIN_TOKEN"] = token
        with (cwd / "daemon.out").open("wb") as out, (cwd / "daemon.err").open("wb") as err:
            process = subprocess.Popen(
                [PIPES, "run", "--no-progress", "--admin", f"127.0.0.1:{port}", "--state-dir", "state",
                 *args, folder.name],
                cwd=cwd, stdout=out, stderr=err, env=full_env,
            )  # fmt: skip
        daemon = RunningDaemon(folder, cwd, port, process, token, env or {})
        started.append(daemon)
        deadline = time.monotonic() + 30
        while daemon.api("/healthz", token=False)[0] != 200:
            if process.poll() is not None:
                raise AssertionError(f"pipes run exited with {process.returncode}:\n{daemon.stderr()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"the admin API did not answer within 30 s:\n{daemon.stderr()}")
            time.sleep(0.05)  # polling a condition with a deadline
        return daemon

    yield start
    for daemon in started:
        daemon.stop()
