"""The ``http`` target against a real aiohttp server on loopback: delivery, auth, outcomes, limits, TLS."""

from __future__ import annotations

import asyncio
import io
import json
import ssl
import time
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
import structlog
import trustme
from aiohttp import web
from helpers import wait_until
from http_kit import Recorder, Seen
from runner_kit import run_to_end, runner_for

from connectors.http import HttpTarget, HttpTargetOptions
from connectors.http.errors import HttpFatalError, HttpRetryableError, parse_retry_after
from pipes.clock import ManualClock
from pipes.connector import ConnectorContext
from pipes.errors import FatalError, RetryableError
from pipes.events import Event
from pipes.observe import configure_logging
from pipes.testing import channel

pytestmark = pytest.mark.integration


def http_pipe(ch: dict[str, str], target: dict[str, Any], **extra: Any) -> dict[str, Any]:
    definition: dict[str, Any] = {
        "name": "t",
        "source": {"type": "memory", "channel": ch["in"]},
        "target": {"type": "http", **target},
        "batch": {"size": 10, "window": "0ms"},
        "retry": {"max_attempts": 3, "backoff_initial": "10ms", "backoff_max": "50ms"},
        "dead_letter": {"type": "memory", "channel": ch["dlq"]},
    }
    definition.update(extra)
    return definition


async def open_target(clock: ManualClock | None = None, **options: Any) -> HttpTarget:
    target = HttpTarget(HttpTargetOptions.model_validate(options))
    await target.start(ConnectorContext(pipe="t", clock=clock or ManualClock()))
    return target


def events(*bodies: Any) -> list[Event]:
    return [Event({"body": b}, "p", i) for i, b in enumerate(bodies)]


# ------------------------------------------------------------------ delivery


async def test_every_event_is_delivered_with_templated_url_headers_and_query(
    channels: dict[str, str],
) -> None:
    bodies = [{"id": f"o-{i}", "customer": f"c{i % 3}", "n": i} for i in range(25)]
    channel(channels["in"]).put(*bodies[:13], partition="a")
    channel(channels["in"]).put(*bodies[13:], partition="b")
    async with Recorder() as server:
        target = {
            "url": server.url + "/orders/<$.body.id>",
            "headers": {"X-Customer": "<$.body.customer>", "X-Static": "yes"},
            "query": {"source": "pipes", "n": "<$.body.n>"},
        }
        clock = ManualClock()
        await run_to_end(runner_for(http_pipe(channels, target), clock), clock)
    assert len(server.seen) == 25
    by_id = {s.path.rsplit("/", 1)[1]: s for s in server.seen}
    assert sorted(by_id) == sorted(b["id"] for b in bodies)
    for body in bodies:
        seen = by_id[body["id"]]
        assert seen.method == "POST"
        assert seen.json() == body
        assert seen.headers["Content-Type"] == "application/json"
        assert seen.headers["X-Customer"] == body["customer"]
        assert seen.headers["X-Static"] == "yes"
        assert dict(seen.query) == {"source": "pipes", "n": str(body["n"])}
    # Order holds within each partition.
    order = [s.json()["n"] for s in server.seen]
    assert [n for n in order if n < 13] == list(range(13))
    assert [n for n in order if n >= 13] == list(range(13, 25))


async def test_text_payloads_go_as_text_and_a_transformed_template_as_json() -> None:
    async with Recorder() as server:
        target = await open_target(url=server.url + "/x")
        try:
            outcomes = await target.write(
                [
                    Event({"body": "plain words"}, "p", 0),
                    Event({"body": {}}, "p", 1, payload='{"rendered": true}'),
                    Event({"body": {}}, "p", 2, payload="rendered text"),
                ]
            )
        finally:
            await target.stop()
    assert outcomes == [None, None, None]
    assert [(s.headers["Content-Type"], s.body) for s in server.seen] == [
        ("text/plain; charset=utf-8", b"plain words"),
        ("application/json", b'{"rendered": true}'),
        ("text/plain; charset=utf-8", b"rendered text"),
    ]


async def test_body_batch_sends_one_array_per_request_under_max_batch_bytes() -> None:
    async with Recorder() as server:
        target = await open_target(url=server.url + "/bulk", body="batch", max_batch_bytes=40)
        try:
            outcomes = await target.write(events(*({"i": i} for i in range(6))))
        finally:
            await target.stop()
    assert outcomes == [None] * 6
    arrays = [s.json() for s in server.seen]
    assert [item for array in arrays for item in array] == [{"i": i} for i in range(6)]
    assert all(len(s.body) <= 40 for s in server.seen) and len(arrays) > 1


# ------------------------------------------------------------------ auth


@pytest.mark.parametrize(
    ("auth", "header", "value"),
    [
        (
            {"kind": "basic", "username": "ann", "password": "s3cret"},
            "Authorization",
            "Basic YW5uOnMzY3JldA==",
        ),
        ({"kind": "api_key", "header": "X-Api-Key", "value": "k-123"}, "X-Api-Key", "k-123"),
        ({"kind": "bearer", "token": "tok-9"}, "Authorization", "Bearer tok-9"),
    ],
    ids=["basic", "api_key", "bearer"],
)
async def test_static_credentials_are_sent(auth: dict[str, Any], header: str, value: str) -> None:
    async with Recorder() as server:
        target = await open_target(url=server.url + "/x", auth=auth)
        try:
            assert await target.write(events({"a": 1}, {"a": 2})) == [None, None]
        finally:
            await target.stop()
    assert [s.headers.get(header) for s in server.seen] == [value, value]


async def test_oauth_token_is_fetched_once_cached_and_refreshed_once_on_401(channels: dict[str, str]) -> None:
    issued: list[str] = []
    revoked: set[str] = set()

    async with Recorder() as server:

        def respond(seen: Seen) -> web.StreamResponse:
            if seen.path == "/token":
                assert seen.headers["Authorization"] == "Basic YXBwOmFwcC1zZWNyZXQ="  # app:app-secret
                assert dict(seen.query) == {}
                issued.append(f"token-{len(issued)}")
                return web.json_response(
                    {"access_token": issued[-1], "expires_in": 3600, "token_type": "Bearer"}
                )
            token = seen.headers.get("Authorization", "").removeprefix("Bearer ")
            if token not in issued or token in revoked:
                return web.json_response({"error": "invalid_token"}, status=401)
            if len([s for s in server.seen if s.path == "/api"]) == 5:
                revoked.add(token)  # the server rotates its keys: this token is refused from now on
                return web.json_response({"error": "invalid_token"}, status=401)
            return web.json_response({})

        server.respond = respond
        auth = {
            "kind": "oauth_client_credentials",
            "token_url": server.url + "/token",
            "client_id": "app",
            "client_secret": "app-secret",
            "scopes": ["orders:write", "orders:read"],
        }
        channel(channels["in"]).put(*({"n": i} for i in range(12)))
        clock = ManualClock()
        pipe = http_pipe(
            channels, {"url": server.url + "/api", "auth": auth}, batch={"size": 1, "window": "0ms"}
        )
        runner = runner_for(pipe, clock)
        await run_to_end(runner, clock)
    tokens = [s for s in server.seen if s.path == "/token"]
    assert len(tokens) == 2, "one token, cached, then one refresh after the 401"
    assert tokens[0].body.decode().split("&") == [
        "grant_type=client_credentials",
        "scope=orders%3Awrite+orders%3Aread",
    ]
    assert runner.stats.delivered == 12 and runner.stats.failed == 0
    api = [s.headers["Authorization"] for s in server.seen if s.path == "/api"]
    assert (
        api == ["Bearer token-0"] * 5 + ["Bearer token-1"] * 8
    )  # the refused request was sent again at once


async def test_a_refused_token_request_fails_the_event_for_good_without_the_secret() -> None:
    async with Recorder() as server:
        server.respond = lambda seen: web.json_response(
            {"error": "invalid_client", "error_description": "bad secret"}, status=401
        )
        auth = {
            "kind": "oauth_client_credentials",
            "token_url": server.url + "/token",
            "client_id": "app",
            "client_secret": "hush-hush",
            "client_auth": "body",
        }
        clock = ManualClock()
        target = await open_target(clock, url=server.url + "/api", auth=auth)
        try:
            outcome, *others = await target.write(events({"a": 1}, {"a": 2}, {"a": 3}))
            assert len(server.seen) == 1, "one refusal answers the requests waiting for the token"
            await clock.advance(1.0)
            await target.write(events({"a": 4}))
            assert len(server.seen) == 2, "a second later the token is asked for again"
        finally:
            await target.stop()
    assert all(isinstance(o, HttpFatalError) and str(o) == str(outcome) for o in others)
    assert isinstance(outcome, HttpFatalError)
    assert str(outcome) == (
        f"oauth token request to {server.url}/token: HTTP 401 "
        '{"error":"invalid_client","error_description":"bad secret"}'
    )
    assert b"client_secret=hush-hush" in server.seen[0].body  # client_auth: body
    assert "hush-hush" not in repr(outcome) + str(outcome.details)


@pytest.mark.parametrize("client_auth", ["basic", "body"])
async def test_a_token_endpoint_that_echoes_the_credentials_has_them_blanked(client_auth: str) -> None:
    def echo(seen: Seen) -> web.StreamResponse:
        got = f"{seen.headers.get('Authorization')} {seen.body.decode()}"
        return web.json_response(
            {"error": "invalid_client", "error_description": f"you sent {got}"}, status=401
        )

    async with Recorder() as server:
        server.respond = echo
        auth = {
            "kind": "oauth_client_credentials",
            "token_url": server.url + "/token",
            "client_id": "app",
            "client_secret": "hush-hush",
            "client_auth": client_auth,
        }
        target = await open_target(url=server.url + "/api", auth=auth)
        try:
            [outcome] = await target.write(events({"a": 1}))
        finally:
            await target.stop()
    assert isinstance(outcome, HttpFatalError)
    basic = "YXBwOmh1c2gtaHVzaA=="  # app:hush-hush
    sent = f"{server.seen[0].headers.get('Authorization')} {server.seen[0].body.decode()}"
    assert ("hush-hush" in sent) if client_auth == "body" else (basic in sent)
    assert "you sent" in str(outcome) and "**********" in str(outcome)
    assert "hush-hush" not in str(outcome) and basic not in str(outcome)


async def test_an_invalid_token_url_fails_for_good_without_its_user_info() -> None:
    auth = {
        "kind": "oauth_client_credentials",
        "token_url": "http://app:url-s3cret@[::1/token",  # an unclosed IPv6 bracket
        "client_id": "app",
        "client_secret": "hush-hush",
    }
    target = await open_target(url="http://127.0.0.1:9/api", auth=auth)
    try:
        [outcome] = await target.write(events({"a": 1}))
    finally:
        await target.stop()
    assert isinstance(outcome, HttpFatalError)
    assert "Invalid IPv6 URL" in str(outcome) and "url-s3cret" not in str(outcome)


# ------------------------------------------------------------------ outcomes


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = 1_700_000_000.0
    date = format_datetime(datetime.fromtimestamp(now + 7, tz=UTC), usegmt=True)
    assert parse_retry_after("2", now) == 2.0
    assert parse_retry_after(date, now) == pytest.approx(7.0)
    assert (
        parse_retry_after(format_datetime(datetime.fromtimestamp(now - 9, tz=UTC), usegmt=True), now) == 0.0
    )
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None
    # The obsolete forms a recipient must still read (RFC 9110 5.6.7): RFC 850 and asctime.
    in_7s = datetime.fromtimestamp(now + 7, tz=UTC)
    assert parse_retry_after(in_7s.strftime("%A, %d-%b-%y %H:%M:%S GMT"), now) == pytest.approx(7.0)
    assert parse_retry_after(in_7s.strftime("%a %b %d %H:%M:%S %Y"), now) == pytest.approx(7.0)
    assert parse_retry_after("\u00b2", now) is None  # a digit, but not an ASCII one
    assert parse_retry_after("1.5", now) is None and parse_retry_after("-3", now) is None


@pytest.mark.parametrize("form", ["seconds", "http-date"])
async def test_429_with_retry_after_waits_at_least_that_long(channels: dict[str, str], form: str) -> None:
    clock = ManualClock()
    async with Recorder(clock=clock) as server:

        def respond(seen: Seen) -> web.StreamResponse:
            if len(server.seen) > 1:
                return web.json_response({})
            if form == "seconds":
                after = "2"
            else:  # two seconds from now, as an HTTP date (whole seconds: round up)
                after = format_datetime(datetime.fromtimestamp(int(clock.wall()) + 3, tz=UTC), usegmt=True)
            return web.json_response({"error": "slow down"}, status=429, headers={"Retry-After": after})

        server.respond = respond
        channel(channels["in"]).put({"n": 1})
        runner = runner_for(http_pipe(channels, {"url": server.url + "/x"}), clock)
        await run_to_end(runner, clock, step=0.05)
    first, second = server.seen
    assert second.at - first.at >= 2.0
    assert second.at - first.at < 3.2  # and not much longer: the backoff here is at most 50ms
    assert runner.stats.delivered == 1 and runner.stats.retried == 1


async def test_a_retry_after_past_the_events_age_limit_dead_letters_it_at_once(
    channels: dict[str, str],
) -> None:
    clock = ManualClock()
    async with Recorder(clock=clock) as server:
        next_week = format_datetime(datetime.fromtimestamp(clock.wall() + 7 * 86400, tz=UTC), usegmt=True)
        server.respond = lambda seen: web.json_response(
            {"error": "come back next week"}, status=503, headers={"Retry-After": next_week}
        )
        channel(channels["in"]).put({"n": 1})
        pipe = http_pipe(
            channels, {"url": server.url + "/x"}, retry={"max_attempts": 5, "max_event_age": "1h"}
        )
        runner = runner_for(pipe, clock)
        await run_to_end(runner, clock, step=0.05)
    assert len(server.seen) == 1
    [letter] = channel(channels["dlq"]).written
    assert (letter["attempts"], letter["error"]["status"]) == (1, 503)


async def test_a_500_storm_is_retried_then_dead_lettered_with_status_and_body_excerpt(
    channels: dict[str, str],
) -> None:
    page = "<html>" + "x" * 3000 + "</html>"
    async with Recorder() as server:
        server.respond = lambda seen: web.Response(status=500, text=page)
        channel(channels["in"]).put({"n": 1}, {"n": 2})
        clock = ManualClock()
        runner = runner_for(http_pipe(channels, {"url": server.url + "/x?secret=in-query"}), clock)
        await run_to_end(runner, clock, step=0.05)
    assert len(server.seen) == 6  # 3 attempts each
    dead = channel(channels["dlq"]).written
    assert [d["record"]["body"] for d in dead] == [{"n": 1}, {"n": 2}]
    for letter in dead:
        assert letter["attempts"] == 3
        assert letter["error"] == {
            "type": "HttpRetryableError",
            "message": f"POST {server.url}/x: HTTP 500",
            "status": 500,
            "body": page[:1024],
        }


async def test_a_400_is_dead_lettered_at_once(channels: dict[str, str]) -> None:
    async with Recorder() as server:
        server.respond = lambda seen: web.json_response({"error": "missing field sku"}, status=400)
        channel(channels["in"]).put({"n": 1})
        clock = ManualClock()
        runner = runner_for(http_pipe(channels, {"url": server.url + "/x"}), clock)
        await run_to_end(runner, clock, step=0.05)
    assert len(server.seen) == 1
    [letter] = channel(channels["dlq"]).written
    assert letter["attempts"] == 1
    assert letter["error"]["type"] == "HttpFatalError"
    assert letter["error"]["status"] == 400
    assert letter["error"]["body"] == '{"error": "missing field sku"}'


@pytest.mark.parametrize("include", [True, False])
async def test_a_failed_request_and_its_response_are_logged_only_as_execution_data(
    channels: dict[str, str], include: bool
) -> None:
    """AWS's awsRequest / awsResponse: the event_failed TRACE line, with execution data asked for only."""
    async with Recorder() as server:
        server.respond = lambda seen: web.json_response(
            {"error": "no such customer ann@example.com", "echo": seen.headers.get("Authorization")},
            status=422,
            headers={"X-Trace": "t-1", "Set-Cookie": "session=s3cr3t"},
        )
        channel(channels["in"]).put({"email": "ann@example.com"})
        clock = ManualClock()
        stream = io.StringIO()
        output = configure_logging("json", stream=stream)
        try:
            target = {
                "url": server.url + "/customers?api_key=in-query",
                "headers": {"X-Api-Key": "k-123456", "X-Tenant": "shop"},
                "auth": {"kind": "bearer", "token": "tok-abcdef"},
            }
            log = {"level": "TRACE", "include_execution_data": include}
            runner = runner_for(http_pipe(channels, target, log=log), clock)
            await run_to_end(runner, clock, step=0.05)
        finally:
            output.close()
            structlog.reset_defaults()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    (failed,) = [line for line in lines if line["event"] == "event_failed"]
    assert failed["stage"] == "target" and "HTTP 422" in failed["error"]
    (dead,) = [line for line in lines if line["event"] == "event_dead_lettered"]
    if not include:
        assert "execution_data" not in failed and "ann@example.com" not in stream.getvalue()
        assert dead["error"] == {
            "type": "HttpFatalError",
            "message": failed["error"].split(": ", 1)[1],
            "status": 422,
        }
        return
    assert "ann@example.com" in dead["error"]["body"]
    data = failed["execution_data"]
    assert data["request"] == {
        "method": "POST",
        "url": f"{server.url}/customers",
        "headers": {"X-Api-Key": "**********", "X-Tenant": "shop", "Content-Type": "application/json"},
    }
    response = data["response"]
    assert response["status"] == 422
    assert response["headers"]["X-Trace"] == "t-1" and response["headers"]["Set-Cookie"] == "**********"
    assert json.loads(response["body"]) == {
        "error": "no such customer ann@example.com",
        "echo": "Bearer **********",
    }
    for secret in ("tok-abcdef", "k-123456", "s3cr3t", "in-query"):
        assert secret not in stream.getvalue()


async def test_retry_on_and_fail_on_override_the_defaults() -> None:
    async with Recorder() as server:
        server.respond = lambda seen: web.Response(status=int(seen.path.strip("/")))
        target = await open_target(url=server.url + "/<$.body>", retry_on=[409], fail_on=[503])
        try:
            outcomes = await target.write(events("409", "503", "404", "502", "204", "301"))
        finally:
            await target.stop()
    kinds = [type(o).__name__ if o is not None else None for o in outcomes]
    assert kinds == [
        "HttpRetryableError",
        "HttpFatalError",
        "HttpFatalError",
        "HttpRetryableError",
        None,
        "HttpFatalError",
    ]


async def test_a_server_that_hangs_hits_the_timeout() -> None:
    async with Recorder() as server:
        server.respond = server.hang
        target = await open_target(url=server.url + "/x", timeout="200ms")
        try:
            began = time.monotonic()
            [outcome] = await target.write(events({"a": 1}))
            took = time.monotonic() - began
        finally:
            await target.stop()
    assert isinstance(outcome, HttpRetryableError)
    assert str(outcome) == f"POST {server.url}/x: no answer within 0.2s"
    assert 0.2 <= took < 5


async def test_an_unreachable_server_is_retryable_and_a_bad_rendered_url_fatal() -> None:
    target = await open_target(url="http://127.0.0.1:9/<$.body.p>")  # port 9 (discard): nothing listens
    try:
        (refused,) = await target.write(events({"p": "x"}))
    finally:
        await target.stop()
    assert isinstance(refused, RetryableError)
    assert str(refused).startswith("POST http://127.0.0.1:9/x: ClientConnectorError")
    bad = await open_target(url="<$.body.u>")
    try:
        [outcome] = await bad.write(events({"u": "ftp://nope"}))
    finally:
        await bad.stop()
    assert isinstance(outcome, FatalError)
    assert "not an http(s) URL" in str(outcome)


# ------------------------------------------------------------------ rate limit


async def test_the_rate_limit_is_shared_by_all_lanes_and_never_exceeded(channels: dict[str, str]) -> None:
    # Powers of two: the clock's steps and the bucket's deadlines add up exactly in floating point.
    rate, burst, total, step = 8, 3, 40, 0.0625
    clock = ManualClock()
    for p in range(4):
        channel(channels["in"]).put(*({"p": p, "i": i} for i in range(total // 4)), partition=f"p{p}")
    async with Recorder(clock=clock) as server:
        pipe = http_pipe(
            channels,
            {"url": server.url + "/x", "rate_limit": {"rate": rate, "burst": burst}},
            batch={"size": 5, "window": "0ms"},
            concurrency=4,
        )
        runner = runner_for(pipe, clock)
        task = asyncio.create_task(runner.run())
        try:
            # The bucket starts full; from then on one token per 1/rate s. Each step waits
            # until every request the bucket allowed so far arrived, and checks no more did.
            elapsed = 0.0
            while len(server.seen) < total:
                allowed = min(total, burst + int(elapsed * rate))
                await wait_until(lambda n=allowed: len(server.seen) >= n, what=f"{allowed} requests")
                assert len(server.seen) == allowed, f"at {elapsed:.2f}s: {len(server.seen)} requests"
                await clock.advance(step)
                elapsed += step
            await asyncio.wait_for(task, 10)
        finally:
            task.cancel()
    times = sorted(s.at for s in server.seen)
    for start in times:
        in_second = sum(1 for t in times if start <= t < start + 1.0)
        assert in_second <= rate + burst
    assert runner.stats.delivered == total


# ------------------------------------------------------------------ TLS


@pytest.fixture
def tls_files(tmp_path: Path) -> dict[str, Any]:
    ca = trustme.CA()
    server_cert = ca.issue_cert("127.0.0.1")
    client_cert = ca.issue_cert("client.pipes.test")
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    client_cert.cert_chain_pems[0].write_to_path(str(tmp_path / "client.pem"))
    client_cert.private_key_pem.write_to_path(str(tmp_path / "client.key"))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_cert.configure_cert(context)
    ca.configure_trust(context)
    context.verify_mode = ssl.CERT_REQUIRED  # mutual TLS: a client without a certificate is refused
    return {"context": context, "dir": tmp_path}


async def test_mutual_tls_with_certificates_made_here(tls_files: dict[str, Any]) -> None:
    folder: Path = tls_files["dir"]
    async with Recorder(ssl_context=tls_files["context"]) as server:
        tls = {
            "ca_file": str(folder / "ca.pem"),
            "cert_file": str(folder / "client.pem"),
            "key_file": str(folder / "client.key"),
        }
        target = await open_target(url=server.url + "/x", tls=tls)
        try:
            assert await target.write(events({"a": 1})) == [None]
        finally:
            await target.stop()
        anonymous = await open_target(url=server.url + "/x", tls={"ca_file": str(folder / "ca.pem")})
        try:
            [refused] = await anonymous.write(events({"a": 2}))
        finally:
            await anonymous.stop()
        untrusting = await open_target(url=server.url + "/x")
        try:
            [unknown_ca] = await untrusting.write(events({"a": 3}))
        finally:
            await untrusting.stop()
        unverified = {"verify": False, "cert_file": tls["cert_file"], "key_file": tls["key_file"]}
        lenient = await open_target(url=server.url + "/x", tls=unverified)  # no ca_file: trusts anyone
        try:
            assert await lenient.write(events({"a": 4})) == [None]
        finally:
            await lenient.stop()
    assert [s.json() for s in server.seen] == [{"a": 1}, {"a": 4}]
    assert isinstance(refused, RetryableError)
    assert isinstance(unknown_ca, RetryableError) and "certificate" in str(unknown_ca).lower()


async def test_unloadable_certificates_fail_the_start(tmp_path: Path) -> None:
    target = HttpTarget(
        HttpTargetOptions.model_validate(
            {
                "url": "https://127.0.0.1/x",
                "tls": {"cert_file": str(tmp_path / "no.pem"), "key_file": str(tmp_path / "no.key")},
            }
        )
    )
    with pytest.raises(FatalError, match=r"^tls: cannot load certificates: "):
        await target.start(ConnectorContext(pipe="t"))
    await target.stop()


# ------------------------------------------------------------------ options


def test_options_refuse_mistakes_in_one_line() -> None:
    def error(**options: Any) -> str:
        with pytest.raises(ValueError) as caught:
            HttpTargetOptions.model_validate({"url": "https://a/x", **options})
        return " ".join(str(caught.value).split())

    assert "auth kind basic needs password" in error(auth={"kind": "basic", "username": "u"})
    assert "auth kind bearer does not use username" in error(
        auth={"kind": "bearer", "token": "t", "username": "u"}
    )
    assert "status codes in both retry_on and fail_on: 409" in error(retry_on=[409], fail_on=[409])
    assert "not HTTP status codes: 99" in error(retry_on=[99])
    assert "cert_file and key_file go together" in error(tls={"cert_file": "c.pem"})
    oauth = {"kind": "oauth_client_credentials", "client_id": "a", "client_secret": "s"}
    assert "token_url must start with http" in error(auth={**oauth, "token_url": "auth.example.com/token"})
    with pytest.raises(ValueError, match="url must start with http"):
        HttpTargetOptions.model_validate({"url": "ftp://a/x"})
    secret = HttpTargetOptions.model_validate(
        {"url": "https://a", "auth": {"kind": "bearer", "token": "T0KEN"}}
    )
    assert "T0KEN" not in repr(secret) + str(secret) + secret.model_dump_json()
    for name, field in HttpTargetOptions.model_fields.items():
        assert field.description, name


async def test_conformance() -> None:
    from pipes.conformance import check_target

    async with Recorder() as server:
        await check_target(lambda: HttpTarget(HttpTargetOptions(url=server.url + "/c")))
