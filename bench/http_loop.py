"""The hand-written loop of scenario H: what a user writes instead of a generator -> http pipe.

    python bench/http_loop.py --url http://HOST:PORT/orders --events N --concurrency C

Makes the standard workload's events (``cart_event(i)``, as the generator
source does), applies the filter as an ``if`` and the transform as a dict, and
POSTs each passing event with aiohttp, ``C`` requests in flight at once (C
workers sharing one session with a pool of C connections), retrying a non-2xx
answer. Then waits for SIGTERM and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connectors.generator import cart_event

JSON = {"Content-Type": "application/json"}


async def main(args: argparse.Namespace) -> None:
    stopping = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stopping.set)
    indexes = iter(range(args.events))
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            for index in indexes:
                event = cart_event(index)
                detail = event["detail"]
                if event["detail-type"] != "OrderPlaced" or not detail["total"] > 100:
                    continue
                body = orjson.dumps(
                    {
                        "order": detail["order_id"],
                        "customer": detail["customer"]["id"],
                        "tier": detail["customer"]["tier"],
                        "total": detail["total"],
                        "items": len(detail["items"]),
                    }
                )
                while True:
                    async with session.post(args.url, data=body, headers=JSON) as resp:
                        await resp.read()
                        if 200 <= resp.status < 300:
                            break

        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    await stopping.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", required=True)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--concurrency", type=int, default=32)
    asyncio.run(main(parser.parse_args()))
