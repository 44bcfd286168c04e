"""What the broker benchmarks share: a contender's figures, measured in its own process.

Each contender runs in a subprocess (so its peak RSS is its own) and prints one
JSON line of figures; the parent turns it into a result with whole-run and
steady-state rates (steady: from the first output record on).
"""

from __future__ import annotations

import json
import resource
import subprocess
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def print_figures(started: float) -> None:
    """In the contender's process, after its run: wall times, peak RSS and CPU, as one JSON line."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(
        json.dumps(
            {
                "started": started,
                "ended": time.time(),
                "peak_rss_mib": usage.ru_maxrss / 1024,
                "cpu_s": usage.ru_utime + usage.ru_stime,
            }
        )
    )


def run_subprocess(cmd: list[str]) -> dict[str, Any]:
    """Run a contender's subprocess; its figures (the last line it printed)."""
    done = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT)
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def result(name: str, events: int, figures: dict[str, Any], first_output_s: float) -> dict[str, Any]:
    """Rates over the whole run and over its steady part."""
    seconds = figures["ended"] - figures["started"]
    steady = figures["ended"] - first_output_s
    return {
        "name": name,
        "events_per_s": events / seconds,
        "steady_events_per_s": events / steady if steady > 0 else 0.0,
        "seconds": seconds,
        "peak_rss_mib": figures["peak_rss_mib"],
        "cpu_s": figures["cpu_s"],
    }
