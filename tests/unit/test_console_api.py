"""The console's HTTP side: /ui pages, login and session cookie, static files, the composer's
helpers, and the admin API endpoints the console reads (/systems, /rates, /pipes/NAME/definition)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiohttp.web_urldispatcher import PrefixedSubAppResource
from helpers import wait_until

from connectors.memory import HUB
from pipes.admin import ConsoleSettings, make_app
from pipes.admin_guard import SESSION_COOKIE, session_value
from pipes.checkpoints import MemoryCheckpointStore
from pipes.clock import SystemClock
from pipes.config import load_paths
from pipes.console.routes import STATIC
from pipes.daemon import Daemon

TOKEN = "console-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
JSON = {"Content-Type": "application/json"}


class ShiftedClock(SystemClock):
    """The real clock, with a monotonic time a test can move forward (for rates, without sleeping)."""

    def __init__(self) -> None:
        self.shift_s = 0.0

    def monotonic(self) -> float:
        return time.monotonic() + self.shift_s


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[Daemon]:
    tag = uuid.uuid4().hex[:8]
    folder = tmp_path / "pipes"
    folder.mkdir()
    (folder / "copy.yaml").write_text(
        f"# the copy\nname: copy\nsource: {{type: memory, channel: in-{tag}}}\n"
        f"target: {{type: memory, channel: mid-{tag}}}\nbatch: {{size: 10, window: 5ms}}\n"
    )
    (folder / "onward.yaml").write_text(
        f"name: onward\nsource: {{type: memory, channel: mid-{tag}}}\n"
        f"target: {{type: file, path: {tmp_path}/out.jsonl}}\n"
    )
    (folder / "secretive.yaml").write_text(
        "name: secretive\nstate: STOPPED\nsource: {type: generator}\ntarget: {type: stdout}\n"
        "dead_letter:\n  type: redis_list\n  url: redis://:hunter2@localhost/0\n  list: dlq\n  password: plain\n"
    )
    (folder / "two.yaml").write_text(
        "pipes:\n"
        f"  - {{name: first, state: STOPPED, source: {{type: memory, channel: a-{tag}}}, target: {{type: stdout}}}}\n"
        f"  - {{name: second, state: STOPPED, source: {{type: memory, channel: b-{tag}}}, target: {{type: stdout}}}}\n"
    )
    definitions = [d for r in load_paths([folder]) for d in r.pipes]
    d = Daemon(
        definitions,
        store=MemoryCheckpointStore(),
        paths=[str(folder)],
        drain_timeout_s=5,
        clock=ShiftedClock(),
    )
    d.tag = tag  # type: ignore[attr-defined]
    d.folder = folder  # type: ignore[attr-defined]
    task = asyncio.create_task(d.run())
    await wait_until(lambda: d.pipes["onward"].state == "RUNNING", what="onward running")
    yield d
    d.request_stop()
    await asyncio.wait_for(task, 10)
    for role in ("in", "mid", "a", "b"):
        HUB.drop(f"{role}-{tag}")


type Client = TestClient[Any, Any]
type MakeClient = Callable[..., Any]


@pytest.fixture
async def connect(daemon: Daemon) -> AsyncIterator[MakeClient]:
    clients: list[Client] = []

    async def make(token: str | None = TOKEN, **settings: Any) -> Client:
        client: Client = TestClient(
            TestServer(make_app(daemon, token=token, console=ConsoleSettings(**settings)))
        )
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


async def test_the_console_page_is_the_login_form_until_the_token_is_given(connect: MakeClient) -> None:
    client = await connect()
    bare = await client.get("/ui", allow_redirects=False)
    assert bare.status == 302 and bare.headers["Location"] == "ui/"
    login = await client.get("/ui/")
    text = await login.text()
    assert login.status == 200 and 'id="login"' in text and "app.js" not in text
    page = await client.get("/ui/", headers=AUTH)
    text = await page.text()
    assert "static/js/app.js" in text and 'id="login"' not in text
    # The page's policy: scripts from here and its own import map only; never framed.
    policy = page.headers["Content-Security-Policy"]
    importmap = re.search(r'<script type="importmap">(.*?)</script>', text, re.S)
    assert importmap is not None
    digest = base64.b64encode(hashlib.sha256(importmap.group(1).encode()).digest()).decode()
    assert f"script-src 'self' 'sha256-{digest}'" in policy and "frame-ancestors 'none'" in policy
    assert page.headers["X-Frame-Options"] == "DENY"


async def test_logging_in_sets_a_strict_http_only_session_cookie_that_the_api_accepts(
    connect: MakeClient,
) -> None:
    client = await connect()
    assert (await client.get("/pipes")).status == 401
    wrong = await client.post("/ui/login", json={"token": "nope"})
    assert wrong.status == 401 and (await wrong.json()) == {"error": "wrong token"}
    as_form = await client.post("/ui/login", data={"token": TOKEN})
    assert as_form.status == 415  # a form another site could post is refused before the token is read
    right = await client.post("/ui/login", json={"token": TOKEN})
    assert right.status == 200
    cookie = right.headers["Set-Cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}={session_value(TOKEN)};")
    assert (
        "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie and "Secure" not in cookie
    )
    assert TOKEN not in cookie
    assert (await client.get("/pipes")).status == 200  # the cookie jar now holds the session
    assert (await client.get("/ui/api/settings")).status == 200
    await client.post("/ui/logout", json={})
    assert (await client.get("/pipes")).status == 401
    forged = await client.get("/pipes", cookies={SESSION_COOKIE: session_value("another token")})
    assert forged.status == 401


async def test_the_session_cookie_is_secure_over_tls_and_not_needed_without_a_token(
    connect: MakeClient,
) -> None:
    tls = await connect(secure_cookie=True)
    answer = await tls.post("/ui/login", json={"token": TOKEN})
    assert "Secure" in answer.headers["Set-Cookie"]
    open_daemon = await connect(token=None)
    assert (await (await open_daemon.post("/ui/login", json={})).json()) == {"token_required": False}
    assert "app.js" in await (await open_daemon.get("/ui/")).text()


async def test_static_files_are_served_from_the_package_and_nothing_else(connect: MakeClient) -> None:
    client = await connect()
    script = await client.get("/ui/static/js/app.js")
    assert script.status == 200 and script.headers["Content-Type"].startswith("text/javascript")
    again = await client.get("/ui/static/js/app.js", headers={"If-None-Match": script.headers["ETag"]})
    assert again.status == 304
    vendored = await client.get("/ui/static/vendor/preact/dist/preact.mjs")
    assert vendored.status == 200 and vendored.headers["Content-Type"].startswith("text/javascript")
    for path in ("/ui/static/../pipes", "/ui/static/%2e%2e/%2e%2e/admin.py", "/ui/static/nothing.js"):
        answer = await client.get(path)
        assert answer.status in (401, 404), path
        assert "copy" not in await answer.text() and "import" not in await answer.text()


async def test_the_api_refuses_the_console_helpers_without_the_token(connect: MakeClient) -> None:
    client = await connect()
    for method, path in (
        ("GET", "/ui/api/settings"),
        ("GET", "/ui/api/connectors"),
        ("POST", "/ui/api/filter"),
        ("POST", "/ui/api/transform"),
        ("POST", "/ui/api/validate"),
        ("POST", "/ui/api/save"),
        ("GET", "/systems"),
        ("GET", "/rates"),
        ("GET", "/pipes/copy/definition"),
    ):
        assert (await client.request(method, path, json={})).status == 401, path


def post_paths(app: web.Application) -> list[str]:
    """Every POST route of the admin API and of the apps mounted in it (the console), as concrete paths."""
    found: list[str] = []
    for resource in app.router.resources():
        if isinstance(resource, PrefixedSubAppResource):
            found += post_paths(resource._app)  # its resources carry the prefix already
        elif any(route.method == "POST" for route in resource):
            found.append(resource.canonical.replace("{name}", "copy"))
    return found


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


async def test_with_the_session_cookie_no_state_changing_call_can_come_from_another_site(
    daemon: Daemon, connect: MakeClient
) -> None:
    client = await connect(write=True, config_dir=daemon.folder)  # type: ignore[attr-defined]
    assert (await client.post("/ui/login", json={"token": TOKEN})).status == 200
    folder: Path = daemon.folder  # type: ignore[attr-defined]
    files = snapshot(folder)
    paths = post_paths(client.server.app)
    assert {"/pipes/copy/stop", "/reload", "/ui/api/save", "/ui/login", "/ui/logout"} <= set(paths)
    for path in paths:
        # What a form of another site can send: urlencoded, multipart or text/plain, no custom header.
        for body in ({"data": {"a": "b"}}, {"data": "{}", "headers": {"Content-Type": "text/plain"}}):
            answer = await client.post(path, **body)  # type: ignore[arg-type]
            assert answer.status == 415, (path, body, answer.status)
        # What a script of another site could send after a preflight that is never granted.
        foreign = await client.post(path, json={}, headers={"Origin": "http://evil.example"})
        assert foreign.status == 403, (path, foreign.status)
    assert daemon.pipes["copy"].desired == "RUNNING" and daemon.pipes["copy"].state == "RUNNING"
    assert snapshot(folder) == files  # nothing saved
    assert (await client.get("/pipes")).status == 200  # the session is still there: nothing logged it out


async def test_systems_join_the_pipes_that_share_a_channel(daemon: Daemon, connect: MakeClient) -> None:
    client = await connect()
    found = await (await client.get("/systems", headers=AUTH)).json()
    tag = daemon.tag  # type: ignore[attr-defined]
    pipes = {p["name"]: p for p in found["pipes"]}
    assert pipes["copy"]["targets"] == pipes["onward"]["sources"] == [f"memory:mid-{tag}"]
    assert pipes["secretive"]["dead_letter"] == ["redis://localhost:6379/0#redis_list:dlq"]
    assert pipes["copy"]["state"] == "RUNNING" and pipes["first"]["desired_state"] == "STOPPED"
    assert len({s["id"] for s in found["systems"]}) == len(found["systems"])
    assert "hunter2" not in json.dumps(found) and "plain" not in json.dumps(found)


async def test_rates_come_from_two_readings(daemon: Daemon, connect: MakeClient) -> None:
    client = await connect()
    first = await (await client.get("/rates", headers=AUTH)).json()
    assert first["window_s"] is None and first["pipes"]["copy"]["per_s"] is None
    assert first["pipes"]["copy"]["lag"] == 0 and first["pipes"]["copy"]["lag_by_partition"] == {}
    tag = daemon.tag  # type: ignore[attr-defined]
    HUB.channel(f"in-{tag}").put(*range(30))
    await wait_until(lambda: daemon.pipes["copy"].stats().delivered == 30, what="delivered")
    daemon.clock.shift_s += 2.0  # type: ignore[attr-defined]
    second = await (await client.get("/rates", headers=AUTH)).json()
    assert second["window_s"] >= 2.0
    per_s = second["pipes"]["copy"]["per_s"]
    assert 0 < per_s["received"] <= 15 and per_s["delivered"] == per_s["received"]
    assert second["pipes"]["first"]["state"] == "STOPPED" and second["pipes"]["first"]["lag"] is None


async def test_a_pipe_definition_as_written_with_plain_secrets_masked(connect: MakeClient) -> None:
    client = await connect()
    copy = await (await client.get("/pipes/copy/definition", headers=AUTH)).json()
    assert copy["yaml"].startswith("# the copy\nname: copy") and copy["pipes_in_file"] == 1
    assert copy["pipe"]["source"]["type"] == "memory"
    secretive = await (await client.get("/pipes/secretive/definition", headers=AUTH)).json()
    assert "hunter2" not in secretive["yaml"] and "plain" not in secretive["yaml"]
    assert secretive["pipe"]["dead_letter"]["password"] == "********"
    two = await (await client.get("/pipes/second/definition", headers=AUTH)).json()
    assert two["pipes_in_file"] == 2 and two["pipe"]["name"] == "second"
    assert (await client.get("/pipes/nope/definition", headers=AUTH)).status == 404


async def test_connectors_come_with_their_forms(connect: MakeClient) -> None:
    client = await connect()
    found = await (await client.get("/ui/api/connectors", headers=AUTH)).json()
    kafka = next(c for c in found["connectors"] if c["name"] == "kafka")
    assert kafka["roles"] == ["source", "target"]
    assert {f["name"] for f in kafka["forms"]["target"]} >= {"topic", "bootstrap_servers", "password"}


async def test_filter_and_transform_on_a_sample(connect: MakeClient) -> None:
    client = await connect()
    event = {"body": {"kind": "order", "total": 120}}
    match = await client.post(
        "/ui/api/filter", json={"filter": [{"body": {"kind": ["order"]}}], "event": event}, headers=AUTH
    )
    assert (await match.json()) == {"match": True}
    rendered = await client.post(
        "/ui/api/transform",
        json={
            "transform": {"template": "<$.body.total> by <aws.pipes.pipe-name>"},
            "event": event,
            "names": {"pipe": "p"},
        },
        headers=AUTH,
    )
    assert (await rendered.json()) == {"output": "120 by p", "text": True}
    garbage = await client.post("/ui/api/filter", data=b"not json", headers={**AUTH, **JSON})
    assert garbage.status == 400 and "JSON" in (await garbage.json())["error"]


NEW = "name: fresh\nsource: {type: memory, channel: fresh-in}\ntarget: {type: memory, channel: fresh-out}\n"


async def test_save_needs_ui_write_and_writes_nothing_without_it(daemon: Daemon, connect: MakeClient) -> None:
    folder: Path = daemon.folder  # type: ignore[attr-defined]
    client = await connect(config_dir=folder)
    settings = await (await client.get("/ui/api/settings", headers=AUTH)).json()
    assert settings == {"ui_write": False, "config_dir": str(folder), "token_required": True}
    checked = await (await client.post("/ui/api/validate", json={"yaml": NEW}, headers=AUTH)).json()
    assert checked["ok"] and checked["file"] == str(folder / "fresh.yaml")
    refused = await client.post("/ui/api/save", json={"yaml": NEW}, headers=AUTH)
    assert refused.status == 403 and "--ui-write" in (await refused.json())["error"]
    assert not (folder / "fresh.yaml").exists() and "fresh" not in daemon.pipes


async def test_save_with_ui_write_writes_the_file_and_the_daemon_runs_it(
    daemon: Daemon, connect: MakeClient
) -> None:
    folder: Path = daemon.folder  # type: ignore[attr-defined]
    client = await connect(config_dir=folder, write=True)
    invalid = await client.post(
        "/ui/api/save", json={"yaml": NEW.replace("memory, channel", "memroy, channel")}, headers=AUTH
    )
    assert invalid.status == 422
    body = await invalid.json()
    assert body["errors"][0]["path"] == "source.type" and not (folder / "fresh.yaml").exists()
    unnamed = await client.post(
        "/ui/api/save", json={"yaml": NEW.replace("fresh", "Not A Name", 1)}, headers=AUTH
    )
    assert unnamed.status == 422 and (await unnamed.json())["errors"][0]["path"] == "name"
    taken = await client.post("/ui/api/save", json={"yaml": NEW.replace("fresh", "copy", 1)}, headers=AUTH)
    assert taken.status == 422 and (await taken.json())["errors"][0]["path"] == "name"

    saved = await client.post("/ui/api/save", json={"yaml": NEW}, headers=AUTH)
    assert saved.status == 200, await saved.text()
    done = await saved.json()
    assert done["file"] == str(folder / "fresh.yaml") and done["reload"]["added"] == ["fresh"]
    assert (folder / "fresh.yaml").read_text() == NEW
    await wait_until(lambda: daemon.pipes["fresh"].state == "RUNNING", what="fresh running")
    again = await client.post("/ui/api/save", json={"yaml": NEW}, headers=AUTH)
    assert again.status == 422 and "exists" in (await again.json())["errors"][0]["message"]

    # Editing rewrites the pipe's own file; a file of several pipes is left to a person.
    edited = "# edited\n" + NEW.replace("fresh-out", "fresh-elsewhere")
    answer = await client.post("/ui/api/save", json={"yaml": edited, "edit": "fresh"}, headers=AUTH)
    assert answer.status == 200 and (await answer.json())["reload"]["restarted"] == ["fresh"]
    assert (folder / "fresh.yaml").read_text() == edited
    several = await client.post("/ui/api/save", json={"yaml": NEW, "edit": "first"}, headers=AUTH)
    assert several.status == 409 and "2 pipes" in (await several.json())["error"]
    secret = NEW.replace(
        "fresh-in}", "fresh-in}\ndead_letter: {type: redis_list, list: d, password: hunter2}"
    )
    plain = await client.post(
        "/ui/api/save", json={"yaml": secret.replace("fresh", "other"), "edit": ""}, headers=AUTH
    )
    assert plain.status == 422 and (await plain.json())["errors"][0]["path"] == "dead_letter.password"


def test_every_file_the_import_map_names_is_in_the_package() -> None:
    page = (STATIC / "index.html").read_text()
    importmap = json.loads(re.search(r'<script type="importmap">(.*?)</script>', page, re.S).group(1))  # type: ignore[union-attr]
    for url in importmap["imports"].values():
        assert (STATIC / url.removeprefix("./static/")).is_file(), url
