"""Randomised runs of the runner: stops at any point, retries, dead letters, fan-out and drops.

Whatever the mix, after a stopped run and a ``--once`` run resumed from its
checkpoint: every event is delivered, filtered, dropped or dead-lettered; what
is delivered twice lies after the first run's checkpoint; events that never
failed reach the target in their partition's order; and the ``--once`` run ends.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter, defaultdict
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from runner_kit import run_to_end, runner_for

from pipes.checkpoints import MemoryCheckpointStore
from pipes.clock import ManualClock
from pipes.errors import FatalError, RetryableError
from pipes.testing import HUB, channel

scenario = st.fixed_dictionaries(
    {
        "partitions": st.lists(st.integers(0, 40), min_size=1, max_size=3),
        "size": st.integers(1, 12),
        "window": st.sampled_from(["0ms", "30ms"]),
        "concurrency": st.integers(1, 3),
        "max_in_flight": st.integers(3, 60),
        "attempts": st.integers(1, 4),
        "dead_letter": st.booleans(),
        "fail_every": st.integers(2, 9),  # every Nth event fails at first
        "fails": st.integers(1, 5),  # how many times it fails
        "fatal_every": st.integers(0, 11),  # with a dead letter: every Nth fails for good (0: none)
        "drop_every": st.integers(0, 7),  # the enrichment drops every Nth (0: no enrichment)
        "fan_every": st.integers(0, 7),  # and fans out every Nth into two
        "stop_after": st.integers(0, 60),
        "drain": st.sampled_from(["0ms", "200ms", "5s"]),
    }
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(s=scenario)
async def test_a_stopped_run_then_a_resumed_once_run_lose_nothing(s: dict[str, Any]) -> None:
    tag = f"rand-{id(s)}-{asyncio.get_running_loop().time()}"
    names = {role: f"{role}-{tag}" for role in ("in", "out", "dlq", "enrich")}
    try:
        await _scenario(s, names)
    finally:
        for name in names.values():
            HUB.drop(name)


async def _scenario(s: dict[str, Any], names: dict[str, str]) -> None:
    src, out, dlq = channel(names["in"]), channel(names["out"]), channel(names["dlq"])
    everything: list[tuple[str, int]] = []
    for p, count in enumerate(s["partitions"]):
        ids = [p * 1000 + i for i in range(count)]
        src.put(*({"id": i} for i in ids), partition=f"p{p}")
        everything += [(f"p{p}", i) for i in range(count)]
    # With a dead letter, an event may run out of attempts; without one, failures must heal.
    fails = s["fails"] if s["dead_letter"] else min(s["fails"], s["attempts"] - 1) or 0
    tries: Counter[int] = Counter()
    failed_ever: set[int] = set()

    def fail(event: Any) -> Exception | None:
        body = event.payload
        key = body["id"] * 10 + body.get("child", 0)
        tries[key] += 1
        n = body["id"] % 1000
        if s["dead_letter"] and s["fatal_every"] and n % s["fatal_every"] == s["fatal_every"] - 1:
            failed_ever.add(body["id"])
            return FatalError("never")
        if fails and n % s["fail_every"] == 0 and tries[key] <= fails:
            failed_ever.add(body["id"])
            return RetryableError("later")
        return None

    out.fail = fail

    def enrich(record: dict[str, Any]) -> list[Any]:
        n = record["body"]["id"] % 1000
        if s["drop_every"] and n % s["drop_every"] == 1:
            return []
        if s["fan_every"] and n % s["fan_every"] == 2:
            return [{**record["body"], "child": 1}, {**record["body"], "child": 2}]
        return [record["body"]]

    channel(names["enrich"]).enrich = enrich
    definition: dict[str, Any] = {
        "name": "t",
        "source": {"type": "memory", "channel": names["in"]},
        "target": {"type": "memory", "channel": names["out"]},
        "batch": {"size": s["size"], "window": s["window"]},
        "concurrency": s["concurrency"],
        "max_in_flight": s["max_in_flight"],
        "retry": {"max_attempts": s["attempts"], "backoff_initial": "10ms", "backoff_max": "50ms"},
    }
    if s["drop_every"] or s["fan_every"]:
        definition["enrichment"] = {"type": "memory", "channel": names["enrich"]}
        definition["transform"] = {"jmespath": "@"}
    if s["dead_letter"]:
        definition["dead_letter"] = {"type": "memory", "channel": names["dlq"]}
    store = MemoryCheckpointStore()
    clock = ManualClock()

    # Phase 1: a long-running pipe, stopped at some point with some drain time.
    first = runner_for(definition, clock, store=store, once=False, drain_timeout_s=_seconds(s["drain"]))
    task = asyncio.create_task(first.run())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while first.stats.received < min(s["stop_after"], len(everything)) and loop.time() < deadline:
        await clock.advance(0.01)
        await asyncio.sleep(0)
    first.request_stop()
    while not task.done():
        assert loop.time() < deadline + 20, "the stopped run did not end"
        await clock.advance(0.05)
        await asyncio.sleep(0.001)
    await task
    checkpoint = dict(store.saved.get("t", {}))
    delivered_first = len(out.written)

    # Phase 2: --once from the checkpoint, to the end.
    second = runner_for(definition, clock, store=store, once=True)
    await run_to_end(second, clock, step=0.05, timeout=30)

    by_id: Counter[int] = Counter(body["id"] for body in out.written)
    dead = {r["record"]["body"]["id"] if "body" in r["record"] else r["record"]["id"] for r in dlq.written}
    for partition, i in everything:
        ident = int(partition[1:]) * 1000 + i
        dropped = bool(s["drop_every"]) and i % s["drop_every"] == 1
        if dropped:
            assert by_id[ident] == 0
            continue
        assert by_id[ident] > 0 or ident in dead, f"{partition}@{i} lost"
        if by_id[ident] > (2 if s["fan_every"] and i % s["fan_every"] == 2 else 1):
            # Delivered again: only what lay after the first run's checkpoint.
            assert i > int(checkpoint.get(partition, -1)), f"{partition}@{i} repeated below the checkpoint"
    # Events that never failed keep their partition's order (first deliveries).
    firsts: dict[str, list[int]] = defaultdict(list)
    seen: set[tuple[int, int]] = set()
    for body in out.written[:delivered_first] + out.written[delivered_first:]:
        key = (body["id"], body.get("child", 0))
        if key in seen or body["id"] in failed_ever:
            continue
        seen.add(key)
        firsts[f"p{body['id'] // 1000}"].append(body["id"])
    for partition, ids in firsts.items():
        phase_ok = ids == sorted(ids) or _two_runs_sorted(ids)
        assert phase_ok, f"{partition}: {ids}"


def _two_runs_sorted(ids: list[int]) -> bool:
    # A stopped first run may leave a tail that the second run delivers again from the
    # checkpoint; first deliveries are then sorted within each run.
    breaks = sum(1 for a, b in itertools.pairwise(ids) if b < a)
    return breaks <= 1


def _seconds(text: str) -> float:
    return float(text[:-2]) / 1000 if text.endswith("ms") else float(text[:-1])
