"""Dead letters on real systems: written by a pipe whose python target fails, read back, redriven.

For each dead-letter type that can be read back (file, kafka, redis_stream,
redis_list): ``ls`` counts, ``show --where`` selects, a redrive after the
target is fixed delivers each event exactly once, records that fail again
carry ``redrive_count``, and a redrive killed with SIGKILL half way, then
started again, delivers the rest and sends again only the batch it was in.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import wait_until_sync

from pipes.checkpoints import FileCheckpointStore
from pipes.config import PipeDefinition, load_paths
from pipes.connector import ConnectorContext
from pipes.dead_letters import Selection
from pipes.redrive import Redrive, open_log
from pipes.runner import PipeRunner

pytestmark = pytest.mark.integration

PIPES = str(Path(sys.executable).parent / "pipes")
EVENTS = 300
BATCH = 100

#: The failing target: what it does depends on the control file, read at each call.
SINK = """
import json, os, time

def write(batch, options):
    with open(options["control"]) as handle:
        control = handle.read().strip()
    if control == "fail":
        raise RuntimeError("reporting db is down")
    items = [json.loads(p) for p in batch]
    outcomes = [None] * len(items)
    if control == "fail-some":
        outcomes = ["still down for this one" if i["n"] % 50 == 7 else None for i in items]
    with open(options["out"], "a") as out:
        for item, outcome in zip(items, outcomes):
            if outcome is None:
                out.write(json.dumps(item) + "\\n")
        out.flush()
        os.fsync(out.fileno())
    if control.startswith("hang-after:"):
        with open(options["out"]) as out:
            if sum(1 for _ in out) >= int(control.split(":")[1]):
                time.sleep(3600)  # written but never answered: killed here
    return outcomes
"""

KINDS = ["file", "kafka", "redis_stream", "redis_list", "redis_list_lpush"]


class Setup:
    """One pipe with its dead letter of ``kind``, its control file and its output."""

    def __init__(self, kind: str, dead_letter: dict[str, Any], tmp_path: Path) -> None:
        self.kind = kind
        self.dir = tmp_path
        self.control = tmp_path / "control"
        self.out = tmp_path / "out.jsonl"
        self.state = tmp_path / "state"
        self.name = f"reporting-{kind.replace('_', '-')}"
        # A module name of its own: one process imports the sinks of several tests.
        module = f"redrive_sink_{uuid.uuid4().hex[:8]}"
        (tmp_path / f"{module}.py").write_text(SINK)
        definition = {
            "name": self.name,
            "source": {"type": "generator", "count": EVENTS},
            "transform": {"template": '{"n": <$.index>}'},
            "target": {
                "type": "python",
                "function": f"{module}:write",
                "options": {"out": str(self.out), "control": str(self.control)},
            },
            "retry": {"max_attempts": 2, "backoff_initial": "1ms", "backoff_max": "2ms"},
            "dead_letter": dead_letter,
            "batch": {"size": BATCH, "window": 0},
        }
        self.file = tmp_path / "pipe.yaml"
        self.file.write_text(json.dumps(definition))  # JSON is YAML
        (result,) = load_paths([self.file])
        assert not result.errors, result.errors
        self.definition: PipeDefinition = result.pipes[0]

    def set(self, control: str) -> None:
        self.control.write_text(control)

    def store(self) -> FileCheckpointStore:
        return FileCheckpointStore(self.state / "checkpoints")

    async def fill(self) -> None:
        """Run the pipe once with the target down: every event is dead-lettered."""
        self.set("fail")
        runner = PipeRunner(self.definition, store=self.store(), once=True, state_dir=str(self.state))
        await runner.run()
        assert runner.stats.dead_lettered == EVENTS

    def delivered(self) -> Counter[int]:
        if not self.out.exists():
            return Counter()
        return Counter(json.loads(line)["n"] for line in self.out.read_text().splitlines())


@pytest.fixture
def setup(request: pytest.FixtureRequest, tmp_path: Path) -> Setup:
    kind: str = request.param
    if kind == "file":
        dead_letter: dict[str, Any] = {"type": "file", "path": str(tmp_path / "dlq" / "reporting.jsonl")}
    elif kind == "kafka":
        kafka = request.getfixturevalue("kafka")
        topic = asyncio.run(kafka.create_topic(partitions=1))
        dead_letter = {
            "type": "kafka",
            "bootstrap_servers": kafka.bootstrap,
            "topic": topic,
            "idempotent": False,
        }
    else:
        url: str = request.getfixturevalue("redis_url")
        key = f"dlq-{tmp_path.name}-{kind}"
        if kind == "redis_stream":
            dead_letter = {"type": "redis_stream", "url": url, "stream": key}
        else:
            push = "left" if kind.endswith("lpush") else "right"
            dead_letter = {"type": "redis_list", "url": url, "list": key, "push": push}
    return Setup(kind, dead_letter, tmp_path)


def records(setup: Setup, selection: Selection, redriven: bool = False) -> list[dict[str, Any]]:
    async def go() -> list[dict[str, Any]]:
        log = await open_log(setup.definition, setup.store(), ConnectorContext(pipe=setup.name))
        try:
            found = []
            async for batch in log.scan(selection, redriven=redriven):
                found.extend(p.letter.record for p in batch if p.letter.record is not None)
            return found
        finally:
            await log.reader.stop()

    return asyncio.run(go())


def summary(setup: Setup) -> dict[str, Any]:
    async def go() -> dict[str, Any]:
        log = await open_log(setup.definition, setup.store(), ConnectorContext(pipe=setup.name))
        try:
            return (await log.summary()).as_dict()
        finally:
            await log.reader.stop()

    return asyncio.run(go())


def redrive(setup: Setup, selection: Selection | None = None) -> dict[str, Any]:
    job = Redrive(setup.definition, store=setup.store(), selection=selection or Selection())
    return asyncio.run(job.run()).as_dict()


@pytest.mark.parametrize("setup", KINDS, indirect=True)
def test_dead_letters_are_counted_selected_and_redriven_exactly_once(setup: Setup) -> None:
    asyncio.run(setup.fill())
    counted = summary(setup)
    assert counted["count"] == EVENTS
    assert counted["by_stage"] == {"target": EVENTS}
    assert counted["by_error"] == {"RetryableError": EVENTS}
    assert counted["oldest"] <= counted["newest"]

    early = Selection.parse({"record": {"index": [{"numeric": ["<", 10]}]}}, now_s=0)
    assert sorted(r["record"]["index"] for r in records(setup, early)) == list(range(10))
    assert "reporting db is down" in records(setup, early)[0]["error"]["message"]

    # Fixed, but for a few events: those go back to the dead letter.
    setup.set("fail-some")
    first = redrive(setup)
    failing = {n for n in range(EVENTS) if n % 50 == 7}
    assert (first["selected"], first["delivered"], first["failed_again"]) == (EVENTS, EVENTS - 6, 6)
    assert setup.delivered() == Counter(n for n in range(EVENTS) if n not in failing)
    again = records(setup, Selection())
    assert sorted(r["record"]["index"] for r in again) == sorted(failing)
    for record in again:
        assert record["redrive_count"] == 1
        assert record["error"]["message"] == "still down for this one"
        assert "reporting db is down" in record["first_failure"]["error"]["message"]

    setup.set("ok")
    second = redrive(setup)
    assert (second["selected"], second["delivered"], second["failed_again"]) == (6, 6, 0)
    assert setup.delivered() == Counter(range(EVENTS)), "each event exactly once"
    assert summary(setup)["count"] == 0
    assert redrive(setup)["selected"] == 0


def run_cli(setup: Setup, *args: str) -> list[str]:
    return [
        PIPES,
        *args,
        setup.name,
        "--config",
        str(setup.file),
        "--admin",
        "off",
        "--state-dir",
        str(setup.state),
    ]


def lines_in(path: Path) -> Callable[[], int]:
    def count() -> int:
        return path.read_bytes().count(b"\n") if path.exists() else 0

    return count


@pytest.mark.parametrize("setup", KINDS[:4], indirect=True)
def test_a_redrive_killed_half_way_sends_again_only_the_batch_it_was_in(setup: Setup) -> None:
    asyncio.run(setup.fill())
    listed = subprocess.run(run_cli(setup, "dlq", "ls"), capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.startswith(f"{setup.name}: {EVENTS} dead letters waiting")

    # The target writes the second batch, then hangs without answering: killed there.
    setup.set(f"hang-after:{BATCH + 1}")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    log = setup.dir / "redrive.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            run_cli(setup, "dlq", "redrive"), stdout=sink, stderr=subprocess.STDOUT, env=env
        )
        try:
            wait_until_sync(
                lambda: lines_in(setup.out)() >= 2 * BATCH, timeout=60, what="two batches written"
            )
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
    assert lines_in(setup.out)() == 2 * BATCH

    setup.set("ok")
    rest = subprocess.run(run_cli(setup, "dlq", "redrive"), capture_output=True, text=True, timeout=120)
    assert rest.returncode == 0, rest.stderr + log.read_text()
    assert f"delivered {EVENTS - BATCH}, filtered 0, dropped 0, failed again 0" in rest.stderr
    seen = setup.delivered()
    assert set(seen) == set(range(EVENTS)), "every event delivered"
    again = sorted(n for n, count in seen.items() if count > 1)
    assert again == list(range(BATCH, 2 * BATCH)), "only the batch in flight at the kill is sent again"
    shown = subprocess.run(run_cli(setup, "dlq", "show"), capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and shown.stdout == "", shown.stderr
