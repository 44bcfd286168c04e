"""Scenarios H and W: HTTP out and HTTP in, pipes vs what a user writes instead.

    .venv/bin/python bench/bench_http.py [--events 20000] [--requests 10000] [--concurrency 32]
        [--rounds 1] [--scenarios target,webhook] [--keep]

- **H (http target)**: the standard workload made by the generator, filtered
  and transformed, each passing event POSTed to a local aiohttp server that
  this script runs. Contenders: ``loop`` (bench/http_loop.py: the same events,
  ``if``, dict, aiohttp with C requests in flight) and ``pipes`` (``pipes run``
  on generator -> http with ``max_connections: C``). Settled when the server
  has every expected payload; checked: exactly the expected bytes.
- **W (webhook source)**: this script posts the standard workload's events,
  C requests in flight, each waiting for its answer. Contenders: ``bare``
  (bench/webhook_bare.py: one aiohttp route, ``if``, dict, a line written to
  stdout or appended to a file, 200) and ``pipes`` (``pipes run`` on webhook ->
  filter -> transform -> stdout, or file with ``fsync: false``, and
  ``batch.window: 0ms``; each request answered once its event is written).
  ``--webhook-target`` chooses (default stdout: the cheapest target, so that
  the figures are the webhook's and the runner's own). Settled when every
  request got its 200; checked: the output holds exactly the expected
  payloads.

Each contender is a command line measured by harness.py (CPU of its process
tree, steady rate from the first to the last request or answer, peak RSS).
The server (H) and the sender (W) run in this process, so their CPU is not
counted; on a machine with two cores they still compete with the contender,
equally for both contenders. CPU per event is the steadier figure.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import yaml
from aiohttp import web
from harness import Contender, ContenderFailed, Run, free_port, print_table, rounds_order, run_contender
from workload import BATCH, cart_event, expected_payload, pipe_filter, pipe_transform

HERE = Path(__file__).resolve().parent
PIPES = str(Path(sys.executable).parent / "pipes")
SCENARIOS = ["target", "webhook"]


# --------------------------------------------------------------------------- H: http target


class Sink:
    """The API the target scenario posts to: records each body and when the first and last came."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.first = 0.0
        self.last = 0.0
        self._runner: web.ServerRunner | None = None
        self.port = 0

    async def _handle(self, request: web.BaseRequest) -> web.Response:
        body = await request.read()
        now = time.time()
        if not self.bodies:
            self.first = now
        self.last = now
        self.bodies.append(body)
        return web.Response(body=b"{}", content_type="application/json")

    async def start(self) -> str:
        self._runner = web.ServerRunner(web.Server(self._handle, access_log=None), handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return f"http://127.0.0.1:{self.port}/orders"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def target_contender(name: str, url: str, events: int, concurrency: int, workdir: Path) -> Contender:
    if name == "loop":
        argv = [sys.executable, str(HERE / "http_loop.py"), "--url", url, "--events", str(events)]
        return Contender("loop", [*argv, "--concurrency", str(concurrency)])
    pipe = {
        "name": "bench-http",
        "source": {"type": "generator", "count": events},
        "filter": [pipe_filter("body")],
        "transform": {"jmespath": pipe_transform("body")},
        "target": {"type": "http", "url": url, "max_connections": concurrency},
        "batch": {"size": BATCH, "window": "100ms"},
    }
    path = workdir / "bench-http.yaml"
    path.write_text(yaml.safe_dump(pipe, sort_keys=False))
    argv = [PIPES, "run", str(path), "--state-dir", str(workdir / "state"), "--no-progress"]
    return Contender("pipes", [*argv, "--admin", f"127.0.0.1:{free_port()}"])


async def measure_target(name: str, events: int, concurrency: int, expected: list[bytes], keep: bool) -> Run:
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-http-{name}-"))
    sink = Sink()
    try:
        url = await sink.start()
        spec = target_contender(name, url, events, concurrency, workdir)

        async def settled() -> bool:
            return len(sink.bodies) >= len(expected)

        tree = await run_contender(spec, workdir, settled, timeout_s=max(120.0, events / 200))
        if sorted(sink.bodies) != expected:
            raise ContenderFailed(
                f"{spec.name}: the server got {len(sink.bodies)} bodies, not exactly the "
                f"{len(expected)} expected payloads"
            )
        _tidy(workdir, keep, spec.name)
        return Run.of(spec, events, tree, sink.first, sink.last)
    except ContenderFailed as failed:
        raise ContenderFailed(f"{failed}\n    (its files are in {workdir})") from None
    finally:
        await sink.stop()


# --------------------------------------------------------------------------- W: webhook source


def webhook_contender(name: str, port: int, workdir: Path, sink: str) -> Contender:
    output = str(workdir / "out.jsonl") if sink == "file" else "-"
    if name == "bare":
        argv = [sys.executable, str(HERE / "webhook_bare.py"), "--listen", f"127.0.0.1:{port}"]
        return Contender("bare", [*argv, "--path", "/in", "--output", output])
    target: dict[str, Any] = (
        {"type": "file", "path": output, "fsync": False} if sink == "file" else {"type": "stdout"}
    )
    pipe = {
        "name": "bench-webhook",
        "source": {"type": "webhook", "listen": f"127.0.0.1:{port}", "paths": ["/in"], "ack_timeout": "60s"},
        "filter": [pipe_filter("body")],
        "transform": {"jmespath": pipe_transform("body")},
        "target": target,
        "batch": {"size": BATCH, "window": "0ms"},
    }
    path = workdir / "bench-webhook.yaml"
    path.write_text(yaml.safe_dump(pipe, sort_keys=False))
    argv = [PIPES, "run", str(path), "--state-dir", str(workdir / "state"), "--no-progress"]
    return Contender("pipes", [*argv, "--admin", f"127.0.0.1:{free_port()}"])


class Sender:
    """Posts every body once the contender listens, C at a time; each must be answered 200."""

    def __init__(self, url: str, port: int, bodies: list[bytes], concurrency: int) -> None:
        self.url = url
        self.port = port
        self.bodies = bodies
        self.concurrency = concurrency
        self.answered = 0
        self.first = 0.0
        self.last = 0.0
        self.failure: str | None = None

    async def _listening(self) -> None:
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.close()
                await writer.wait_closed()
                return
            except OSError:
                await asyncio.sleep(0.02)

    async def run(self) -> None:
        await self._listening()
        connector = aiohttp.TCPConnector(limit=self.concurrency)
        pending = iter(self.bodies)
        headers = {"Content-Type": "application/json"}
        async with aiohttp.ClientSession(connector=connector) as session:

            async def worker() -> None:
                for body in pending:
                    async with session.post(self.url, data=body, headers=headers) as resp:
                        await resp.read()
                        if resp.status != 200:
                            self.failure = f"answered {resp.status}"
                            return
                    now = time.time()
                    if not self.answered:
                        self.first = now
                    self.last = now
                    self.answered += 1

            await asyncio.gather(*(worker() for _ in range(self.concurrency)))


async def measure_webhook(
    name: str, bodies: list[bytes], concurrency: int, expected: list[bytes], sink: str, keep: bool
) -> Run:
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-webhook-{name}-"))
    port = free_port()
    spec = webhook_contender(name, port, workdir, sink)
    sender = Sender(f"http://127.0.0.1:{port}/in", port, bodies, concurrency)
    task = asyncio.create_task(sender.run())
    try:

        async def settled() -> bool:
            if sender.failure is not None:
                raise ContenderFailed(f"{spec.name}: a request was {sender.failure}")
            if task.done() and task.exception() is not None:
                raise ContenderFailed(f"{spec.name}: the sender failed: {task.exception()!r}")
            return sender.answered >= len(bodies)

        tree = await run_contender(spec, workdir, settled, timeout_s=max(120.0, len(bodies) / 100))
        if sink == "file":
            written = sorted((workdir / "out.jsonl").read_bytes().splitlines())
        else:  # stdout went to the contender's log, beside its log lines
            log = (workdir / f"{spec.name}.stderr").read_bytes().splitlines()
            written = sorted(line for line in log if line.startswith(b'{"order":'))
        if written != expected:
            raise ContenderFailed(
                f"{spec.name}: the file holds {len(written)} lines, not exactly the {len(expected)} expected payloads"
            )
        _tidy(workdir, keep, spec.name)
        return Run.of(spec, len(bodies), tree, sender.first, sender.last)
    except ContenderFailed as failed:
        raise ContenderFailed(f"{failed}\n    (its files are in {workdir})") from None
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


# --------------------------------------------------------------------------- the run


def _tidy(workdir: Path, keep: bool, name: str) -> None:
    if keep:
        print(f"  (files of {name}: {workdir})")
    else:
        shutil.rmtree(workdir, ignore_errors=True)


def _expected(count: int) -> tuple[list[bytes], list[bytes]]:
    """The events as posted bodies, and the sorted expected payloads."""
    bodies: list[bytes] = []
    expected: list[bytes] = []
    for index in range(count):
        event = cart_event(index)
        bodies.append(orjson.dumps(event))
        if (payload := expected_payload(event)) is not None:
            expected.append(payload)
    return bodies, sorted(expected)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=20_000, help="generated events of scenario H")
    parser.add_argument("--requests", type=int, default=10_000, help="requests of scenario W")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight at once")
    parser.add_argument("--rounds", type=int, default=1, help="runs of each contender, in alternating order")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="target, webhook or both")
    parser.add_argument(
        "--webhook-target", choices=["stdout", "file"], default="stdout", help="where scenario W writes"
    )
    parser.add_argument("--keep", action="store_true", help="keep each contender's folder")
    args = parser.parse_args()
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    if set(scenarios) - set(SCENARIOS):
        parser.error(f"unknown scenarios (choose from {', '.join(SCENARIOS)})")
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores", flush=True)
    try:
        if "target" in scenarios:
            _, expected = _expected(args.events)
            print(f"scenario H: {args.events:,} events, {len(expected):,} pass the filter and are posted")
            runs: dict[str, list[Run]] = {}
            for round_no in range(args.rounds):
                for name in rounds_order(["loop", "pipes"], round_no):
                    run = asyncio.run(
                        measure_target(name, args.events, args.concurrency, expected, args.keep)
                    )
                    runs.setdefault(run.name, []).append(run)
                    print(f"  round {round_no + 1}: {run.line()}", flush=True)
            print_table(
                f"scenario H: generator -> http, {args.events:,} events, {args.concurrency} requests in flight",
                runs,
            )
        if "webhook" in scenarios:
            bodies, expected = _expected(args.requests)
            print(f"\nscenario W: {args.requests:,} requests, {len(expected):,} pass the filter")
            runs = {}
            for round_no in range(args.rounds):
                for name in rounds_order(["bare", "pipes"], round_no):
                    run = asyncio.run(
                        measure_webhook(
                            name, bodies, args.concurrency, expected, args.webhook_target, args.keep
                        )
                    )
                    runs.setdefault(run.name, []).append(run)
                    print(f"  round {round_no + 1}: {run.line()}", flush=True)
            print_table(
                f"scenario W: webhook -> {args.webhook_target}, {args.requests:,} requests, "
                f"{args.concurrency} senders",
                runs,
                baseline="bare",
            )
        print("\nchecked: every contender delivered exactly the expected payload bytes")
        print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    except ContenderFailed as failed:
        print(f"FAILED: {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
