"""The admin API's contract: endpoints, JSON errors, the bearer token, the OpenAPI document."""

from __future__ import annotations

import asyncio
import io
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from helpers import wait_until

from connectors.memory import HUB
from pipes.admin import AdminServer, make_app, parse_admin
from pipes.admin_client import control, format_table, reload, status
from pipes.checkpoints import MemoryCheckpointStore
from pipes.config import load_paths
from pipes.daemon import Daemon

TOKEN = "s3cret-token"


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[Daemon]:
    tag = uuid.uuid4().hex[:8]
    (tmp_path / "a.yaml").write_text(
        f"name: alpha\nsource: {{type: memory, channel: alpha-in-{tag}}}\n"
        f"target: {{type: memory, channel: alpha-out-{tag}}}\n"
        "batch: {size: 10, window: 5ms}\ncheckpoint_interval: 20ms\n"
    )
    (tmp_path / "b.yaml").write_text(
        f"name: beta\nstate: STOPPED\nsource: {{type: memory, channel: beta-in-{tag}}}\n"
        f"target: {{type: memory, channel: beta-out-{tag}}}\n"
    )
    definitions = [d for r in load_paths([tmp_path]) for d in r.pipes]
    d = Daemon(definitions, store=MemoryCheckpointStore(), paths=[str(tmp_path)], drain_timeout_s=5)
    d.tag = tag  # type: ignore[attr-defined]
    task = asyncio.create_task(d.run())
    await wait_until(lambda: d.pipes["alpha"].state == "RUNNING", what="alpha running")
    yield d
    d.request_stop()
    await asyncio.wait_for(task, 10)
    for role in ("alpha-in", "alpha-out", "beta-in", "beta-out"):
        HUB.drop(f"{role}-{tag}")


@pytest.fixture
async def client(daemon: Daemon) -> AsyncIterator[TestClient[Any, Any]]:
    async with TestClient(TestServer(make_app(daemon, token=TOKEN))) as c:
        yield c


JSON = {"Content-Type": "application/json"}  # what a request that changes something must say
AUTH = {"Authorization": f"Bearer {TOKEN}", **JSON}


async def test_token_is_required_everywhere_but_the_probes(client: TestClient[Any, Any]) -> None:
    health = await client.get("/healthz")
    assert health.status == 200 and (await health.json()) == {"status": "ok"}
    # Readiness is open to probes (Kubernetes httpGet carries no token), but names no pipe then.
    ready = await client.get("/readyz")
    assert ready.status in (200, 503) and "alpha" not in await ready.text()
    for path in ("/metrics", "/pipes", "/pipes/alpha", "/openapi.json"):
        denied = await client.get(path)
        assert denied.status == 401, path
        assert "token" in (await denied.json())["error"]
        wrong = await client.get(path, headers={"Authorization": "Bearer nope"})
        assert wrong.status == 401, path
        allowed = await client.get(path, headers=AUTH)
        assert allowed.status == 200, path
    for path in ("/pipes/alpha/stop", "/pipes/alpha/start"):
        assert (await client.post(path, headers=JSON)).status == 401


async def test_without_a_token_every_endpoint_is_open(daemon: Daemon) -> None:
    async with TestClient(TestServer(make_app(daemon))) as c:
        assert (await c.get("/pipes")).status == 200
        assert (await c.get("/metrics")).status == 200


async def test_pipes_list_and_detail(daemon: Daemon, client: TestClient[Any, Any]) -> None:
    tag = daemon.tag  # type: ignore[attr-defined]
    HUB.channel(f"alpha-in-{tag}").put(*range(25))
    await wait_until(lambda: len(HUB.channel(f"alpha-out-{tag}").written) == 25, what="delivered")
    await wait_until(lambda: daemon.pipes["alpha"].positions() == {"p0": 24}, what="settled")
    listing = await (await client.get("/pipes", headers=AUTH)).json()
    by_name = {p["name"]: p for p in listing["pipes"]}
    assert set(by_name) == {"alpha", "beta"}
    assert by_name["alpha"]["state"] == "RUNNING" and by_name["alpha"]["desired_state"] == "RUNNING"
    assert by_name["beta"]["state"] == "STOPPED" and by_name["beta"]["desired_state"] == "STOPPED"
    assert by_name["alpha"]["counters"]["received"] == 25
    assert by_name["alpha"]["counters"]["delivered"] == 25

    detail = await (await client.get("/pipes/alpha", headers=AUTH)).json()
    assert detail["name"] == "alpha" and detail["file"].endswith("a.yaml")
    assert detail["checkpoint"] == {"p0": 24}
    assert detail["source_lag"] == {"p0": 0}
    assert detail["last_error"] is None
    never_ran = await (await client.get("/pipes/beta", headers=AUTH)).json()
    assert never_ran["checkpoint"] == {} and never_ran["source_lag"] is None

    missing = await client.get("/pipes/nope", headers=AUTH)
    assert missing.status == 404
    assert missing.content_type == "application/json"
    assert (await missing.json()) == {"error": "no pipe named 'nope'"}
    for method, path in (("GET", "/nowhere"), ("POST", "/pipes/nope/stop"), ("DELETE", "/pipes")):
        answer = await client.request(method, path, headers=AUTH)
        assert answer.status in (404, 405)
        assert "error" in await answer.json()


async def test_stop_and_start_and_readiness(daemon: Daemon, client: TestClient[Any, Any]) -> None:
    ready = await client.get("/readyz", headers=AUTH)
    assert ready.status == 200  # beta is desired STOPPED, so it does not count

    started = await client.post("/pipes/beta/start", headers=AUTH)
    assert started.status == 202
    assert (await started.json())["desired_state"] == "RUNNING"
    await wait_until(lambda: daemon.pipes["beta"].state == "RUNNING", what="beta running")
    again = await client.post("/pipes/beta/start", headers=AUTH)
    assert again.status == 200

    stopped = await client.post("/pipes/alpha/stop", headers=AUTH)
    assert stopped.status == 202
    body = await stopped.json()
    assert body["name"] == "alpha" and body["desired_state"] == "STOPPED"
    await wait_until(lambda: daemon.pipes["alpha"].state == "STOPPED", what="alpha stopped")
    assert (await client.get("/readyz", headers=AUTH)).status == 200

    # A pipe that should run and does not makes the daemon not ready.
    daemon.pipes["alpha"].desired = "RUNNING"
    not_ready = await client.get("/readyz", headers=AUTH)
    assert not_ready.status == 503
    assert (await not_ready.json())["not_ready"] == {"alpha": "STOPPED"}
    assert (await client.post("/pipes/alpha/start", headers=AUTH)).status == 202
    await wait_until(lambda: daemon.pipes["alpha"].state == "RUNNING", what="alpha running again")
    assert (await client.get("/readyz", headers=AUTH)).status == 200


async def test_metrics_endpoint_is_prometheus_text(daemon: Daemon, client: TestClient[Any, Any]) -> None:
    answer = await client.get("/metrics", headers=AUTH)
    assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = await answer.text()
    assert 'pipes_events_received_total{pipe="alpha"} 0.0' in text
    assert 'pipes_pipe_state{pipe="alpha",state="RUNNING"} 1.0' in text
    assert 'pipes_pipe_state{pipe="beta",state="STOPPED"} 1.0' in text
    assert 'pipes_source_lag{partition="p0",pipe="alpha"}' in text or "pipes_source_lag" in text


async def test_openapi_document_lists_every_route(daemon: Daemon, client: TestClient[Any, Any]) -> None:
    doc = await (await client.get("/openapi.json", headers=AUTH)).json()
    assert doc["openapi"].startswith("3.1")
    app = make_app(daemon)
    routes = {
        (route.method.lower(), re.sub(r"\{(\w+)\}", r"{\1}", route.resource.canonical))
        for route in app.router.routes()
        if route.resource is not None and route.method != "HEAD"
    }
    documented = {(method, path) for path, item in doc["paths"].items() for method in item}
    assert documented == routes
    for path, item in doc["paths"].items():
        for operation in item.values():
            assert operation["responses"], path
            assert "403" in operation["responses"], path  # Host and Origin are checked everywhere
            if operation is item.get("post"):
                assert "415" in operation["responses"], path
            if "{name}" in path:
                assert operation["parameters"][0]["name"] == "name"
    # Every $ref points at a schema that exists.
    refs = re.findall(r'"\$ref": ?"#/components/schemas/(\w+)"', str(doc).replace("'", '"'))
    assert refs and set(refs) <= set(doc["components"]["schemas"])


def test_parse_admin() -> None:
    assert parse_admin("127.0.0.1:9900") == ("127.0.0.1", 9900)
    assert parse_admin("[::1]:0") == ("::1", 0)
    assert parse_admin("off") is None
    for bad in ("9900", "host:", "host:port", "host:70000"):
        with pytest.raises(ValueError):
            parse_admin(bad)


async def test_cli_clients_against_a_served_daemon(
    daemon: Daemon, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    server = AdminServer(daemon, "127.0.0.1", 0, token=TOKEN)
    await server.start()
    try:
        address = f"127.0.0.1:{server.port}"
        monkeypatch.setenv("PIPES_ADMIN_TOKEN", TOKEN)
        out = io.StringIO()
        assert await asyncio.to_thread(status, address, out) == 0
        lines = out.getvalue().splitlines()
        assert lines[0].split() == [
            "NAME",
            "STATE",
            "DESIRED",
            "RECEIVED",
            "FILTERED",
            "DROPPED",
            "DELIVERED",
            "FAILED",
            "REASON",
            "/",
            "LAST",
            "ERROR",
        ]
        assert lines[1].split()[:3] == ["alpha", "RUNNING", "RUNNING"]
        out = io.StringIO()
        assert await asyncio.to_thread(control, "start", "beta", address, out) == 0
        assert out.getvalue().startswith("beta: desired RUNNING")
        capsys.readouterr()
        assert await asyncio.to_thread(control, "stop", "nope", address) == 1
        assert "HTTP 404: no pipe named 'nope'" in capsys.readouterr().err
        monkeypatch.setenv("PIPES_ADMIN_TOKEN", "wrong")
        assert await asyncio.to_thread(status, address) == 1
        assert "HTTP 401" in capsys.readouterr().err
    finally:
        await server.stop()
    assert await asyncio.to_thread(status, address) == 1
    err = capsys.readouterr().err
    assert err == f"pipes status: no daemon at {address} (is `pipes run` running with --admin?)\n"


async def test_reload_applies_new_files_and_reports_invalid_ones(
    daemon: Daemon, client: TestClient[Any, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    alpha = daemon.pipes["alpha"].runner
    assert (await client.post("/reload", headers=JSON)).status == 401
    (tmp_path / "c.yaml").write_text(
        f"name: gamma\nsource: {{type: memory, channel: gamma-in-{daemon.tag}}}\n"  # type: ignore[attr-defined]
        f"target: {{type: memory, channel: gamma-out-{daemon.tag}}}\n"  # type: ignore[attr-defined]
    )
    answer = await client.post("/reload", headers=AUTH)
    assert answer.status == 200
    report = await answer.json()
    assert report["added"] == ["gamma"] and report["errors"] == [] and "alpha" in report["unchanged"]
    assert daemon.pipes["alpha"].runner is alpha  # untouched
    (tmp_path / "d.yaml").write_text(
        "name: delta\nsource: {type: memory}\ntarget: {type: memory, channel: x}\n"
    )
    answer = await client.post("/reload", headers=AUTH)
    assert answer.status == 422
    report = await answer.json()
    assert report["errors"] == [f"{tmp_path / 'd.yaml'}:2:1: source.channel: required key is missing"]
    assert "delta" not in daemon.pipes
    server = AdminServer(daemon, "127.0.0.1", 0, token=None)
    await server.start()
    try:
        out = io.StringIO()
        assert await asyncio.to_thread(reload, f"127.0.0.1:{server.port}", out) == 1
        assert "pipes reload: HTTP 422: 1 error(s); first: " in capsys.readouterr().err
        (tmp_path / "d.yaml").unlink()
        assert await asyncio.to_thread(reload, f"127.0.0.1:{server.port}", out) == 0
        assert "unchanged: 3 pipe(s)" in out.getvalue()  # alpha, beta, gamma
    finally:
        await server.stop()
    HUB.drop(f"gamma-in-{daemon.tag}")  # type: ignore[attr-defined]
    HUB.drop(f"gamma-out-{daemon.tag}")  # type: ignore[attr-defined]


def test_status_shows_what_was_filtered_and_dropped_beside_received_and_delivered() -> None:
    counters = {"received": 441, "filtered": 200, "dropped": 38, "delivered": 203, "failed": 0}
    pipe = {"name": "orders", "state": "RUNNING", "desired_state": "RUNNING", "counters": counters}
    assert format_table([pipe]) == [
        "NAME    STATE    DESIRED  RECEIVED  FILTERED  DROPPED  DELIVERED  FAILED  REASON / LAST ERROR",
        "orders  RUNNING  RUNNING       441       200       38        203       0",
    ]
