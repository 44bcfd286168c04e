"""The bare handler of scenario W: what a user writes instead of a webhook pipe.

    python bench/webhook_bare.py --listen HOST:PORT --path /in --output FILE|-

An aiohttp ``web.Application`` with one route: read the body, ``orjson.loads``,
the standard filter as an ``if``, the transform as a dict, write the passing
payload as a line to ``FILE`` or stdout (``-``; buffered, no fsync), answer
200. SIGTERM ends it (exit 0).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson
from aiohttp import web


def make_app(path: str, output: str) -> web.Application:
    sink: Any = sys.stdout.buffer if output == "-" else open(output, "ab")  # noqa: SIM115 - closed on cleanup

    async def handle(request: web.Request) -> web.Response:
        event = orjson.loads(await request.read())
        detail = event["detail"]
        if event["detail-type"] == "OrderPlaced" and detail["total"] > 100:
            sink.write(
                orjson.dumps(
                    {
                        "order": detail["order_id"],
                        "customer": detail["customer"]["id"],
                        "tier": detail["customer"]["tier"],
                        "total": detail["total"],
                        "items": len(detail["items"]),
                    }
                )
                + b"\n"
            )
        return web.Response(body=b'{"status":"delivered"}', content_type="application/json")

    async def close(app: web.Application) -> None:
        sink.flush()
        if sink is not sys.stdout.buffer:
            sink.close()

    app = web.Application()
    app.router.add_post(path, handle)
    app.on_cleanup.append(close)
    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--listen", required=True)
    parser.add_argument("--path", default="/in")
    parser.add_argument("--output", required=True)
    args = parser.parse_args()
    host, _, port = args.listen.rpartition(":")
    web.run_app(make_app(args.path, args.output), host=host, port=int(port), access_log=None, print=None)
