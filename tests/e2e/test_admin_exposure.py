"""``pipes run --admin``: off loopback only with a token or --admin-insecure; HTTPS with --admin-tls-*."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import trustme
from helpers import wait_until_sync

PIPES = str(Path(sys.executable).parent / "pipes")

pytestmark = pytest.mark.e2e


def config(tmp_path: Path, count: str = "1") -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(
        f"name: p\nsource: {{type: generator, count: {count}}}\ntarget: {{type: file, path: out.jsonl}}\n"
    )
    return path


def run(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "PIPES_ADMIN_TOKEN"}
    return subprocess.run(
        [PIPES, "run", "--once", "--no-progress", *args, str(config(tmp_path))],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={**environ, **(env or {})},
        check=False,
    )


def test_an_open_network_address_without_a_token_refuses_to_start(tmp_path: Path) -> None:
    refused = run(tmp_path, "--admin", "0.0.0.0:0")
    assert refused.returncode == 2
    assert refused.stderr == (
        "pipes run: --admin 0.0.0.0:0: the admin API on 0.0.0.0 would be open to the network without a "
        "token: set PIPES_ADMIN_TOKEN (clients send it as a bearer token), or give --admin-insecure to "
        "serve it without one\n"
    )
    assert not (tmp_path / "out.jsonl").exists()
    insecure = run(tmp_path, "--admin", "0.0.0.0:0", "--admin-insecure")
    assert insecure.returncode == 0, insecure.stderr
    with_token = run(tmp_path, "--admin", "0.0.0.0:0", env={"PIPES_ADMIN_TOKEN": "t"})
    assert with_token.returncode == 0, with_token.stderr


def test_tls_options_go_together_and_must_load(tmp_path: Path) -> None:
    alone = run(tmp_path, "--admin", "127.0.0.1:0", "--admin-tls-cert", "cert.pem")
    assert alone.returncode == 2
    assert alone.stderr == "pipes run: --admin-tls-cert and --admin-tls-key go together\n"
    missing = run(tmp_path, "--admin", "127.0.0.1:0", "--admin-tls-cert", "c.pem", "--admin-tls-key", "k.pem")
    assert missing.returncode == 2
    assert missing.stderr.startswith("pipes run: --admin-tls-cert: cannot load c.pem with k.pem: ")


def test_the_daemon_serves_https_and_pipes_status_reads_it(tmp_path: Path) -> None:
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1")
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    issued.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    issued.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    args = ["--admin", "127.0.0.1:0", "--admin-tls-cert", "cert.pem", "--admin-tls-key", "key.pem"]
    with (tmp_path / "stderr.log").open("wb") as err:
        proc = subprocess.Popen(
            [PIPES, "run", "--no-progress", *args, str(config(tmp_path, "null, rate: 100"))],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        found: list[str] = []

        def announced() -> bool:
            found[:] = re.findall(
                r"admin API on (https://127\.0\.0\.1:\d+)", (tmp_path / "stderr.log").read_text()
            )
            return bool(found)

        wait_until_sync(announced, timeout=30, what="the admin API")
        env = {**os.environ, "PIPES_ADMIN_CA": str(tmp_path / "ca.pem")}
        shown = subprocess.run(
            [PIPES, "status", "--admin", found[0]],
            capture_output=True,
            text=True,
            timeout=30,
            env=env,
            check=False,
        )
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout.splitlines()[1].split()[:2] == ["p", "RUNNING"]
        stopped = subprocess.run(
            [PIPES, "stop", "p", "--admin", found[0]],
            capture_output=True,
            text=True,
            timeout=30,
            env=env,
            check=False,
        )
        assert stopped.returncode == 0, stopped.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert proc.returncode == 0, (tmp_path / "stderr.log").read_text()
