"""The hand-written Kafka -> Kafka loop of scenario K: the strongest simple loop a user would write.

    python bench/kafka_loop.py --bootstrap HOST:PORT --topic IN --group G --output OUT

aiokafka, ``getmany(max_records=500)`` -> orjson -> an ``if`` -> the transform
-> every send handed to the producer without awaiting its acknowledgement; the
next batch is read while earlier batches are still being acknowledged. A deque
holds the batches in flight; each is committed, in order, once all its sends
are acknowledged (several finished batches in one commit). At most
``MAX_IN_FLIGHT`` batches are outstanding. When partitions are revoked (a
second copy joins the group), the batches in flight are finished and committed
first, so the new owner starts where this one stopped. Runs until SIGTERM,
then finishes and commits what it has read, and exits 0.

Producer settings match the pipe's target in the benchmark: acks all, no
idempotence (Tansu cannot do it), 256 KiB batches, and ``linger_ms=5``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import signal
from collections import deque

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition

BATCH = 500
MAX_IN_FLIGHT = 8
SESSION_TIMEOUT_MS = 2000

InFlight = tuple[dict[TopicPartition, int], list["asyncio.Future[object]"]]


class Loop:
    def __init__(self, args: argparse.Namespace) -> None:
        self.output = args.output
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=args.bootstrap,
            group_id=args.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=SESSION_TIMEOUT_MS,
            heartbeat_interval_ms=SESSION_TIMEOUT_MS // 3,
        )
        self.consumer.subscribe([args.topic], listener=_FinishBeforeRevoke(self))
        self.producer = AIOKafkaProducer(
            bootstrap_servers=args.bootstrap,
            acks="all",
            enable_idempotence=False,
            max_batch_size=262144,
            linger_ms=5,
        )
        self.in_flight: deque[InFlight] = deque()
        # Held while a batch is handed to the producer and while committing, so that a revoke
        # (which finishes and commits everything in flight) never interleaves with either.
        self.lock = asyncio.Lock()

    async def commit_done(self) -> None:
        """Commit the leading batches whose sends are all acknowledged (one commit for all of them)."""
        offsets: dict[TopicPartition, int] = {}
        while self.in_flight and all(f.done() for f in self.in_flight[0][1]):
            batch_offsets, futures = self.in_flight.popleft()
            for future in futures:
                future.result()  # a failed send stops the loop before its offsets are committed
            offsets.update(batch_offsets)
        if offsets:
            await self.consumer.commit(offsets)

    async def finish(self) -> None:
        """Wait for every batch in flight, then commit them all."""
        for _, futures in self.in_flight:
            await asyncio.gather(*futures)
        await self.commit_done()

    async def run(self, stopping: asyncio.Event) -> None:
        consumer, producer, output = self.consumer, self.producer, self.output
        while not stopping.is_set():
            batches = await consumer.getmany(timeout_ms=100, max_records=BATCH)
            async with self.lock:
                if not batches:
                    await self.finish()  # idle: commit the tail now rather than after the next record
                    continue
                futures: list[asyncio.Future[object]] = []
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
                                "items": len(detail["items"]),
                            }
                            futures.append(
                                await producer.send(output, orjson.dumps(payload), key=message.key)
                            )
                offsets = {tp: messages[-1].offset + 1 for tp, messages in batches.items()}
                self.in_flight.append((offsets, futures))
                if len(self.in_flight) >= MAX_IN_FLIGHT:
                    await asyncio.gather(*self.in_flight[0][1])
                await self.commit_done()
        async with self.lock:
            await self.finish()


class _FinishBeforeRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, loop: Loop) -> None:
        self.loop = loop

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        async with self.loop.lock:
            await self.loop.finish()

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        pass


async def main(args: argparse.Namespace) -> None:
    stopping = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stopping.set)
    loop = Loop(args)
    await loop.producer.start()
    await loop.consumer.start()
    try:
        await loop.run(stopping)
    finally:
        await loop.consumer.stop()
        await loop.producer.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--output", required=True)
    if threshold := os.environ.get("BENCH_GC_THRESHOLD"):  # only with bench_kafka.py --gc-threshold
        gc.set_threshold(*(int(part) for part in threshold.split(",")))
    asyncio.run(main(parser.parse_args()))
