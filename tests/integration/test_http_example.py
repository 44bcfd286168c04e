"""configs/shop-orders-webhook.yaml, run as written against local stand-ins for the shop, the CRM and the fulfilment API."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from helpers import ROOT, wait_until
from http_kit import Recorder, Seen

from pipes.checkpoints import MemoryCheckpointStore
from pipes.clock import ManualClock
from pipes.config import load_file
from pipes.runner import PipeRunner

pytestmark = pytest.mark.integration

CUSTOMERS = {
    "c-1": {"tier": "gold", "address": "1 Main St"},
    "c-2": {"tier": "silver", "address": "2 Side St"},
}


async def test_the_shop_orders_example_works_end_to_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the dead letter's relative path
    async with Recorder() as crm, Recorder() as fulfilment:

        def customer(seen: Seen) -> web.StreamResponse:
            assert seen.headers["X-Api-Key"] == "crm-key"
            found = CUSTOMERS.get(seen.path.rsplit("/", 1)[1])
            return web.json_response(found) if found else web.json_response({}, status=404)

        def api(seen: Seen) -> web.StreamResponse:
            if seen.path == "/oauth/token":
                return web.json_response({"access_token": "t-1", "expires_in": 600})
            assert seen.headers["Authorization"] == "Bearer t-1"
            return web.json_response({"shipment": "s-" + seen.headers["Idempotency-Key"]}, status=201)

        crm.respond, fulfilment.respond = customer, api
        env = {
            "WEBHOOK_LISTEN": "127.0.0.1:0",
            "SHOP_WEBHOOK_TOKEN": "shop-token",
            "CRM_URL": crm.url,
            "CRM_API_KEY": "crm-key",
            "FULFILMENT_URL": fulfilment.url,
            "FULFILMENT_TOKEN_URL": fulfilment.url + "/oauth/token",
            "FULFILMENT_CLIENT_SECRET": "fulfilment-secret",
        }
        result = load_file(ROOT / "configs" / "shop-orders-webhook.yaml", env=env)
        assert result.errors == []
        runner = PipeRunner(result.pipes[0], store=MemoryCheckpointStore(), clock=ManualClock())
        task = asyncio.create_task(runner.run())
        try:
            await wait_until(lambda: runner.state == "RUNNING")
            where = f"http://127.0.0.1:{runner.source.port}/hooks/orders"  # type: ignore[attr-defined]
            orders: list[dict[str, Any]] = [
                {"type": "order.paid", "order_id": "o-1", "customer_id": "c-1", "items": [{"sku": "A"}]},
                {"type": "order.created", "order_id": "o-2", "customer_id": "c-1", "items": []},
                {"type": "order.paid", "order_id": "o-3", "customer_id": "c-2", "items": [{"sku": "B"}]},
                {"type": "order.paid", "order_id": "o-4", "customer_id": "c-404", "items": []},
                {"type": "order.paid", "order_id": "o-5", "customer_id": "c-1", "items": [{"sku": "C"}]},
            ]
            async with aiohttp.ClientSession(headers={"Authorization": "Bearer shop-token"}) as shop:
                statuses = []
                for order in orders:
                    async with shop.post(where, json=order) as resp:
                        statuses.append(resp.status)
                async with shop.post(where, json=orders[0], headers={"Authorization": "Bearer nope"}) as resp:
                    statuses.append(resp.status)
        finally:
            runner.request_stop()
            await asyncio.wait_for(task, 10)
    assert statuses == [200, 200, 200, 202, 200, 401]
    shipments = [s.json() for s in fulfilment.seen if s.path == "/shipments"]
    assert shipments == [
        {"order": "o-1", "items": [{"sku": "A"}], "customer": "c-1", "tier": "gold", "ship_to": "1 Main St"},
        {
            "order": "o-3",
            "items": [{"sku": "B"}],
            "customer": "c-2",
            "tier": "silver",
            "ship_to": "2 Side St",
        },
        {"order": "o-5", "items": [{"sku": "C"}], "customer": "c-1", "tier": "gold", "ship_to": "1 Main St"},
    ]
    assert sorted(crm.paths()) == ["/customers/c-1", "/customers/c-2", "/customers/c-404"]  # c-1 cached
    [letter] = [
        orjson.loads(line) for line in (tmp_path / "dlq" / "shop-orders.jsonl").read_bytes().splitlines()
    ]
    assert letter["stage"] == "enrichment" and letter["error"]["status"] == 404
