"""kill -9 of ``pipes run`` with a webhook source while a sender keeps retrying: nothing it was told 200 for is lost.

The webhook answers a request only once its event is written (the file
target fsyncs before it reports delivered), so a crash can only cost requests
that were never answered 200, and the sender retries those; the restarted
process delivers them.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from pathlib import Path

import aiohttp
import pytest

pytestmark = pytest.mark.e2e

PIPES = str(Path(sys.executable).parent / "pipes")
EVENTS = 600
SENDERS = 8


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def spawn(tmp_path: Path) -> asyncio.subprocess.Process:
    with (tmp_path / "pipes.log").open("ab") as log:
        return await asyncio.create_subprocess_exec(
            PIPES,
            "run",
            "--no-progress",
            "--admin",
            "off",
            "--state-dir",
            "state",
            "pipe.yaml",
            cwd=tmp_path,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdout=log,
            stderr=log,
        )


async def test_every_acknowledged_request_survives_a_kill_9(tmp_path: Path) -> None:
    port = free_port()
    pipe = {
        "name": "hook",
        "source": {"type": "webhook", "listen": f"127.0.0.1:{port}", "paths": ["/in"], "ack_timeout": "5s"},
        "target": {"type": "file", "path": "out.jsonl"},
        "batch": {"size": 20, "window": "5ms"},
    }
    (tmp_path / "pipe.yaml").write_text(json.dumps(pipe))
    acknowledged: set[int] = set()
    failures = 0
    todo = list(range(EVENTS))

    async def sender(session: aiohttp.ClientSession) -> None:
        nonlocal failures
        while todo:
            n = todo.pop(0)
            while True:  # a webhook sender retries until it gets a 2xx
                try:
                    async with session.post(f"http://127.0.0.1:{port}/in", json={"id": n}) as resp:
                        if resp.status == 200:
                            acknowledged.add(n)
                            break
                except (aiohttp.ClientError, ConnectionError):
                    pass
                failures += 1
                await asyncio.sleep(0.02)  # the sender's retry backoff

    process = await spawn(tmp_path)
    try:
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            senders = asyncio.gather(*(sender(session) for _ in range(SENDERS)))
            deadline = asyncio.get_running_loop().time() + 60
            while len(acknowledged) < EVENTS // 4:
                assert asyncio.get_running_loop().time() < deadline, (tmp_path / "pipes.log").read_text()[
                    -3000:
                ]
                await asyncio.sleep(0.005)
            process.send_signal(signal.SIGKILL)
            await process.wait()
            at_kill = len(acknowledged)
            failures_before = failures
            process = await spawn(tmp_path)
            await asyncio.wait_for(senders, 90)
        assert failures > failures_before, "the sender had to retry through the outage"
        assert at_kill < EVENTS
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.wait(), 60)
    assert process.returncode == 0, (tmp_path / "pipes.log").read_text()[-3000:]
    delivered = [json.loads(line)["id"] for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert acknowledged == set(range(EVENTS))
    assert acknowledged <= set(delivered), f"lost: {sorted(acknowledged - set(delivered))[:20]}"
