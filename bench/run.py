"""Runs every benchmark of the standard workload, one after another (`make bench`).

    .venv/bin/python bench/run.py [--events N] [--rounds N] [--pipe-workers N]

The options go to the broker benchmarks (bench_redis.py, bench_kafka.py), and
``--rounds`` to the HTTP one (bench_http.py, which sizes its own runs); the
micro-benchmarks and the demo run with their own defaults.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
MICRO = ["bench_patterns.py", "bench_templates.py", "bench_demo.py", "bench_tap.py"]
BROKERS = ["bench_redis.py", "bench_kafka.py"]
# Its first run generates 1 GB of weather files (about a minute); later runs reuse them.
MAP = ["bench_map.py"]
HTTP = ["bench_http.py"]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, help="events per broker benchmark (default 200,000)")
    parser.add_argument("--rounds", type=int, help="rounds per broker benchmark (default 1)")
    parser.add_argument("--pipe-workers", type=int, metavar="N", help="also run `pipes run --workers N`")
    args = parser.parse_args()
    forwarded: list[str] = []
    for option, value in (
        ("--events", args.events),
        ("--rounds", args.rounds),
        ("--pipe-workers", args.pipe_workers),
    ):
        if value is not None:
            forwarded += [option, str(value)]
    failed = []
    for name in MICRO + BROKERS + MAP + HTTP:
        print(f"== {name}", flush=True)
        extra = forwarded if name in BROKERS else []
        if name in HTTP and args.rounds is not None:
            extra = ["--rounds", str(args.rounds)]
        if subprocess.run([sys.executable, str(HERE / name), *extra], check=False).returncode != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
