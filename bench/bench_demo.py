"""The embedded demo as a benchmark: events/s and peak memory of `pipes run --once configs/demo.yaml`.

Runs the installed command in a fresh temporary folder (so nothing resumes),
a few times, and reports the best run's rate and its peak RSS.

    .venv/bin/python bench/bench_demo.py [--runs N]
"""

from __future__ import annotations

import argparse
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PIPES = str(Path(sys.executable).parent / "pipes")


def run_once() -> tuple[float, float, int]:
    """Seconds of the pipe (from its summary), wall seconds, and peak RSS in KiB of the child."""
    with tempfile.TemporaryDirectory() as cwd:
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        started = time.perf_counter()
        done = subprocess.run(
            [PIPES, "run", "--once", "--no-progress", str(ROOT / "configs" / "demo.yaml")],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
        )
        wall = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        match = re.search(r"received ([\d,]+).* in ([\d.]+)s", done.stderr)
        assert match, done.stderr
        received = int(match.group(1).replace(",", ""))
        assert received == 100_000, done.stderr
        return float(match.group(2)), wall, max(peak, before)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    results = [run_once() for _ in range(args.runs)]
    best = min(results)
    print(f"demo: 100,000 events in {best[0]:.2f}s = {100_000 / best[0]:,.0f} events/s (pipe time)")
    print(
        f"demo: wall time with start-up {best[1]:.2f}s; peak RSS {max(r[2] for r in results) / 1024:.1f} MiB"
    )


if __name__ == "__main__":
    main()
