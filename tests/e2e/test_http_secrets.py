"""Secrets given as ``${VAR}`` never show: not in logs (TRACE included), ``pipes status``, the admin API or dead letters.

One ``pipes run`` with every kind of HTTP credential, against a server that
refuses some requests and echoes the credentials it got back in its error
pages (as careless APIs do), and a webhook that gets requests with wrong and
right credentials. Everything the process wrote or answered is searched for
the secrets.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from http_kit import Recorder, Seen

pytestmark = pytest.mark.e2e

PIPES = str(Path(sys.executable).parent / "pipes")

SECRETS = {
    "API_PASSWORD": "pw-S3cret-1",
    "API_KEY": "key-S3cret-2",
    "API_TOKEN": "tok-S3cret-3",
    "CLIENT_SECRET": "client-S3cret-4",
    "HOOK_TOKEN": "hook-S3cret-5",
    "GITHUB_SECRET": "gh-S3cret-6",
    "ECHO_SECRET": "echo-S3cret-8",
    "SW_SECRET": "whsec_" + base64.b64encode(b"sw-S3cret-9").decode(),
}
ACCESS_TOKEN = "access-S3cret-7"
BASIC = base64.b64encode(b"ann:pw-S3cret-1").decode()
ECHO_BASIC = base64.b64encode(b"app:echo-S3cret-8").decode()


def target_pipe(name: str, url: str, auth: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "source": {"type": "generator", "count": 6},
        "target": {"type": "http", "url": url + f"/api/{name}?n=<$.index>", "auth": auth},
        "dead_letter": {"type": "file", "path": f"dlq-{name}.jsonl"},
        "retry": {"max_attempts": 2, "backoff_initial": "10ms", "backoff_max": "10ms"},
        "log_level": "TRACE",
    }


async def test_no_secret_shows_anywhere(tmp_path: Path) -> None:
    async with Recorder() as server:

        def respond(seen: Seen) -> web.StreamResponse:
            if seen.path == "/token":
                return web.json_response({"access_token": ACCESS_TOKEN, "expires_in": 3600})
            if seen.path == "/token-refused":  # a token endpoint that echoes the credentials it refuses
                said = f"refused {seen.headers.get('Authorization')}"
                return web.json_response({"error": "invalid_client", "error_description": said}, status=401)
            echoed = {k: v for k, v in seen.headers.items() if k.lower() in ("authorization", "x-api-key")}
            if int(seen.query["n"]) % 2:  # every other event is refused, the credentials echoed back
                return web.json_response({"error": "refused", "you_sent": echoed}, status=400)
            if int(seen.query["n"]) == 4:
                return web.json_response({"error": "flaky", "you_sent": echoed}, status=503)
            return web.json_response({})

        server.respond = respond
        pipes = [
            target_pipe(
                "basic", server.url, {"kind": "basic", "username": "ann", "password": "${API_PASSWORD}"}
            ),
            target_pipe(
                "apikey", server.url, {"kind": "api_key", "header": "X-Api-Key", "value": "${API_KEY}"}
            ),
            target_pipe("bearer", server.url, {"kind": "bearer", "token": "${API_TOKEN}"}),
            target_pipe(
                "oauth",
                server.url,
                {
                    "kind": "oauth_client_credentials",
                    "token_url": server.url + "/token",
                    "client_id": "app",
                    "client_secret": "${CLIENT_SECRET}",
                },
            ),
            target_pipe(
                "oauth-echo",
                server.url,
                {
                    "kind": "oauth_client_credentials",
                    "token_url": server.url + "/token-refused",
                    "client_id": "app",
                    "client_secret": "${ECHO_SECRET}",
                },
            ),
            {
                "name": "standard",
                "source": {
                    "type": "webhook",
                    "listen": "127.0.0.1:0",
                    "paths": ["/standard"],
                    "auth": {"kind": "standard_webhooks", "secrets": ["${SW_SECRET}"]},
                },
                "target": {"type": "file", "path": "standard.jsonl"},
                "log_level": "TRACE",
            },
            {
                "name": "hook",
                "source": {
                    "type": "webhook",
                    "listen": "127.0.0.1:0",
                    "paths": ["/hook"],
                    "auth": {"kind": "bearer", "tokens": ["${HOOK_TOKEN}"]},
                },
                "target": {"type": "file", "path": "hook.jsonl"},
                "log_level": "TRACE",
            },
            {
                "name": "github",
                "source": {
                    "type": "webhook",
                    "listen": "127.0.0.1:0",
                    "paths": ["/github"],
                    "auth": {"kind": "github", "secrets": ["${GITHUB_SECRET}"]},
                },
                "target": {"type": "file", "path": "github.jsonl"},
                "log_level": "TRACE",
            },
        ]
        (tmp_path / "pipes.yaml").write_text(json.dumps({"pipes": pipes}))
        with (tmp_path / "stderr.log").open("wb") as stderr:
            process = await asyncio.create_subprocess_exec(
                PIPES,
                "run",
                "--no-progress",
                "--admin",
                "127.0.0.1:0",
                "--state-dir",
                "state",
                "pipes.yaml",
                cwd=tmp_path,
                env={**os.environ, **SECRETS, "PYTHONUNBUFFERED": "1"},
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
            )
        answers: list[str] = []
        try:
            log = tmp_path / "stderr.log"
            admin = await _found(log, r"admin API on (http://127\.0\.0\.1:\d+)")
            hook_base = await _found(log, r"address=(http://127\.0\.0\.1:\d+) paths=\['/hook'\]")
            github_base = await _found(log, r"address=(http://127\.0\.0\.1:\d+) paths=\['/github'\]")
            standard_base = await _found(log, r"address=(http://127\.0\.0\.1:\d+) paths=\['/standard'\]")
            async with aiohttp.ClientSession() as session:
                for token in ("wrong-token", SECRETS["HOOK_TOKEN"]):
                    async with session.post(
                        hook_base + "/hook", data=b'{"a": 1}', headers={"Authorization": f"Bearer {token}"}
                    ) as resp:
                        answers.append(f"{resp.status} {await resp.text()}")
                body = b'{"action": "opened"}'
                good = (
                    "sha256=" + hmac.new(SECRETS["GITHUB_SECRET"].encode(), body, hashlib.sha256).hexdigest()
                )
                for signature in ("sha256=00", good):
                    async with session.post(
                        github_base + "/github", data=body, headers={"X-Hub-Signature-256": signature}
                    ) as resp:
                        answers.append(f"{resp.status} {await resp.text()}")
                key = base64.b64decode(SECRETS["SW_SECRET"].removeprefix("whsec_"))
                stamp = str(int(time.time()))
                signed = f"msg_1.{stamp}.".encode() + body
                good = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
                for signature in ("v1,AAAA", good):
                    headers = {
                        "webhook-id": "msg_1",
                        "webhook-timestamp": stamp,
                        "webhook-signature": signature,
                    }
                    async with session.post(standard_base + "/standard", data=body, headers=headers) as resp:
                        answers.append(f"{resp.status} {await resp.text()}")
                assert [a[:3] for a in answers] == ["401", "200", "401", "200", "401", "200"]

                def dead_letters() -> int:
                    return sum(
                        len(p.read_text().splitlines()) for p in tmp_path.glob("dlq-*.jsonl") if p.exists()
                    )

                deadline = asyncio.get_running_loop().time() + 60
                while dead_letters() < 22:  # 3 refused + 1 retried-out per target pipe; 6 without a token
                    assert asyncio.get_running_loop().time() < deadline, "dead letters did not arrive"
                    await asyncio.sleep(0.05)
                names = [p["name"] for p in pipes]
                for path in (
                    "/pipes",
                    "/metrics",
                    "/systems",
                    "/rates",
                    *(f"/pipes/{name}" for name in names),
                    *(f"/pipes/{name}/definition" for name in names),
                    *(f"/pipes/{name}/dead-letters" for name in names),
                    *(f"/pipes/{name}/dead-letters/records" for name in names),
                ):
                    async with session.get(admin + path) as resp:
                        answers.append(await resp.text())
            status = await asyncio.create_subprocess_exec(
                PIPES,
                "status",
                "--admin",
                admin,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            shown, _ = await status.communicate()
            answers.append(shown.decode())
        finally:
            process.terminate()
            stdout, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, (tmp_path / "stderr.log").read_text()[-3000:]
    outputs = {
        "stderr": (tmp_path / "stderr.log").read_text(),
        "stdout": stdout.decode(),
        "answers": "\n".join(answers),
        **written(tmp_path, "*.jsonl"),
    }
    assert "webhook_unauthorized" in outputs["stderr"]  # refusals are logged, without credentials
    letters = [
        json.loads(line) for text in written(tmp_path, "dlq-*.jsonl").values() for line in text.splitlines()
    ]
    assert {letter["error"]["status"] for letter in letters} == {400, 401, 503}
    assert any("**********" in letter["error"]["body"] for letter in letters)  # the echo, blanked
    assert any(
        "refused Basic **********" in letter["error"]["message"] for letter in letters
    )  # the token echo
    raw_secrets = [base64.b64decode(SECRETS["SW_SECRET"].removeprefix("whsec_")).decode()]
    for secret in [*SECRETS.values(), ACCESS_TOKEN, BASIC, ECHO_BASIC, *raw_secrets]:
        for where, text in outputs.items():
            assert secret not in text, f"{secret} shows in {where}"


async def _found(log: Path, pattern: str, timeout_s: float = 30.0) -> str:
    import re

    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        text = read(log)
        match = re.search(pattern, text)
        if match:
            return match.group(1)
        assert asyncio.get_running_loop().time() < deadline, f"{pattern} not in the log:\n{text[-2000:]}"
        await asyncio.sleep(0.02)


def read(path: Path) -> str:
    return path.read_text()


def written(folder: Path, pattern: str) -> dict[str, str]:
    """The files of ``folder`` matching ``pattern``, by name."""
    return {path.name: path.read_text() for path in folder.glob(pattern)}
