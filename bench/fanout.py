"""Run N copies of a command as one contender: the "loop x2" of the benchmarks.

    python bench/fanout.py N -- COMMAND [ARG...]

Each copy gets ``BENCH_WORKER=<0..N-1>`` in its environment (the Redis loop
names its consumer after it). SIGTERM and SIGINT are forwarded to every copy;
the exit status is the first non-zero status of the copies, else 0. Every copy
is reaped here, so the harness's ``wait4`` on this process counts their CPU.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from types import FrameType


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--" or not argv[0].isdigit() or int(argv[0]) < 1:
        print("usage: fanout.py N -- COMMAND [ARG...]", file=sys.stderr)
        return 2
    copies: list[subprocess.Popen[bytes]] = []

    def forward(signum: int, _frame: FrameType | None) -> None:
        for copy in copies:
            if copy.poll() is None:
                copy.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for i in range(int(argv[0])):
        copies.append(subprocess.Popen(argv[2:], env={**os.environ, "BENCH_WORKER": str(i)}))
    codes = [copy.wait() for copy in copies]
    return next((code for code in codes if code != 0), 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
