"""The hand-written Redis stream -> stream loop of scenario R: the strongest simple loop a user would write.

    python bench/redis_loop.py --url redis://HOST:PORT/0 --stream IN --group G --output OUT

redis.asyncio with the hiredis reply parser (checked at start: without it
replies are parsed in pure Python, several times slower, and the loop refuses
to run), ``XREADGROUP COUNT 500`` -> orjson -> an ``if`` -> the transform ->
one pipelined round trip of XADDs -> XACK of the batch once every XADD
succeeded. The consumer is named ``loop-<BENCH_WORKER>`` (0 unless started by
fanout.py), so copies share the group's work. Runs until SIGTERM, finishes the
batch in hand, and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import signal
from typing import Any

import orjson
import redis.asyncio as redis

BATCH = 500


async def require_hiredis(client: redis.Redis) -> None:
    connection = await client.connection_pool.get_connection()
    try:
        parser = type(connection._parser).__name__
    finally:
        await client.connection_pool.release(connection)
    if "Hiredis" not in parser:
        raise SystemExit(f"redis-py parses replies with {parser}, not hiredis: pip install hiredis")


async def main(args: argparse.Namespace) -> None:
    stopping = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stopping.set)
    stream, group, output = args.stream, args.group, args.output
    consumer = f"loop-{os.environ.get('BENCH_WORKER', '0')}"
    client = redis.Redis.from_url(args.url, protocol=2)
    await require_hiredis(client)
    try:
        try:
            await client.xgroup_create(stream, group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        while not stopping.is_set():
            reply: Any = await client.xreadgroup(group, consumer, {stream: ">"}, count=BATCH, block=200)
            if not reply:
                continue
            entries = reply[0][1]
            pipe = client.pipeline(transaction=False)
            for _, fields in entries:
                event = orjson.loads(fields[b"data"])
                detail = event["detail"]
                if event["detail-type"] == "OrderPlaced" and detail["total"] > 100:
                    payload = {
                        "order": detail["order_id"],
                        "customer": detail["customer"]["id"],
                        "tier": detail["customer"]["tier"],
                        "total": detail["total"],
                        "items": len(detail["items"]),
                    }
                    pipe.xadd(output, {"data": orjson.dumps(payload)})
            await pipe.execute()  # raises on the first failed XADD: the batch stays pending
            await client.xack(stream, group, *[entry_id for entry_id, _ in entries])
    finally:
        await client.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", required=True)
    parser.add_argument("--stream", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--output", required=True)
    if threshold := os.environ.get("BENCH_GC_THRESHOLD"):  # only with bench_redis.py --gc-threshold
        gc.set_threshold(*(int(part) for part in threshold.split(",")))
    asyncio.run(main(parser.parse_args()))
