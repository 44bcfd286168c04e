"""The admin API refuses what only a browser on another site would send, and can serve TLS."""

from __future__ import annotations

import asyncio
import io
import ssl
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiohttp import ClientSession
from aiohttp.test_utils import TestClient, TestServer
from helpers import wait_until

from connectors.memory import HUB
from pipes.admin import AdminServer, make_app
from pipes.admin_client import status
from pipes.admin_guard import CSRF_HEADER, AdminGuard, exposure_problem, is_loopback, tls_context
from pipes.checkpoints import MemoryCheckpointStore
from pipes.config import load_text
from pipes.daemon import Daemon


@pytest.fixture
async def daemon() -> AsyncIterator[Daemon]:
    tag = uuid.uuid4().hex[:8]
    text = f"name: alpha\nsource: {{type: memory, channel: in-{tag}}}\ntarget: {{type: memory, channel: out-{tag}}}\n"
    d = Daemon(load_text(text, "a.yaml", env={}).pipes, store=MemoryCheckpointStore(), drain_timeout_s=5)
    task = asyncio.create_task(d.run())
    await wait_until(lambda: d.pipes["alpha"].state == "RUNNING", what="alpha running")
    yield d
    d.request_stop()
    await asyncio.wait_for(task, 10)
    HUB.drop(f"in-{tag}")
    HUB.drop(f"out-{tag}")


@pytest.fixture
async def client(daemon: Daemon) -> AsyncIterator[TestClient[Any, Any]]:
    async with TestClient(TestServer(make_app(daemon))) as c:
        yield c


async def test_a_cross_site_form_post_cannot_stop_a_pipe(
    daemon: Daemon, client: TestClient[Any, Any]
) -> None:
    # What `curl -XPOST -H 'Origin: http://evil.example' -H 'Content-Type: text/plain'` stood for.
    evil = {"Origin": "http://evil.example", "Content-Type": "text/plain"}
    answer = await client.post("/pipes/alpha/stop", headers=evil, data="x")
    assert answer.status == 403
    assert (await answer.json()) == {
        "error": "requests from another origin (http://evil.example) are refused"
    }
    plain = await client.post("/pipes/alpha/stop", headers={"Content-Type": "text/plain"}, data="x")
    assert plain.status == 415
    assert (
        "needs Content-Type: application/json or an X-Pipes-Request header" in (await plain.json())["error"]
    )
    assert (await client.post("/reload")).status == 415
    assert daemon.pipes["alpha"].desired == "RUNNING"


async def test_json_or_the_custom_header_may_change_state(
    daemon: Daemon, client: TestClient[Any, Any]
) -> None:
    assert (await client.post("/pipes/alpha/stop", json={})).status == 202
    assert daemon.pipes["alpha"].desired == "STOPPED"
    assert (await client.post("/pipes/alpha/start", headers={CSRF_HEADER: "1"})).status == 202
    assert daemon.pipes["alpha"].desired == "RUNNING"


async def test_a_foreign_origin_is_refused_and_the_own_origin_is_not(client: TestClient[Any, Any]) -> None:
    assert (await client.get("/pipes", headers={"Origin": "http://evil.example"})).status == 403
    assert (await client.get("/pipes", headers={"Origin": "null"})).status == 403
    own = f"http://127.0.0.1:{client.port}"
    assert (await client.get("/pipes", headers={"Origin": own})).status == 200
    assert (await client.post("/pipes/alpha/start", json={}, headers={"Origin": own})).status == 200


async def test_a_rebound_dns_name_cannot_read_the_pipes(client: TestClient[Any, Any]) -> None:
    answer = await client.get("/pipes", headers={"Host": f"evil.example:{client.port}"})
    assert answer.status == 403
    assert "Host 'evil.example:" in (await answer.json())["error"]
    for host in (f"localhost:{client.port}", "127.0.0.1", f"[::1]:{client.port}", "127.0.0.2:80"):
        assert (await client.get("/pipes", headers={"Host": host})).status == 200, host


def test_host_names_that_name_this_server() -> None:
    local = AdminGuard(bind_host="127.0.0.1")
    assert local.host_allowed("localhost:9900") and local.host_allowed("LOCALHOST.")
    assert not local.host_allowed("10.0.0.5:9900") and not local.host_allowed("pipes.internal")
    bound = AdminGuard(bind_host="10.0.0.5", allowed_hosts=("pipes.internal",))
    assert bound.host_allowed("10.0.0.5:9900") and bound.host_allowed("pipes.internal:9900")
    assert not bound.host_allowed("10.0.0.6") and not bound.host_allowed("evil.example")
    everywhere = AdminGuard(bind_host="0.0.0.0")
    assert everywhere.host_allowed("10.1.2.3:9900") and everywhere.host_allowed("[fd00::1]:9900")
    assert not everywhere.host_allowed("evil.example:9900")
    assert local.host_allowed(None)  # no Host header: not a browser


def test_a_token_or_an_explicit_choice_is_needed_off_loopback() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("pipes.internal")
    assert exposure_problem("127.0.0.1", None, insecure=False) is None
    assert exposure_problem("0.0.0.0", "token", insecure=False) is None
    assert exposure_problem("0.0.0.0", None, insecure=True) is None
    problem = exposure_problem("0.0.0.0", None, insecure=False)
    assert problem is not None and "PIPES_ADMIN_TOKEN" in problem and "--admin-insecure" in problem


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    paths = {"ca": folder / "ca.pem", "cert": folder / "cert.pem", "key": folder / "key.pem"}
    ca.cert_pem.write_to_path(str(paths["ca"]))
    cert.cert_chain_pems[0].write_to_path(str(paths["cert"]))
    cert.private_key_pem.write_to_path(str(paths["key"]))
    return paths


async def test_the_api_serves_tls_and_the_clients_follow(
    daemon: Daemon,
    certificates: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    context = tls_context(str(certificates["cert"]), str(certificates["key"]))
    server = AdminServer(daemon, "127.0.0.1", 0, ssl_context=context)
    await server.start()
    try:
        assert server.url == f"https://127.0.0.1:{server.port}"
        trusted = ssl.create_default_context(cafile=str(certificates["ca"]))
        async with ClientSession() as session, session.get(f"{server.url}/pipes", ssl=trusted) as answer:
            assert answer.status == 200
        out = io.StringIO()
        monkeypatch.setenv("PIPES_ADMIN_CA", str(certificates["ca"]))
        assert await asyncio.to_thread(status, server.url, out) == 0
        assert out.getvalue().splitlines()[1].startswith("alpha")
        monkeypatch.delenv("PIPES_ADMIN_CA")
        assert await asyncio.to_thread(status, server.url) == 1
        assert "TLS certificate is not trusted" in capsys.readouterr().err
    finally:
        await server.stop()


def test_certificates_that_do_not_load_are_one_line(tmp_path: Path, certificates: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match=r"cannot load .* with .*: No such file or directory"):
        tls_context(str(tmp_path / "missing.pem"), str(certificates["key"]))
    with pytest.raises(ValueError, match="cannot load"):
        tls_context(str(certificates["cert"]), str(certificates["ca"]))
