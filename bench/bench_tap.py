"""What a live tap costs a pipe at full speed: throughput and CPU per event with and without `pipes tap`.

The pipe is the standard workload on the generator (filter "OrderPlaced and
total > 100", the five-field JMESPath transform) writing a file, run by a
daemon in this process with its admin API, exactly as `pipes run` runs it.
The viewer is the real `pipes tap` command in its own process, as an
operator runs it; it is attached before the pipe starts, and the pipe is
measured from its start until every event is settled:

| contender | the viewer |
|---|---|
| `no tap` | none |
| `tap (defaults)` | `pipes tap PIPE`: every stage, at most 200 lines/s (the default rate) |
| `tap target, every line` | `pipes tap PIPE --stage target --rate 0`, read as fast as it comes |
| `tap, nothing matches` | `pipes tap PIPE --rate 0 --where '{"outcome": ["none"]}'`: each event traced and matched, none copied |
| `tap, every line, stalled viewer` | `pipes tap PIPE --rate 0` whose output nobody reads: its socket fills, the tap drops |

Figures: events/s (wall, start to settled), CPU microseconds per event of
this process (the pipe, the admin API and the tap; not the viewer's process),
both as the median of the rounds, and the ratio to `no tap`; plus what the
tap did (lines sent, dropped because the viewer was slow, skipped over rate).
It exits 1 when a tap costs more than ``--max-cpu-ratio`` (1.5) times the CPU
per event of no tap: CPU per event is the steadier figure on a busy machine.

    .venv/bin/python bench/bench_tap.py [--events N] [--rounds N] [--max-cpu-ratio R]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from workload import BATCH, pipe_filter, pipe_transform

from pipes.admin import AdminServer
from pipes.checkpoints import MemoryCheckpointStore
from pipes.cli import tune_gc
from pipes.config import load_definition
from pipes.daemon import Daemon
from pipes.observe import configure_logging

PIPES = str(Path(sys.executable).parent / "pipes")
NAME = "bench-tap"


@dataclass(frozen=True)
class Contender:
    name: str
    #: Arguments of `pipes tap` after the pipe's name; None: no viewer.
    tap: list[str] | None
    #: Whether the viewer's output is read (False: a stalled viewer).
    read: bool = True


CONTENDERS = [
    Contender("no tap", None),
    Contender("tap (defaults)", []),
    Contender("tap target, every line", ["--stage", "target", "--rate", "0"]),
    Contender("tap, nothing matches", ["--rate", "0", "--where", '{"outcome": ["none"]}']),
    Contender("tap, every line, stalled viewer", ["--rate", "0"], read=False),
]


@dataclass(frozen=True)
class Result:
    events_per_s: float
    cpu_us_per_event: float
    sent: int
    dropped: int
    over_rate: int


def definition(events: int, out: Path) -> dict[str, object]:
    return {
        "name": NAME,
        "state": "STOPPED",
        "source": {"type": "generator", "count": events, "seed": 42},
        "filter": [pipe_filter("body")],
        "transform": {"jmespath": pipe_transform("body")},
        "target": {"type": "file", "path": str(out)},
        "batch": {"size": BATCH, "window": "100ms"},
        "concurrency": 1,
        "log": {"level": "ERROR"},
    }


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def run_one(contender: Contender, events: int) -> Result:
    with tempfile.TemporaryDirectory() as folder:
        loaded = load_definition(definition(events, Path(folder) / "out.jsonl"))
        daemon = Daemon([loaded], store=MemoryCheckpointStore(), state_dir=folder)
        daemon_task = asyncio.create_task(daemon.run())
        server = AdminServer(daemon, "127.0.0.1", 0)
        await server.start()
        handle = daemon.pipes[NAME]
        viewer: subprocess.Popen[bytes] | None = None
        sink = None
        try:
            if contender.tap is not None:
                sink = subprocess.PIPE if not contender.read else subprocess.DEVNULL
                viewer = subprocess.Popen(  # noqa: ASYNC220 - returns at once; the bench waits below
                    [PIPES, "tap", NAME, "--admin", f"127.0.0.1:{server.port}", *contender.tap],
                    stdout=sink,
                    stderr=subprocess.DEVNULL,
                )
                while not handle.taps.active:
                    if viewer.poll() is not None:
                        raise SystemExit(f"{contender.name}: pipes tap exited with {viewer.returncode}")
                    await asyncio.sleep(0.01)
            tap = handle.taps.taps[0] if handle.taps.taps else None
            began_cpu, began = cpu_s(), time.perf_counter()
            await daemon.start_pipe(NAME)
            runner = handle.runner
            assert runner is not None
            while runner.stats.received < events or runner.gate.in_flight:
                if handle.task is not None and handle.task.done():
                    raise SystemExit(f"{contender.name}: the pipe ended: {handle.last_error}")
                await asyncio.sleep(0.005)
            elapsed, used = time.perf_counter() - began, cpu_s() - began_cpu
            settled = runner.stats.delivered + runner.stats.filtered
            if settled != events:
                raise SystemExit(f"{contender.name}: {settled} of {events} events settled")
            counts = tap.counts() if tap is not None else {"sent": 0, "dropped": 0, "over_rate": 0}
            return Result(events / elapsed, used / events * 1e6, **counts)
        finally:
            daemon.request_stop()
            await daemon_task
            await server.stop()
            if viewer is not None:
                if viewer.poll() is None:
                    viewer.send_signal(signal.SIGTERM)
                if viewer.stdout is not None:
                    viewer.stdout.close()
                viewer.wait(timeout=10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--max-cpu-ratio",
        type=float,
        default=1.5,
        help="fail (exit 1) when a tap costs more CPU per event than this times no tap (default 1.5)",
    )
    args = parser.parse_args()
    configure_logging("console", sys.stderr)
    tune_gc()  # as `pipes run` does
    asyncio.run(run_one(CONTENDERS[0], min(args.events, 20_000)))  # warm-up, not counted
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    results: dict[str, list[Result]] = {c.name: [] for c in CONTENDERS}
    for round_ in range(args.rounds):
        order = CONTENDERS if round_ % 2 == 0 else list(reversed(CONTENDERS))
        for contender in order:
            result = asyncio.run(run_one(contender, args.events))
            results[contender.name].append(result)
            print(
                f"round {round_ + 1} {contender.name}: {result.events_per_s:,.0f} events/s, "
                f"{result.cpu_us_per_event:.2f} us/event, tap sent {result.sent:,} dropped {result.dropped:,} "
                f"over rate {result.over_rate:,}",
                flush=True,
            )
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    base = results["no tap"]
    base_rate = statistics.median(r.events_per_s for r in base)
    base_cpu = statistics.median(r.cpu_us_per_event for r in base)
    print(f"\n{args.events:,} events, median of {args.rounds} rounds\n")
    print(
        "| contender | events/s | x no tap | CPU us/event | x no tap | tap lines sent | dropped | over rate |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    over: list[str] = []
    for contender in CONTENDERS:
        rows = results[contender.name]
        rate = statistics.median(r.events_per_s for r in rows)
        cpu = statistics.median(r.cpu_us_per_event for r in rows)
        last = rows[-1]
        print(
            f"| {contender.name} | {rate:,.0f} | {rate / base_rate:.2f} | {cpu:.2f} | {cpu / base_cpu:.2f} | "
            f"{last.sent:,} | {last.dropped:,} | {last.over_rate:,} |"
        )
        if cpu / base_cpu > args.max_cpu_ratio:
            over.append(f"{contender.name}: {cpu / base_cpu:.2f}x the CPU per event of no tap")
    if over:
        print(f"\nover the bound of {args.max_cpu_ratio:g}x: " + "; ".join(over), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
