"""One HTTP client per connector instance: connection pool, TLS, credentials, rate limit, outcomes.

Every request goes through ``HttpClient.send``, which takes a slot (at most
``max_connections`` requests in flight, all lanes together; the request's
``timeout`` starts only once it has one, so waiting for a slot or a rate-limit
token never times a request out), takes a rate-limit token, adds the
credentials, sends, and reads the answer: all of it for a 2xx (bounded), the
first KiB otherwise (for the dead letter). A 401 with OAuth credentials gets
one retry with a fresh token. Transport failures come back as errors, never
raised: the caller maps everything onto per-event outcomes.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from multidict import CIMultiDictProxy
from yarl import URL

from connectors.http.auth import Credentials, blank_secrets, credentials_for
from connectors.http.errors import (
    BODY_EXCERPT_BYTES,
    HttpFatalError,
    HttpRetryableError,
    StatusPolicy,
    safe_url,
)
from connectors.http.options import HttpClientOptions, TlsOptions
from connectors.http.ratelimit import TokenBucket
from pipes.clock import Clock
from pipes.errors import FatalError

__all__ = ["Answer", "HttpClient", "Request", "ssl_context"]

#: Header names whose values an execution log never shows (they carry credentials).
_SECRET_HEADER = re.compile(r"auth|cookie|token|secret|key|passw|signature", re.IGNORECASE)


@dataclass(slots=True)
class Request:
    """One request, rendered."""

    method: str
    url: URL
    headers: dict[str, str] = field(default_factory=dict)
    data: bytes | None = None

    @property
    def what(self) -> str:
        """Method and URL for messages (no query, no user info)."""
        return f"{self.method} {safe_url(self.url)}"


@dataclass(slots=True)
class Answer:
    """What the server said: status, headers, and the body (whole for a 2xx, else its first KiB)."""

    status: int
    headers: CIMultiDictProxy[str]
    body: bytes
    #: The 2xx body was longer than the client reads; ``body`` is its start.
    truncated: bool = False

    def excerpt(self) -> str:
        return self.body[:BODY_EXCERPT_BYTES].decode("utf-8", errors="replace")


def ssl_context(tls: TlsOptions | None) -> ssl.SSLContext | bool:
    """The TLS context of ``tls`` (True: the default context). ``FatalError`` when a file does not load."""
    if tls is None:
        return True
    try:
        context = ssl.create_default_context(cafile=tls.ca_file)
        if tls.cert_file is not None:
            context.load_cert_chain(tls.cert_file, tls.key_file)
    except (OSError, ssl.SSLError) as exc:
        raise FatalError(f"tls: cannot load certificates: {exc}") from None
    if not tls.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class HttpClient:
    def __init__(self, options: HttpClientOptions, clock: Clock, max_body_bytes: int = 1 << 20) -> None:
        self.options = options
        self.clock = clock
        self.max_body_bytes = max_body_bytes
        self.policy = StatusPolicy(options.retry_on, options.fail_on)
        self._session: aiohttp.ClientSession | None = None
        self._credentials: Credentials | None = None
        self._slots = asyncio.Semaphore(options.max_connections)
        limit = options.rate_limit
        self._bucket = TokenBucket(limit.rate, limit.burst, clock) if limit is not None else None

    @property
    def credentials(self) -> Credentials | None:
        return self._credentials

    async def open(self) -> None:
        options = self.options
        connector = aiohttp.TCPConnector(limit=options.max_connections, ssl=ssl_context(options.tls))
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=options.timeout),
            auto_decompress=True,
            raise_for_status=False,
            skip_auto_headers=("Content-Type",),
        )
        self._credentials = credentials_for(options.auth, self._session, self.clock)

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def send(self, request: Request) -> Answer | HttpRetryableError | HttpFatalError:
        """The server's answer to ``request``, or the error that kept it from answering."""
        answer = await self._send(request)
        if not isinstance(answer, Answer) and answer.execution_data is None:
            answer.execution_data = self.exchange(request, None)
        return answer

    async def _send(self, request: Request) -> Answer | HttpRetryableError | HttpFatalError:
        session, credentials = self._session, self._credentials
        assert session is not None and credentials is not None, "send before open"
        async with self._slots:
            if self._bucket is not None:
                await self._bucket.take()
            try:
                sent = await credentials.headers()
                answer = await self._exchange(session, request, sent)
                if answer.status == 401 and await credentials.refresh(sent):
                    if self._bucket is not None:
                        await self._bucket.take()
                    answer = await self._exchange(session, request, await credentials.headers())
            except (HttpRetryableError, HttpFatalError) as exc:
                return exc
            except TimeoutError:
                return HttpRetryableError(f"{request.what}: no answer within {self.options.timeout:g}s")
            except aiohttp.InvalidURL:
                return HttpFatalError(f"{request.what}: invalid URL")
            except aiohttp.ClientError as exc:
                return HttpRetryableError(f"{request.what}: {type(exc).__name__}: {_short(exc)}")
            except ValueError as exc:  # aiohttp refuses a header value (a newline in it, say)
                return HttpFatalError(f"{request.what}: {exc}")
        return answer

    async def _exchange(
        self, session: aiohttp.ClientSession, request: Request, credentials: Mapping[str, str]
    ) -> Answer:
        headers = {**request.headers, **credentials} if credentials else request.headers
        async with session.request(
            request.method,
            request.url,
            headers=headers,
            data=request.data,
            allow_redirects=self.options.follow_redirects,
        ) as resp:
            if 200 <= resp.status < 300:
                body, truncated = await _read(resp, self.max_body_bytes)
            else:
                body, truncated = await _read(resp, BODY_EXCERPT_BYTES)
            return Answer(resp.status, resp.headers, body, truncated)

    def judge(self, request: Request, answer: Answer) -> HttpRetryableError | HttpFatalError | None:
        """None when ``answer`` means delivered, else the error it means for the event."""
        status = answer.status
        if self.policy.delivered(status):
            return None
        excerpt = self.redact(answer.excerpt())
        error = self.policy.error(request.what, status, answer.headers, excerpt, self.clock.wall())
        if 300 <= status < 400 and not self.policy.retryable(status):
            location = answer.headers.get("Location")
            if location:
                error = HttpFatalError(
                    f"{request.what}: HTTP {status} to {safe_url(location)} (follow_redirects is off)",
                    status=status,
                    body=excerpt,
                )
        error.execution_data = self.exchange(request, answer)
        return error

    def exchange(self, request: Request, answer: Answer | None) -> dict[str, Any]:
        """The request and the response (None: there was none) as an execution log shows them.

        It may hold personal data (the response body), so the pipe logs it only
        when asked to (``pipes.trace``). Credentials stay out: the client adds
        them only when sending, headers named like secrets are blanked, and so
        is every secret of the credentials that a server echoes back. The
        request's body is the event's payload, which the log line carries already.
        """
        data: dict[str, Any] = {
            "request": {
                "method": request.method,
                "url": safe_url(request.url),
                "headers": self._shown(request.headers.items()),
            }
        }
        if answer is not None:
            data["response"] = {
                "status": answer.status,
                "headers": self._shown(answer.headers.items()),
                "body": self.redact(answer.excerpt()),
            }
        return data

    def _shown(self, headers: Iterable[tuple[str, str]]) -> dict[str, str]:
        return {
            name: "**********" if _SECRET_HEADER.search(name) else self.redact(value)
            for name, value in headers
        }

    def redact(self, text: str) -> str:
        """``text`` with every secret of the credentials blanked (a server may echo what it got)."""
        credentials = self._credentials
        return text if credentials is None else blank_secrets(text, credentials.secrets())


async def _read(resp: aiohttp.ClientResponse, limit: int) -> tuple[bytes, bool]:
    """At most ``limit`` bytes of the body, and whether there was more."""
    length = resp.content_length
    if length is not None and length <= limit:
        return await resp.read(), False
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = await resp.content.read(limit + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    body = b"".join(chunks)
    return body[:limit], len(body) > limit


def _short(exc: Any) -> str:
    return " ".join(str(exc).split())[:300]
