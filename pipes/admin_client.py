"""``pipes status``, ``pipes stop NAME`` and ``pipes start NAME``: clients of the admin API.

A daemon that is not there is the common case (not started, started with
``--admin off``, another port), so it gets one line naming the address and
the likely fix, never a traceback.

The address is ``HOST:PORT`` or ``https://HOST:PORT`` for a daemon serving TLS
(its certificate is checked against the system's CAs, or the PEM file in
``PIPES_ADMIN_CA``). Requests that change something are sent as JSON, as the
API requires (``pipes.admin_guard``).
"""

from __future__ import annotations

import asyncio
import os
import ssl
import sys
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, TextIO

import aiohttp
import orjson

from pipes.admin import DEFAULT_ADMIN, TOKEN_ENV, parse_admin

#: PEM file of the CA that signed a TLS daemon's certificate (default: the system's CAs).
CA_ENV = "PIPES_ADMIN_CA"

__all__ = [
    "CA_ENV",
    "AdminError",
    "AdminUnreachable",
    "base_url",
    "call",
    "control",
    "format_table",
    "reload",
    "run_client",
    "server_sent_events",
    "status",
    "stream",
]


class AdminUnreachable(Exception):
    """No daemon answered at the address."""


class AdminError(Exception):
    """The daemon answered with an error."""


def base_url(address: str) -> str:
    """``HOST:PORT``, ``http://HOST:PORT`` or ``https://HOST:PORT`` to a base URL; ``ValueError`` if neither."""
    scheme = "http"
    for prefix in ("http://", "https://"):
        if address.startswith(prefix):
            scheme, address = prefix[:-3], address[len(prefix) :].rstrip("/")
    parsed = parse_admin(address)
    if parsed is None:
        raise ValueError("off: there is no API to ask")
    host, port = parsed
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}:{port}"


def _tls(ca_file: str | None) -> ssl.SSLContext | bool:
    if not ca_file:
        return True  # aiohttp's default: verify against the system's CAs
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise AdminError(
            f"{CA_ENV}={ca_file}: cannot load it: {getattr(exc, 'strerror', None) or exc}"
        ) from None


def _request(
    address: str, method: str, path: str, token: str | None, body: Any, ca_file: str | None
) -> tuple[str, dict[str, str], bytes | None, ssl.SSLContext | bool]:
    """URL, headers, body and TLS of one request: JSON for a request that changes something."""
    url = base_url(address) + path
    tls = _tls(ca_file if ca_file is not None else os.environ.get(CA_ENV))
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = None
    if method != "GET":
        headers["Content-Type"] = "application/json"
        data = orjson.dumps(body if body is not None else {})
    return url, headers, data, tls


def _certificate_error(exc: aiohttp.ClientConnectorCertificateError) -> AdminError:
    return AdminError(
        f"the daemon's TLS certificate is not trusted ({exc.certificate_error}); give its CA in {CA_ENV}=FILE"
    )


def _answer_error(status: int, body: bytes) -> AdminError:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return AdminError(f"HTTP {status}: not a pipes admin API answer")
    message = data.get("error") if isinstance(data, dict) else None
    return AdminError(f"HTTP {status}: {message or data}")


async def call(
    address: str,
    method: str,
    path: str,
    token: str | None,
    timeout_s: float = 5.0,
    ca_file: str | None = None,
    body: Any = None,
) -> Any:
    """One request to the API (``body``: the JSON a POST sends, ``{}`` by default); the decoded JSON answer."""
    url, headers, data, tls = _request(address, method, path, token, body, ca_file)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.request(method, url, headers=headers, data=data, ssl=tls) as response,
        ):
            answer = await response.read()
            status = response.status
    except aiohttp.ClientConnectorCertificateError as exc:
        raise _certificate_error(exc) from None
    except (aiohttp.ClientConnectionError, TimeoutError) as exc:
        raise AdminUnreachable(str(exc)) from None
    if status >= 400:
        raise _answer_error(status, answer)
    try:
        return orjson.loads(answer)
    except orjson.JSONDecodeError:
        raise AdminError(f"HTTP {status}: not a pipes admin API answer") from None


async def stream(
    address: str,
    method: str,
    path: str,
    token: str | None,
    body: Any = None,
    ca_file: str | None = None,
    connect_timeout_s: float = 5.0,
) -> AsyncGenerator[Any]:
    """A request whose answer is JSON lines (a redrive's progress, dead-letter records): each, decoded, as it comes."""
    url, headers, data, tls = _request(address, method, path, token, body, ca_file)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout_s, connect=connect_timeout_s)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.request(method, url, headers=headers, data=data, ssl=tls) as response,
        ):
            if response.status >= 400:
                raise _answer_error(response.status, await response.read())
            async for line in response.content:
                if line.strip():
                    try:
                        yield orjson.loads(line)
                    except orjson.JSONDecodeError:
                        raise AdminError("the daemon's answer broke off (not JSON lines)") from None
    except aiohttp.ClientConnectorCertificateError as exc:
        raise _certificate_error(exc) from None
    except aiohttp.ClientPayloadError:
        raise AdminError("the daemon's answer broke off") from None
    except (aiohttp.ClientConnectionError, TimeoutError) as exc:
        raise AdminUnreachable(str(exc)) from None


async def server_sent_events(
    address: str, path: str, token: str | None, idle_timeout_s: float = 30.0, ca_file: str | None = None
) -> AsyncIterator[tuple[str, bytes]]:
    """The events (name, data) of a ``text/event-stream`` answer, as they come.

    Ends when the daemon closes the stream; ``AdminUnreachable`` when it cannot
    be reached or stays silent for ``idle_timeout_s`` (it sends a comment every
    few seconds), ``AdminError`` when it answers with an error.
    """
    url = base_url(address) + path
    tls = _tls(ca_file if ca_file is not None else os.environ.get(CA_ENV))
    headers = {"Accept": "text/event-stream"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=5.0, sock_read=idle_timeout_s)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(url, headers=headers, ssl=tls) as response,
        ):
            if response.status >= 400:
                body = await response.read()
                try:
                    message = orjson.loads(body).get("error")
                except (orjson.JSONDecodeError, AttributeError):
                    message = None
                raise AdminError(f"HTTP {response.status}: {message or 'not a pipes admin API answer'}")
            # Parsed by hand: the format is four rules (event:, data:, ":" comments, a blank line
            # ends an event), and lines may be longer than aiohttp's readline allows.
            pending = b""
            name, data = "message", b""
            async for chunk in response.content.iter_any():
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    line = line.rstrip(b"\r")
                    if not line:
                        if data:
                            yield name, data
                        name, data = "message", b""
                    elif line.startswith(b"event:"):
                        name = line[6:].strip().decode()
                    elif line.startswith(b"data:"):
                        piece = line[5:].removeprefix(b" ")
                        data = data + b"\n" + piece if data else piece
    except aiohttp.ClientConnectorCertificateError as exc:
        raise AdminError(
            f"the daemon's TLS certificate is not trusted ({exc.certificate_error}); "
            f"give its CA in {CA_ENV}=FILE"
        ) from None
    except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError) as exc:
        raise AdminUnreachable(str(exc) or type(exc).__name__) from None


#: Counter columns of ``pipes status``: FILTERED and DROPPED beside RECEIVED and
#: DELIVERED, so that events the filter or the enrichment settled on purpose do
#: not read as lost.
COUNTER_COLUMNS = (
    ("RECEIVED", "received"),
    ("FILTERED", "filtered"),
    ("DROPPED", "dropped"),
    ("DELIVERED", "delivered"),
    ("FAILED", "failed"),
)


def format_table(pipes: list[dict[str, Any]]) -> list[str]:
    header = ("NAME", "STATE", "DESIRED", *(title for title, _ in COUNTER_COLUMNS), "REASON / LAST ERROR")
    rows = [header]
    for p in pipes:
        c = p.get("counters", {})
        rows.append(
            (
                str(p["name"]),
                str(p["state"]),
                str(p["desired_state"]),
                *(f"{c.get(key, 0):,}" for _, key in COUNTER_COLUMNS),
                " ".join(str(p.get("reason") or p.get("last_error") or "").split())[:80],
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
    numbers = range(3, 3 + len(COUNTER_COLUMNS))
    lines = []
    for row in rows:
        cells = [
            cell.rjust(w) if i in numbers else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row[:-1], widths, strict=True))
        ]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return lines


def _unreachable(command: str, address: str) -> str:
    return f"pipes {command}: no daemon at {address} (is `pipes run` running with --admin?)"


def run_client(command: str, address: str, coro: Any) -> int:
    """Run a client's coroutine; the daemon missing or answering with an error is one line and exit 1."""
    try:
        return int(asyncio.run(coro))
    except AdminUnreachable:
        print(_unreachable(command, address), file=sys.stderr)
    except AdminError as exc:
        print(f"pipes {command}: {exc}", file=sys.stderr)
    except ValueError as exc:
        print(f"pipes {command}: --admin {exc}", file=sys.stderr)
    return 1


def status(address: str | None = None, out: TextIO | None = None) -> int:
    address = address or DEFAULT_ADMIN
    stream = out or sys.stdout

    async def go() -> int:
        data = await call(address, "GET", "/pipes", os.environ.get(TOKEN_ENV))
        for line in format_table(list(data.get("pipes", []))):
            print(line, file=stream)
        return 0

    return run_client("status", address, go())


def control(verb: str, name: str, address: str | None = None, out: TextIO | None = None) -> int:
    """``verb`` is ``start`` or ``stop``."""
    address = address or DEFAULT_ADMIN
    stream = out or sys.stdout

    async def go() -> int:
        from urllib.parse import quote

        data = await call(address, "POST", f"/pipes/{quote(name, safe='')}/{verb}", os.environ.get(TOKEN_ENV))
        print(f"{data['name']}: desired {data['desired_state']} (now {data['state']})", file=stream)
        return 0

    return run_client(verb, address, go())


def reload(address: str | None = None, out: TextIO | None = None) -> int:
    """Ask the daemon to read its pipe files again; print what changed."""
    address = address or DEFAULT_ADMIN
    stream = out or sys.stdout

    async def go() -> int:
        data = await call(address, "POST", "/reload", os.environ.get(TOKEN_ENV))
        for key in ("added", "removed", "restarted"):
            if data.get(key):
                print(f"{key}: {', '.join(data[key])}", file=stream)
        print(f"unchanged: {len(data.get('unchanged', []))} pipe(s)", file=stream)
        return 0

    return run_client("reload", address, go())


def tap(
    name: str,
    address: str | None = None,
    *,
    stages: list[str] | None = None,
    where: str | None = None,
    limit: int | None = None,
    rate: float | None = None,
    out: TextIO | None = None,
) -> int:
    """``pipes tap``: print the tap's lines as JSON lines until it ends (or Ctrl-C).

    What it says about the tap itself (attached, lines dropped, why it ended)
    goes to stderr, so that stdout holds only tap lines.
    """
    from urllib.parse import quote, urlencode

    address = address or DEFAULT_ADMIN
    stream = out or sys.stdout
    query: list[tuple[str, str]] = [("stage", s) for s in stages or []]
    if where is not None:
        query.append(("where", where))
    if limit is not None:
        query.append(("limit", str(limit)))
    if rate is not None:
        query.append(("rate", f"{rate:g}"))
    path = f"/pipes/{quote(name, safe='')}/tap" + (f"?{urlencode(query)}" if query else "")

    async def go() -> int:
        attached = False
        try:
            async for event, data in server_sent_events(address, path, os.environ.get(TOKEN_ENV)):
                if event == "tap":
                    stream.write(data.decode() + "\n")
                    stream.flush()
                elif event == "attached":
                    attached = True
                    info = orjson.loads(data)
                    print(
                        f"pipes tap: attached to {info['pipe']} ({info['state']}), stages "
                        f"{', '.join(info['stages'])}",
                        file=sys.stderr,
                    )
                elif event == "dropped":
                    info = orjson.loads(data)
                    print(
                        f"pipes tap: {info['dropped']:,} lines dropped so far: this viewer is slower than "
                        "the pipe (narrow it with --stage or --where, or lower --rate)",
                        file=sys.stderr,
                    )
                elif event == "end":
                    info = orjson.loads(data)
                    if info.get("reason") != "limit":
                        print(f"pipes tap: the tap ended: {info.get('reason')}", file=sys.stderr)
                    return 0
        except AdminUnreachable:
            if not attached:
                raise
            print(f"pipes tap: the daemon at {address} went away", file=sys.stderr)
            return 1
        print(f"pipes tap: the daemon at {address} closed the stream", file=sys.stderr)
        return 1

    return run_client("tap", address, go())
