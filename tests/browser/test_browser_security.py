"""Who may use the console: the token, the session cookie, cross-site requests, and --ui-write.

A daemon of one generator -> file pipe (no broker needed) serves the console.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from console_kit import RunningDaemon, log_in

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

PIPE = """
name: orders
source: {type: generator, count: null, rate: 50}
target: {type: file, path: out/orders.jsonl}
"""
#: What needs no token: the probes, and the console's login page with its static files.
OPEN = {"/healthz", "/readyz", "/ui", "/ui/", "/ui/login", "/ui/logout", "/ui/static/{path}"}
EVIL = "http://evil.example"


@pytest.fixture
def simple(tmp_path: Path, start_daemon: Callable[..., RunningDaemon]) -> Callable[..., RunningDaemon]:
    folder = tmp_path / "pipes"
    folder.mkdir()
    (folder / "orders.yaml").write_text(PIPE)
    return lambda *args: start_daemon(folder, *args)


def test_without_the_token_only_the_login_form_shows_and_the_api_refuses_every_call(
    simple: Callable[..., RunningDaemon], page: Any
) -> None:
    daemon = simple()
    page.goto(f"{daemon.url}/ui")
    page.wait_for_selector("form#login")
    assert page.locator("header.top").count() == 0
    assert page.locator("script[src*='app.js']").count() == 0  # not even the console's code

    status, doc = daemon.api("/openapi.json")
    assert status == 200
    for path, item in doc["paths"].items():
        if path in OPEN:
            continue
        concrete = path.replace("{name}", "orders")
        for method in item:
            answer, body = daemon.api(
                concrete, method=method.upper(), token=False, body=b"{}" if method == "post" else None,
                headers={"Content-Type": "application/json"},
            )  # fmt: skip
            assert answer == 401, (method, path, answer, body)
    # Readiness answers probes without the token, but names no pipe then.
    answer, body = daemon.api("/readyz", token=False)
    assert answer in (200, 503) and "orders" not in str(body)
    # From the page too: the browser has no cookie yet.
    assert page.evaluate("() => fetch('../pipes').then(r => r.status)") == 401

    page.fill("#token", "not the token")
    page.click("button[type=submit]")
    page.wait_for_selector("#login-error:has-text('Wrong token.')")
    assert page.locator("header.top").count() == 0

    log_in(page, daemon)
    page.wait_for_selector("svg.map g.pipe[data-pipe='orders']")
    cookie = next(c for c in page.context.cookies() if c["name"] == "pipes_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and not cookie["secure"]
    assert daemon.token not in cookie["value"]  # the cookie holds a value derived from the token
    assert "pipes_session" not in page.evaluate("() => document.cookie")  # scripts cannot read it
    assert page.evaluate("() => fetch('../pipes').then(r => r.status)") == 200

    page.click("header button:has-text('Log out')")
    page.wait_for_selector("form#login")
    assert page.evaluate("() => fetch('../pipes').then(r => r.status)") == 401


def test_a_cross_site_form_post_is_refused(simple: Callable[..., RunningDaemon], page: Any) -> None:
    daemon = simple()
    log_in(page, daemon)
    page.wait_for_selector("svg.map g.pipe[data-pipe='orders']")
    target = f"{daemon.url}/pipes/orders/stop"
    attack = f"""<!doctype html><html><body>
      <form id="urlencoded" method="post" action="{target}"><input name="a" value="b"></form>
      <form id="text" method="post" enctype="text/plain" action="{target}"><input name='{{"a":"' value='b"}}'></form>
    </body></html>"""
    page.route(f"{EVIL}/**", lambda route: route.fulfill(status=200, content_type="text/html", body=attack))
    for form in ("urlencoded", "text"):
        page.goto(f"{EVIL}/")
        with page.expect_navigation(url=target) as navigation:
            page.evaluate(f"() => document.getElementById('{form}').submit()")
        answer = navigation.value
        assert answer is not None and answer.status in (401, 403, 415), (form, answer and answer.status)
    page.goto(f"{EVIL}/")
    # A script of that page may send what it likes, but cannot make it pass either.
    status = page.evaluate(
        "url => fetch(url, {method: 'POST', mode: 'no-cors', credentials: 'include', body: '{}',"
        " headers: {'Content-Type': 'text/plain'}}).then(r => r.type, () => 'blocked')",
        target,
    )
    # Chromium may block it itself (a public site calling a loopback address); if not, the API refuses it.
    assert status in ("opaque", "blocked")
    found = daemon.api("/pipes/orders")[1]
    assert found["desired_state"] == "RUNNING" and found["state"] == "RUNNING"
    assert "pipe_desired_state" not in daemon.stderr()  # no stop was ever accepted


def test_without_ui_write_the_composer_offers_the_yaml_to_download_and_writes_nothing(
    simple: Callable[..., RunningDaemon], page: Any
) -> None:
    daemon = simple()
    before = sorted(p.name for p in daemon.folder.iterdir())
    log_in(page, daemon)
    page.click("header nav a:has-text('New pipe')")
    page.wait_for_selector("[data-note='read-only']")
    page.fill("[data-field='name']", "downloaded")
    page.wait_for_selector("[data-check='ok']")
    button = page.locator("[data-action='save']")
    assert button.inner_text() == "Download YAML"
    text = page.locator("[data-field='yaml']").input_value()
    with page.expect_download() as download:
        button.click()
    assert download.value.suggested_filename == "downloaded.yaml"
    assert Path(download.value.path()).read_text() == text
    page.wait_for_selector("[data-outcome='downloaded']")

    status, body = daemon.api(
        "/ui/api/save", method="POST", body=json.dumps({"yaml": text}).encode(),
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    assert status == 403 and "--ui-write" in body["error"]
    assert sorted(p.name for p in daemon.folder.iterdir()) == before
    assert "downloaded" not in {p["name"] for p in daemon.api("/pipes")[1]["pipes"]}


def test_webhook_tokens_and_credential_headers_typed_into_the_composer_are_never_written(
    simple: Callable[..., RunningDaemon], page: Any
) -> None:
    daemon = simple()
    log_in(page, daemon)
    page.click("header nav a:has-text('New pipe')")
    page.wait_for_selector("section.composer")
    page.fill("[data-field='name']", "hooks")
    page.select_option("[data-field='source.type']", "webhook")
    page.locator("details[data-more='source'] > summary").click()
    page.select_option("[data-field='source.auth.kind']", "bearer")
    # A list of secrets: each token typed becomes its own ${VAR}.
    page.fill("[data-field='source.auth.tokens[0]']", "t0ken-one")
    page.click("[data-add='source.auth.tokens']")
    page.fill("[data-field='source.auth.tokens[1]']", "t0ken-two")
    for name in ("HOOKS_SOURCE_AUTH_TOKENS", "HOOKS_SOURCE_AUTH_TOKENS_2"):
        page.wait_for_selector(f"[data-variables] li[data-variable='{name}']:has-text('secret')")
    text = page.locator("[data-field='yaml']").input_value()
    assert "${HOOKS_SOURCE_AUTH_TOKENS}" in text and "${HOOKS_SOURCE_AUTH_TOKENS_2}" in text
    assert "t0ken" not in text
    # A credential header typed as a plain value is refused, and the error shows at that field.
    page.select_option("[data-field='target.type']", "http")
    page.fill("[data-field='target.url']", "http://127.0.0.1:9/orders")
    page.fill("[data-field='target.headers']", '{"Authorization": "Bearer abc123"}')
    error = page.wait_for_selector("p.field-error[data-error-for='target.headers']")
    assert "credential" in error.inner_text()
    page.fill("[data-field='target.headers']", '{"Authorization": "Bearer ${API_TOKEN}"}')
    # Now the file is right, and what is left is to set the variable: the page says so, at the field too.
    page.wait_for_selector("p.field-error[data-error-for='target.headers']:has-text('API_TOKEN is not set')")
    listed = page.wait_for_selector("[data-variables] li[data-variable='API_TOKEN']:has-text('secret')")
    assert "not set" in listed.inner_text()  # the page says which variables the daemon must be given
    assert "abc123" not in page.locator("[data-field='yaml']").input_value()
