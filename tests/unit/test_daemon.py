"""The daemon's reload: new, removed, changed and invalid files, while another pipe keeps delivering.

Every scenario puts records into the untouched pipe before, during and after the
reload, and checks its target got each of them exactly once, in order, from the
same runner (never restarted).
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import wait_until

from connectors.memory import HUB
from pipes.checkpoints import MemoryCheckpointStore
from pipes.config import load_paths
from pipes.daemon import Daemon


def pipe_yaml(name: str, channel_in: str, channel_out: str, extra: str = "") -> str:
    return (
        f"name: {name}\n"
        f"source: {{type: memory, channel: {channel_in}}}\n"
        f"target: {{type: memory, channel: {channel_out}}}\n"
        "batch: {size: 10, window: 5ms}\n"
        "checkpoint_interval: 20ms\n"
        f"{extra}"
    )


@dataclass
class Env:
    dir: Path
    tag: str
    store: MemoryCheckpointStore
    daemon: Daemon | None = None
    task: asyncio.Task[None] | None = None

    def ch(self, name: str) -> str:
        return f"{name}-{self.tag}"

    def write(self, file: str, name: str, extra: str = "") -> Path:
        path = self.dir / file
        path.write_text(pipe_yaml(name, self.ch(f"{name}-in"), self.ch(f"{name}-out"), extra))
        return path

    async def start(self) -> Daemon:
        results = load_paths([self.dir])
        assert not [e for r in results for e in r.errors]
        definitions = [d for r in results for d in r.pipes]
        self.daemon = Daemon(definitions, store=self.store, paths=[str(self.dir)], drain_timeout_s=5)
        self.task = asyncio.create_task(self.daemon.run())
        await wait_until(lambda: not self.daemon.not_ready() if self.daemon else False, what="pipes running")
        return self.daemon

    async def stop(self) -> None:
        assert self.daemon is not None and self.task is not None
        self.daemon.request_stop()
        await asyncio.wait_for(self.task, 10)


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    e = Env(tmp_path / "pipes", uuid.uuid4().hex[:8], MemoryCheckpointStore())
    e.dir.mkdir()
    yield e
    if e.task is not None and not e.task.done():
        await e.stop()
    for name in list(HUB._channels):
        if name.endswith(e.tag):
            HUB.drop(name)


def put(env: Env, pipe: str, start: int, count: int) -> None:
    HUB.channel(env.ch(f"{pipe}-in")).put(*range(start, start + count))


def written(env: Env, pipe: str) -> list[object]:
    return HUB.channel(env.ch(f"{pipe}-out")).written


async def delivered(env: Env, pipe: str, count: int) -> None:
    await wait_until(lambda: len(written(env, pipe)) >= count, what=f"{count} events through {pipe}")


async def reload_while_flowing(env: Env, pipe: str = "steady") -> object:
    """Records go into ``pipe`` before, during and after a reload; returns the report."""
    daemon = env.daemon
    assert daemon is not None
    put(env, pipe, 0, 100)
    await delivered(env, pipe, 50)
    reload = asyncio.create_task(daemon.reload())
    put(env, pipe, 100, 100)
    report = await reload
    put(env, pipe, 200, 100)
    await delivered(env, pipe, 300)
    return report


def assert_exactly_once(env: Env, pipe: str, count: int) -> None:
    assert written(env, pipe) == list(range(count))


async def test_new_file_starts_its_pipes_and_disturbs_nothing(env: Env) -> None:
    env.write("steady.yaml", "steady")
    daemon = await env.start()
    runner = daemon.pipes["steady"].runner
    env.write("added.yaml", "added")
    report = await reload_while_flowing(env)
    assert report.added == ["added"] and report.unchanged == ["steady"]  # type: ignore[attr-defined]
    put(env, "added", 0, 30)
    await delivered(env, "added", 30)
    assert daemon.pipes["steady"].runner is runner
    await env.stop()
    assert_exactly_once(env, "steady", 300)
    assert_exactly_once(env, "added", 30)


async def test_removed_file_stops_its_pipes_drained_and_checkpointed(env: Env) -> None:
    env.write("steady.yaml", "steady")
    gone = env.write("gone.yaml", "gone")
    daemon = await env.start()
    runner = daemon.pipes["steady"].runner
    put(env, "gone", 0, 40)
    await delivered(env, "gone", 40)
    gone.unlink()
    report = await reload_while_flowing(env)
    assert report.removed == ["gone"]  # type: ignore[attr-defined]
    assert "gone" not in daemon.pipes
    assert env.store.saved["gone"] == {"p0": 39}
    put(env, "gone", 40, 10)  # nobody reads it any more
    assert daemon.pipes["steady"].runner is runner
    await env.stop()
    assert_exactly_once(env, "steady", 300)
    assert_exactly_once(env, "gone", 40)


async def test_changed_pipe_restarts_alone_and_resumes_from_its_checkpoint(env: Env) -> None:
    env.write("steady.yaml", "steady")
    env.write("changing.yaml", "changing")
    daemon = await env.start()
    steady_runner = daemon.pipes["steady"].runner
    old_runner = daemon.pipes["changing"].runner
    put(env, "changing", 0, 100)
    await delivered(env, "changing", 20)
    env.write("changing.yaml", "changing", extra="concurrency: 2\n")
    report = await reload_while_flowing(env)
    assert report.restarted == ["changing"]  # type: ignore[attr-defined]
    assert report.unchanged == ["steady"]  # type: ignore[attr-defined]
    changing = daemon.pipes["changing"]
    assert changing.runner is not old_runner
    assert changing.definition.config.concurrency == 2
    put(env, "changing", 100, 50)
    await delivered(env, "changing", 150)
    assert daemon.pipes["steady"].runner is steady_runner
    assert changing.counters()["delivered"] == 150  # counted over both runs
    await env.stop()
    assert_exactly_once(env, "steady", 300)
    assert_exactly_once(env, "changing", 150)


async def test_invalid_file_is_reported_and_changes_nothing(env: Env) -> None:
    env.write("steady.yaml", "steady")
    broken = env.write("broken.yaml", "broken")
    daemon = await env.start()
    broken_runner = daemon.pipes["broken"].runner
    steady_runner = daemon.pipes["steady"].runner
    broken.write_text(broken.read_text() + "batch: {size: -1}\n")
    broken.write_text(broken.read_text().replace("batch: {size: 10, window: 5ms}\n", ""))
    report = await reload_while_flowing(env)
    errors = report.errors  # type: ignore[attr-defined]
    assert errors and all(re.match(rf"{re.escape(str(broken))}:\d+:\d+: ", line) for line in errors)
    assert report.restarted == [] and report.removed == []  # type: ignore[attr-defined]
    # The broken file's pipe runs on with its old definition, untouched.
    assert daemon.pipes["broken"].runner is broken_runner
    put(env, "broken", 0, 25)
    await delivered(env, "broken", 25)
    # Fixed again, with a real change: now it restarts.
    env.write("broken.yaml", "broken", extra="concurrency: 3\n")
    report = await daemon.reload()
    assert report.restarted == ["broken"] and not report.errors
    assert daemon.pipes["steady"].runner is steady_runner
    await env.stop()
    assert_exactly_once(env, "steady", 300)
    assert_exactly_once(env, "broken", 25)


async def test_yaml_syntax_error_keeps_pipes_running(env: Env) -> None:
    env.write("steady.yaml", "steady")
    path = env.write("other.yaml", "other")
    daemon = await env.start()
    runner = daemon.pipes["other"].runner
    path.write_text("name: other\nsource: {type: memory\n")
    report = await daemon.reload()
    assert report.errors and report.errors[0].startswith(f"{path}:")
    assert daemon.pipes["other"].runner is runner and daemon.pipes["other"].alive


async def test_same_name_in_two_files_keeps_the_first(env: Env) -> None:
    env.write("a.yaml", "steady")
    daemon = await env.start()
    runner = daemon.pipes["steady"].runner
    twin = env.dir / "b.yaml"
    twin.write_text(pipe_yaml("steady", env.ch("twin-in"), env.ch("twin-out")))
    report = await reload_while_flowing(env)
    errors = report.errors  # type: ignore[attr-defined]
    assert len(errors) == 1 and errors[0].startswith(f"{twin}:1:1: ") and "a.yaml" in errors[0]
    assert daemon.pipes["steady"].runner is runner
    assert daemon.pipes["steady"].definition.file.endswith("a.yaml")
    await env.stop()
    assert_exactly_once(env, "steady", 300)


async def test_state_in_file_stops_and_starts_a_pipe(env: Env) -> None:
    env.write("steady.yaml", "steady")
    env.write("toggled.yaml", "toggled")
    daemon = await env.start()
    put(env, "toggled", 0, 10)
    await delivered(env, "toggled", 10)
    env.write("toggled.yaml", "toggled", extra="state: STOPPED\n")
    report = await reload_while_flowing(env)
    assert report.restarted == ["toggled"]  # type: ignore[attr-defined]
    handle = daemon.pipes["toggled"]
    assert handle.desired == "STOPPED" and handle.state == "STOPPED" and not handle.alive
    assert daemon.not_ready() == {}
    put(env, "toggled", 10, 10)
    env.write("toggled.yaml", "toggled", extra="state: RUNNING\n")
    await daemon.reload()
    await delivered(env, "toggled", 20)
    await env.stop()
    assert_exactly_once(env, "toggled", 20)
    assert_exactly_once(env, "steady", 300)


async def test_api_stop_and_start_resume_without_loss_or_duplicates(env: Env) -> None:
    env.write("steady.yaml", "steady")
    env.write("paused.yaml", "paused")
    daemon = await env.start()
    runner = daemon.pipes["steady"].runner
    put(env, "paused", 0, 30)
    await delivered(env, "paused", 30)
    await daemon.stop_pipe("paused")
    handle = daemon.pipes["paused"]
    assert handle.state == "STOPPED" and handle.desired == "STOPPED"
    assert env.store.saved["paused"] == {"p0": 29}
    put(env, "paused", 30, 30)
    # An unchanged file does not undo the API's stop.
    report = await reload_while_flowing(env)
    assert sorted(report.unchanged) == ["paused", "steady"]  # type: ignore[attr-defined]
    assert not handle.alive
    assert len(written(env, "paused")) == 30
    await daemon.start_pipe("paused")
    await delivered(env, "paused", 60)
    assert daemon.pipes["steady"].runner is runner
    await env.stop()
    assert_exactly_once(env, "paused", 60)
    assert_exactly_once(env, "steady", 300)


async def test_watch_reloads_when_a_file_appears(env: Env) -> None:
    env.write("steady.yaml", "steady")
    daemon = await env.start()
    watcher = asyncio.create_task(daemon.watch(interval_s=0.02))
    env.write("late.yaml", "late")
    await wait_until(lambda: "late" in daemon.pipes and daemon.pipes["late"].state == "RUNNING", what="late")
    put(env, "late", 0, 5)
    await delivered(env, "late", 5)
    await env.stop()
    await asyncio.wait_for(watcher, 2)
    assert_exactly_once(env, "late", 5)


async def test_once_mode_returns_when_every_pipe_is_done(env: Env) -> None:
    env.write("a.yaml", "steady")
    env.write("b.yaml", "other", extra="state: STOPPED\n")
    put(env, "steady", 0, 42)
    results = load_paths([env.dir])
    definitions = [d for r in results for d in r.pipes]
    daemon = Daemon(definitions, store=env.store, paths=[str(env.dir)], once=True)
    await asyncio.wait_for(daemon.run(), 10)
    assert_exactly_once(env, "steady", 42)
    assert daemon.pipes["other"].runner is None and daemon.pipes["other"].state == "STOPPED"
    assert env.store.saved["steady"] == {"p0": 41}


async def test_sigterm_during_a_restart_drains_and_starts_nothing_new(env: Env) -> None:
    env.write("steady.yaml", "steady")
    env.write("slow.yaml", "slow")
    daemon = await env.start()
    out = HUB.channel(env.ch("slow-out"))
    out.hold = asyncio.Event()  # the target takes its time: the restart's drain waits for it
    put(env, "slow", 0, 40)
    await wait_until(lambda: out.writes >= 1, what="a write under way")
    env.write("slow.yaml", "slow", extra="concurrency: 2\n")
    reload = asyncio.create_task(daemon.reload())
    await wait_until(lambda: daemon.pipes["slow"].state == "STOPPING", what="restart draining")
    daemon.request_stop()
    out.hold.set()
    await asyncio.wait_for(env.task, 10)  # type: ignore[arg-type]
    report = await reload
    assert report.restarted == ["slow"]
    handle = daemon.pipes["slow"]
    assert not handle.alive and handle.state == "STOPPED"
    assert_exactly_once(env, "slow", len(written(env, "slow")))
    delivered_count = len(written(env, "slow"))
    assert delivered_count >= 1
    assert env.store.saved["slow"] == {"p0": delivered_count - 1}


async def test_a_pipe_restarted_in_one_process_is_summed_over_its_runs_and_rated_over_the_time_it_ran(
    env: Env,
) -> None:
    from pipes.progress import summary_lines

    env.write("paused.yaml", "paused")
    began = asyncio.get_running_loop().time()
    daemon = await env.start()
    handle = daemon.pipes["paused"]
    put(env, "paused", 0, 30)
    await delivered(env, "paused", 30)
    await daemon.stop_pipe("paused")
    first_run_s = handle.running_s()
    assert first_run_s > 0
    stopped_at = asyncio.get_running_loop().time()
    await wait_until(lambda: asyncio.get_running_loop().time() - stopped_at > 0.3, what="a pause")
    assert handle.running_s() == first_run_s  # a stopped pipe's clock does not run
    await daemon.start_pipe("paused")
    put(env, "paused", 30, 20)
    await delivered(env, "paused", 50)
    await env.stop()
    assert handle.stats().received == 50 and handle.stats().delivered == 50  # both runs, not the last one
    [line] = summary_lines([(handle.totals(), handle.running_s(), None)])
    assert line.startswith("paused: stopped; received 50, filtered 0, delivered 50,")
    # The rate divides by the time the pipe ran: the pause while it was stopped is not in it.
    whole = asyncio.get_running_loop().time() - began
    assert handle.running_s() <= whole - 0.3
    assert f" in {handle.running_s():.1f}s " in line
