"""What the browser tests share: daemons under test, logging in, screenshots for the docs."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PIPES = str(ROOT / ".venv" / "bin" / "pipes")
DOCS_IMG = ROOT / "docs" / "img"
TOKEN = "console-test-token"


def run_async[T](make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to its end from a test that drives the browser.

    Playwright's synchronous API keeps an event loop running in this thread while
    the browser is open, so ``asyncio.run`` goes to a thread of its own.
    """
    import asyncio

    async def main() -> T:
        return await make()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, main()).result()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningDaemon:
    """A ``pipes run`` process serving the admin API and the console on a free loopback port."""

    folder: Path
    cwd: Path
    port: int
    process: subprocess.Popen[bytes]
    token: str | None = TOKEN
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def api(
        self,
        path: str,
        *,
        method: str = "GET",
        body: bytes | None = None,
        token: bool = True,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        """Call the admin API as a script would; (status, JSON body or text)."""
        request = urllib.request.Request(f"{self.url}{path}", data=body, method=method)
        if token and self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                status, raw = answer.status, answer.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        except (urllib.error.URLError, ConnectionError):
            return 0, None  # not listening (yet, or any more)
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode(errors="replace")

    def stderr(self) -> str:
        return (self.cwd / "daemon.err").read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def log_in(page: Any, daemon: RunningDaemon) -> None:
    """Open the console and log in with the daemon's token, as a person would."""
    page.goto(f"{daemon.url}/ui")
    page.fill("#token", daemon.token or "")
    page.click("button[type=submit]")
    page.wait_for_selector("header.top")


def screenshot(page: Any, name: str, *, full_page: bool = True) -> Path:
    """A screenshot for the docs (docs/img/NAME.png), taken by the test run."""
    DOCS_IMG.mkdir(parents=True, exist_ok=True)
    path = DOCS_IMG / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path
