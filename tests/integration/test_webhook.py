"""The ``webhook`` source with a real aiohttp server, real HTTP senders and the real runner."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import trustme
from helpers import wait_until
from runner_kit import runner_for

from connectors.http.webhook import WebhookOptions, WebhookSource
from pipes.clock import ManualClock
from pipes.errors import FatalError, PipeFailed
from pipes.runner import PipeRunner
from pipes.testing import channel

pytestmark = pytest.mark.integration

OLD = "whsec_" + base64.b64encode(b"old-secret-0123456789").decode()
NEW = "whsec_" + base64.b64encode(b"new-secret-9876543210").decode()


def webhook_pipe(ch: dict[str, str], **source: Any) -> dict[str, Any]:
    extra = source.pop("pipe", {})
    return {
        "name": extra.pop("name", "hook"),
        "source": {"type": "webhook", "listen": "127.0.0.1:0", "paths": ["/in"], **source},
        "target": {"type": "memory", "channel": ch["out"]},
        "batch": {"size": 50, "window": "0ms"},
        "retry": {"max_attempts": 2, "backoff_initial": "10ms", "backoff_max": "20ms"},
        **extra,
    }


@contextlib.asynccontextmanager
async def running(definition: dict[str, Any], clock: ManualClock | None = None) -> AsyncIterator[PipeRunner]:
    runner = runner_for(definition, clock or ManualClock(), once=False)
    task = asyncio.create_task(runner.run())
    try:
        await wait_until(lambda: runner.state == "RUNNING" or task.done(), what="the pipe to run")
        if task.done():
            await task
        yield runner
    finally:
        runner.request_stop()
        await asyncio.wait_for(task, 10)


def url(runner: PipeRunner, path: str = "/in") -> str:
    source = runner.source
    assert isinstance(source, WebhookSource)
    return f"http://127.0.0.1:{source.port}{path}"


def standard_signature(secret: str, msg_id: str, stamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


async def post(
    session: aiohttp.ClientSession, where: str, body: bytes, **headers: str
) -> tuple[int, dict[str, str], bytes]:
    async with session.post(where, data=body, headers=headers) as resp:
        return resp.status, dict(resp.headers), await resp.read()


# ------------------------------------------------------------------ authentication


async def test_standard_webhooks_signatures_accepted_and_wrong_expired_replayed_refused(
    channels: dict[str, str],
) -> None:
    clock = ManualClock()
    auth = {"kind": "standard_webhooks", "secrets": [OLD, NEW], "tolerance": "5m"}
    async with (
        running(webhook_pipe(channels, auth=auth), clock) as runner,
        aiohttp.ClientSession() as session,
    ):
        where = url(runner)

        def signed(msg: str, body: bytes, secret: str = NEW, at: int | None = None) -> dict[str, str]:
            stamp = int(clock.wall()) if at is None else at
            return {
                "webhook-id": msg,
                "webhook-timestamp": str(stamp),
                "webhook-signature": standard_signature(secret, msg, stamp, body),
            }

        body = b'{"type": "order.created", "id": 1}'
        assert (await post(session, where, body, **signed("msg_1", body)))[0] == 200
        assert (await post(session, where, b'{"id": 2}', **signed("msg_2", b'{"id": 2}', OLD)))[0] == 200
        rotated = signed("msg_3", b'{"id": 3}')
        rotated["webhook-signature"] = "v1,AAAA " + rotated["webhook-signature"]
        assert (await post(session, where, b'{"id": 3}', **rotated))[0] == 200

        captured = signed("msg_8", body)
        assert (await post(session, where, body, **captured))[0] == 200
        await clock.advance(301)  # later, someone replays the captured request
        wrong = signed("msg_4", body, "whsec_" + base64.b64encode(b"someone else").decode())
        tampered = signed("msg_5", body)
        expired = signed("msg_6", body, at=int(clock.wall()) - 301)
        missing = {"webhook-id": "msg_7"}
        statuses = [
            (await post(session, where, body, **wrong))[0],
            (await post(session, where, body + b" ", **tampered))[0],
            (await post(session, where, body, **expired))[0],
            (await post(session, where, body, **missing))[0],
            (await post(session, where, body, **captured))[0],
        ]
        assert statuses == [401] * 5
        source = runner.source
        assert isinstance(source, WebhookSource)
        assert source.refused == {
            "wrong signature": 2,
            "webhook-timestamp outside the tolerance": 2,
            "missing webhook-id, webhook-timestamp or webhook-signature": 1,
        }
    written = [orjson.loads(p) if isinstance(p, bytes) else p for p in channel(channels["out"]).written]
    assert [w["id"] for w in written] == [1, 2, 3, 1]


async def test_github_and_generic_hmac_signatures(channels: dict[str, str]) -> None:
    body = b'{"action": "opened"}'
    github = "sha256=" + hmac.new(b"gh-secret", body, hashlib.sha256).hexdigest()
    generic = base64.b64encode(hmac.new(b"k2", body, hashlib.sha512).digest()).decode()
    auth_gh = {"kind": "github", "secrets": ["gh-secret"]}
    auth_generic = {
        "kind": "hmac",
        "secrets": ["k1", "k2"],
        "header": "X-Signature",
        "algorithm": "sha512",
        "encoding": "base64",
        "prefix": "v=",
    }
    async with aiohttp.ClientSession() as session:
        async with running(webhook_pipe(channels, auth=auth_gh)) as runner:
            assert (await post(session, url(runner), body, **{"X-Hub-Signature-256": github}))[0] == 200
            assert (await post(session, url(runner), body, **{"X-Hub-Signature-256": github.upper()}))[
                0
            ] == 401
            assert (await post(session, url(runner), body + b"!", **{"X-Hub-Signature-256": github}))[
                0
            ] == 401
            assert (await post(session, url(runner), body))[0] == 401
        async with running(webhook_pipe(channels, auth=auth_generic)) as runner:
            assert (await post(session, url(runner), body, **{"X-Signature": "v=" + generic}))[0] == 200
            assert (await post(session, url(runner), body, **{"X-Signature": generic}))[0] == 401
    assert len(channel(channels["out"]).written) == 2


async def test_bearer_tokens_any_of_several(channels: dict[str, str]) -> None:
    auth = {"kind": "bearer", "tokens": ["current-token", "next-token"]}
    async with running(webhook_pipe(channels, auth=auth)) as runner, aiohttp.ClientSession() as session:
        ok = [
            (await post(session, url(runner), b"{}", Authorization=f"Bearer {t}"))[0]
            for t in ("current-token", "next-token")
        ]
        refused = [
            (await post(session, url(runner), b"{}", Authorization="Bearer stale"))[0],
            (await post(session, url(runner), b"{}", Authorization="current-token"))[0],
            (await post(session, url(runner), b"{}"))[0],
        ]
    assert ok == [200, 200] and refused == [401, 401, 401]


# ------------------------------------------------------------------ the record


async def test_the_record_layout_and_text_bodies(channels: dict[str, str]) -> None:
    clock = ManualClock()
    pipe = webhook_pipe(channels, auth={"kind": "bearer", "tokens": ["t"]})
    async with running(pipe, clock) as runner, aiohttp.ClientSession() as session:
        async with session.post(
            url(runner) + "?shop=eu&tag=a&tag=b",
            data=b'{"order": 7}',
            headers={
                "Authorization": "Bearer t",
                "X-Shop": "eu-1",
                "Cookie": "sid=1",
                "Content-Type": "application/json",
            },
        ) as resp:
            assert resp.status == 200
            assert await resp.json() == {"status": "delivered"}
        assert (await post(session, url(runner), b"not json {", Authorization="Bearer t"))[0] == 200
    first, second = channel(channels["out"]).written_events
    record = first.record
    assert record["method"] == "POST" and record["path"] == "/in"
    assert record["query"] == {"shop": "eu", "tag": ["a", "b"]}
    assert record["body"] == {"order": 7}
    assert record["remote"] == "127.0.0.1"
    assert record["received_at"] == "2023-11-14T22:13:20.000Z"  # the manual clock's wall time
    assert record["headers"]["x-shop"] == "eu-1"
    assert record["headers"]["content-type"] == "application/json"
    assert not {"authorization", "cookie"} & set(record["headers"])
    assert first.payload_bytes() == b'{"order": 7}'  # the sender's bytes, untouched
    assert second.record["body"] == "not json {"


async def test_invalid_json_is_filtered_out_by_a_pattern_but_still_acknowledged(
    channels: dict[str, str],
) -> None:
    pipe = webhook_pipe(channels, pipe={"filter": [{"body": {"kind": ["order"]}}]})
    async with running(pipe) as runner, aiohttp.ClientSession() as session:
        statuses = [
            (await post(session, url(runner), b"kind=order"))[0],
            (await post(session, url(runner), b'{"kind": "order"}'))[0],
        ]
        assert runner.stats.filtered == 1
    assert statuses == [200, 200]
    assert channel(channels["out"]).written == [{"kind": "order"}]


async def test_methods_sizes_and_paths(channels: dict[str, str]) -> None:
    async with (
        running(webhook_pipe(channels, max_body_bytes=16)) as runner,
        aiohttp.ClientSession() as session,
    ):
        async with session.get(url(runner)) as resp:
            assert resp.status == 405 and resp.headers["Allow"] == "POST"
        assert (await post(session, url(runner), b"x" * 17))[0] == 413

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(5):
                yield b"xxxxx"

        async with session.post(url(runner), data=chunks()) as resp:  # chunked: no Content-Length
            assert resp.status == 413
        assert (await post(session, url(runner, "/elsewhere"), b"{}"))[0] == 404
        assert (await post(session, url(runner), b"x" * 16))[0] == 200
    assert channel(channels["out"]).written == ["x" * 16]


# ------------------------------------------------------------------ acknowledgement is delivery


async def test_a_request_is_answered_only_after_the_target_has_its_event(channels: dict[str, str]) -> None:
    out = channel(channels["out"])
    out.hold = asyncio.Event()
    async with running(webhook_pipe(channels)) as runner, aiohttp.ClientSession() as session:
        sent = asyncio.create_task(post(session, url(runner), b'{"n": 1}'))
        await wait_until(lambda: out.writes == 1, what="the target to be called")
        assert not sent.done(), "answered before the target had the event"
        assert out.written == []
        seen_at_answer: list[Any] = []
        sent.add_done_callback(lambda _: seen_at_answer.extend(out.written))
        out.hold.set()
        status, _, _ = await sent
    assert status == 200
    assert seen_at_answer == [{"n": 1}]


async def test_a_blocked_target_gets_503_after_ack_timeout_and_the_retry_is_delivered(
    channels: dict[str, str],
) -> None:
    clock = ManualClock()
    out = channel(channels["out"])
    out.hold = asyncio.Event()
    pipe = webhook_pipe(channels, ack_timeout="5s", retry_after="3s")
    async with running(pipe, clock) as runner, aiohttp.ClientSession() as session:
        first = asyncio.create_task(post(session, url(runner), b'{"n": 1}'))
        await wait_until(lambda: out.writes == 1, what="the target to be called")
        await clock.advance(4.9)
        assert not first.done()
        await clock.advance(0.2)
        status, headers, _ = await first
        assert (status, headers["Retry-After"]) == (503, "3")
        retry = asyncio.create_task(post(session, url(runner), b'{"n": 1}'))  # the sender tries again
        source = runner.source
        assert isinstance(source, WebhookSource)
        await wait_until(lambda: source.accepted == 2, what="the retry to arrive")
        out.hold.set()  # the target recovers
        status, _, _ = await retry
    assert status == 200
    assert out.written == [{"n": 1}, {"n": 1}]  # at least once: the first attempt was delivered too
    assert source.timed_out == 1


async def test_dead_lettered_events_get_202_and_filtered_ones_200(channels: dict[str, str]) -> None:
    from pipes.errors import FatalError as Refused

    out = channel(channels["out"])
    out.fail = lambda event: Refused("no") if event.body.get("bad") else None
    pipe = webhook_pipe(
        channels,
        pipe={
            "dead_letter": {"type": "memory", "channel": channels["dlq"]},
            "filter": [{"body": {"kind": ["x"]}}],
        },
    )
    async with running(pipe) as runner, aiohttp.ClientSession() as session:
        answers = [
            await post(session, url(runner), b'{"kind": "x", "bad": true}'),
            await post(session, url(runner), b'{"kind": "y"}'),
            await post(session, url(runner), b'{"kind": "x"}'),
        ]
    assert [(a[0], orjson.loads(a[2])) for a in answers] == [
        (202, {"status": "dead_lettered"}),
        (200, {"status": "delivered"}),
        (200, {"status": "delivered"}),
    ]
    assert len(channel(channels["dlq"]).written) == 1


async def test_429_when_the_in_flight_bound_is_full(channels: dict[str, str]) -> None:
    out = channel(channels["out"])
    out.hold = asyncio.Event()
    pipe = webhook_pipe(channels, pipe={"max_in_flight": 2})
    async with running(pipe) as runner, aiohttp.ClientSession() as session:
        held = [asyncio.create_task(post(session, url(runner), b'{"n": %d}' % i)) for i in range(2)]
        source = runner.source
        assert isinstance(source, WebhookSource)
        await wait_until(lambda: source.accepted == 2, what="two requests in flight")
        status, headers, _ = await post(session, url(runner), b'{"n": 3}')
        assert (status, headers["Retry-After"]) == (429, "5")
        out.hold.set()
        assert [(await h)[0] for h in held] == [200, 200]
    assert source.too_busy == 1


async def test_a_stopping_pipe_answers_503_to_new_requests_and_settles_the_pulled_ones(
    channels: dict[str, str],
) -> None:
    out = channel(channels["out"])
    out.hold = asyncio.Event()
    runner = runner_for(webhook_pipe(channels), ManualClock(), once=False)
    task = asyncio.create_task(runner.run())
    await wait_until(lambda: runner.state == "RUNNING")
    async with aiohttp.ClientSession() as session:
        where = url(runner)
        pulled = asyncio.create_task(post(session, where, b'{"n": 1}'))
        await wait_until(lambda: out.writes == 1, what="the event in the target")
        runner.request_stop()
        await wait_until(lambda: runner.source.closing, what="the source to notice")  # type: ignore[attr-defined]
        status, headers, _ = await post(session, where, b'{"n": 2}')
        assert (status, headers["Retry-After"]) == (503, "5")
        out.hold.set()
        assert (await pulled)[0] == 200
        await asyncio.wait_for(task, 10)
    assert out.written == [{"n": 1}]


async def test_abandoned_requests_are_answered_503_when_the_pipe_stops(channels: dict[str, str]) -> None:
    out = channel(channels["out"])
    out.hold = asyncio.Event()
    runner = runner_for(webhook_pipe(channels), ManualClock(), once=False)
    task = asyncio.create_task(runner.run())
    await wait_until(lambda: runner.state == "RUNNING")
    async with aiohttp.ClientSession() as session:
        pulled = asyncio.create_task(post(session, url(runner), b'{"n": 1}'))
        await wait_until(lambda: out.writes == 1, what="the event in the target")
        runner.abandon()
        assert (await pulled)[0] == 503
        await asyncio.wait_for(task, 10)


async def test_fifty_concurrent_senders_lose_nothing(channels: dict[str, str]) -> None:
    per_sender = 20
    pipe = webhook_pipe(channels, partition_key="<$.body.sender>", partitions=8, pipe={"max_in_flight": 64})
    answered: list[tuple[int, int]] = []
    async with running(pipe) as runner, aiohttp.ClientSession() as session:
        where = url(runner)

        async def sender(s: int) -> None:
            for i in range(per_sender):
                body = orjson.dumps({"sender": s, "i": i})
                while True:  # a webhook sender retries until it gets a 2xx
                    status, _, _ = await post(session, where, body)
                    if status == 200:
                        answered.append((s, i))
                        break
                    assert status in (429, 503), status
                    await asyncio.sleep(0.005)

        await asyncio.wait_for(asyncio.gather(*(sender(s) for s in range(50))), 60)
    written = channel(channels["out"]).written_events
    got = [(e.body["sender"], e.body["i"]) for e in written]
    assert sorted(set(got)) == sorted(answered) == [(s, i) for s in range(50) for i in range(per_sender)]
    for s in range(50):  # each sender's events in order, all in one partition
        mine = [e for e in written if e.body["sender"] == s]
        assert [e.body["i"] for e in mine] == sorted(e.body["i"] for e in mine)
        assert len({e.partition for e in mine}) == 1


# ------------------------------------------------------------------ the shared server


async def test_pipes_share_one_listener_by_path(channels: dict[str, str], unique: str) -> None:
    other = {"out": f"other-{unique}"}
    a = webhook_pipe(channels, pipe={"name": "a"})
    async with running(a) as first, aiohttp.ClientSession() as session:
        port = first.source.port  # type: ignore[attr-defined]
        b = webhook_pipe(other, listen=f"127.0.0.1:{port}", paths=["/other"], pipe={"name": "b"})
        async with running(b) as second:
            assert second.source.port == port  # type: ignore[attr-defined]
            assert (await post(session, f"http://127.0.0.1:{port}/in", b'{"to": "a"}'))[0] == 200
            assert (await post(session, f"http://127.0.0.1:{port}/other", b'{"to": "b"}'))[0] == 200
            # A second pipe for the same path waits (FAILED, retrying) until the path is free.
            clash = runner_for(
                webhook_pipe(channels, listen=f"127.0.0.1:{port}", pipe={"name": "c"}), once=False
            )
            waiting = asyncio.create_task(clash.run())
            await wait_until(lambda: clash.last_error is not None, what="the clash to show")
            assert clash.state == "FAILED"
            assert clash.last_error == (
                f"RetryableError: webhook path /in on 127.0.0.1:{port} is already served by pipe a"
            )
            clash.request_stop()
            await asyncio.wait_for(waiting, 10)
        assert (await post(session, f"http://127.0.0.1:{port}/other", b"{}"))[0] == 404
        assert (await post(session, f"http://127.0.0.1:{port}/in", b'{"to": "a"}'))[0] == 200
    assert channel(channels["out"]).written == [{"to": "a"}, {"to": "a"}]
    assert channel(other["out"]).written == [{"to": "b"}]
    with pytest.raises(aiohttp.ClientConnectionError):
        async with aiohttp.ClientSession() as session:
            await post(session, f"http://127.0.0.1:{port}/in", b"{}")


async def test_https_with_certificates_made_here(channels: dict[str, str], tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "server.pem"))
    cert.private_key_pem.write_to_path(str(tmp_path / "server.key"))
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "chain.pem"))
    pipe = webhook_pipe(
        channels, tls_cert_file=str(tmp_path / "chain.pem"), tls_key_file=str(tmp_path / "server.key")
    )
    client = ssl.create_default_context()
    ca.configure_trust(client)
    async with running(pipe) as runner, aiohttp.ClientSession() as session:
        where = url(runner).replace("http://", "https://")
        async with session.post(where, data=b'{"secure": true}', ssl=client) as resp:
            assert resp.status == 200
    assert channel(channels["out"]).written == [{"secure": True}]


async def test_a_webhook_cannot_run_once(channels: dict[str, str]) -> None:
    with pytest.raises(PipeFailed, match="cannot run with --once"):
        await runner_for(webhook_pipe(channels), once=True).run()


def test_options_refuse_mistakes() -> None:
    def error(**options: Any) -> str:
        with pytest.raises(ValueError) as caught:
            WebhookOptions.model_validate({"paths": ["/in"], **options})
        return " ".join(str(caught.value).split())

    assert "listen must be host:port" in error(listen="8080")
    assert "a path starts with /" in error(paths=["in"])
    assert "auth kind bearer needs tokens" in error(auth={"kind": "bearer"})
    assert "auth kind hmac needs header" in error(auth={"kind": "hmac", "secrets": ["s"]})
    assert "secrets[0] is not a whsec_<base64> secret" in error(
        auth={"kind": "standard_webhooks", "secrets": ["whsec_!!"]}
    )
    assert "tls_cert_file and tls_key_file go together" in error(tls_cert_file="c.pem")
    secret = WebhookOptions.model_validate(
        {"paths": ["/in"], "auth": {"kind": "github", "secrets": ["S3CR3T"]}}
    )
    assert "S3CR3T" not in repr(secret) + str(secret) + secret.model_dump_json()
    for name, field in WebhookOptions.model_fields.items():
        assert field.description, name


async def test_an_unusable_address_is_retried_and_bad_tls_files_fail(
    channels: dict[str, str], tmp_path: Path
) -> None:
    source = WebhookSource(
        WebhookOptions.model_validate(
            {
                "listen": "127.0.0.1:0",
                "paths": ["/x"],
                "tls_cert_file": str(tmp_path / "no.pem"),
                "tls_key_file": str(tmp_path / "no.key"),
            }
        )
    )
    from pipes.connector import SourceContext

    with pytest.raises(FatalError, match="cannot load tls_cert_file/tls_key_file"):
        await source.start(SourceContext(pipe="t"))
    await source.stop()


async def test_requests_answered_503_while_the_pipe_is_full_are_not_kept(channels: dict[str, str]) -> None:
    # A target that stays down fills the in-flight bound; senders keep retrying. Each
    # request that timed out unread is the sender's to send again: the source keeps none.
    clock = ManualClock()
    out = channel(channels["out"])
    out.hold = asyncio.Event()
    pipe = webhook_pipe(channels, ack_timeout="1s", pipe={"max_in_flight": 2})
    async with running(pipe, clock) as runner, aiohttp.ClientSession() as session:
        source = runner.source
        assert isinstance(source, WebhookSource)
        try:
            for round_ in range(10):
                sent = [
                    asyncio.create_task(post(session, url(runner), b'{"n": %d}' % (2 * round_ + i)))
                    for i in range(2)
                ]
                await wait_until(lambda r=round_: source.accepted == 2 * r + 2, what="two requests queued")
                await clock.advance(1.1)
                assert [(await s)[0] for s in sent] == [503, 503]
            queued = sum(source.lag().values())  # type: ignore[union-attr]
        finally:
            out.hold.set()
    assert queued == 0
    assert out.written == [{"n": 0}, {"n": 1}]  # the two the target held; none of the 503s after them
