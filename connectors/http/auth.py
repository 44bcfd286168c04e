"""Credentials of outgoing requests: static headers, or an OAuth token kept fresh.

``basic``, ``api_key`` and ``bearer`` are headers computed once. For
``oauth_client_credentials`` the token is fetched on first use, cached until
shortly before it expires, and fetched again once when the API answers 401
with the token we sent (another request may already have refreshed it: then
its token is used). Concurrent requests share one fetch.

No object here has a repr that shows a secret, and no message includes one:
token endpoint refusals quote only the ``error`` / ``error_description`` fields
of the answer.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Mapping
from typing import Any, Protocol

import aiohttp
import orjson

from connectors.http.errors import HttpFatalError, HttpRetryableError, parse_retry_after, safe_url
from connectors.http.options import ClientAuthOptions
from pipes.clock import Clock

__all__ = ["Credentials", "OAuthCredentials", "StaticCredentials", "blank_secrets", "credentials_for"]

#: What a secret is replaced with wherever a server echoes it back.
MASK = "**********"

#: A token is refreshed this long before the expiry its server gave (at most a tenth of its life).
_EARLY_S = 30.0
#: After a failed token request, requests fail with its error for this long instead of asking
#: again each (a batch of requests must not become a storm against a token endpoint that is down).
_FAILURE_HOLD_S = 1.0


def blank_secrets(text: str, secrets: list[str]) -> str:
    """``text`` with every secret of ``secrets`` (four characters or more) replaced by ``MASK``."""
    for secret in secrets:
        if len(secret) >= 4 and secret in text:
            text = text.replace(secret, MASK)
    return text


class Credentials(Protocol):
    async def headers(self) -> Mapping[str, str]:
        """Headers that authenticate the next request."""
        ...

    async def refresh(self, sent: Mapping[str, str]) -> bool:
        """The API answered 401 to a request sent with ``sent``: True when new credentials are worth one more try."""
        ...

    def secrets(self) -> list[str]:
        """Every secret text these credentials send or hold, to blank out of what a server echoes back."""
        ...


class StaticCredentials:
    """Fixed headers (basic, api_key, bearer); nothing to refresh."""

    __slots__ = ("_headers", "_secrets")

    def __init__(self, headers: Mapping[str, str], secrets: list[str] | None = None) -> None:
        self._headers = dict(headers)
        self._secrets = [*(secrets or []), *self._headers.values()]

    def __repr__(self) -> str:
        return "StaticCredentials(<hidden>)"

    async def headers(self) -> Mapping[str, str]:
        return self._headers

    async def refresh(self, sent: Mapping[str, str]) -> bool:
        return False

    def secrets(self) -> list[str]:
        return self._secrets


class OAuthCredentials:
    """The client-credentials grant (RFC 6749 4.4), with the token cached until it expires."""

    def __init__(self, options: ClientAuthOptions, session: aiohttp.ClientSession, clock: Clock) -> None:
        assert options.token_url and options.client_id and options.client_secret is not None
        self._url = options.token_url
        self._client_id = options.client_id
        self._secret = options.client_secret.get_secret_value()
        self._form: dict[str, str] = {"grant_type": "client_credentials"}
        if options.scopes:
            self._form["scope"] = " ".join(options.scopes)
        if options.audience:
            self._form["audience"] = options.audience
        self._in_body = options.client_auth == "body"
        pair = f"{_form_quote(self._client_id)}:{_form_quote(self._secret)}".encode()
        self._client_basic = base64.b64encode(pair).decode("ascii")
        self._session = session
        self._clock = clock
        self._header: dict[str, str] | None = None
        self._expires = 0.0
        self._lock = asyncio.Lock()
        self._failure: HttpRetryableError | HttpFatalError | None = None
        self._failed_at = 0.0
        #: Tokens fetched so far (tests and logs read it).
        self.fetched = 0

    def __repr__(self) -> str:
        return f"OAuthCredentials(token_url={safe_url(self._url)!r})"

    async def headers(self) -> Mapping[str, str]:
        header = self._header
        if header is not None and self._clock.monotonic() < self._expires:
            return header
        async with self._lock:  # one fetch for every request that found the token missing
            if self._header is None or self._clock.monotonic() >= self._expires:
                failure = self._failure
                if failure is not None and self._clock.monotonic() - self._failed_at < _FAILURE_HOLD_S:
                    raise _again(failure)
                try:
                    await self._fetch()
                except (HttpRetryableError, HttpFatalError) as exc:
                    self._failure, self._failed_at = exc, self._clock.monotonic()
                    raise
                self._failure = None
            assert self._header is not None
            return self._header

    async def refresh(self, sent: Mapping[str, str]) -> bool:
        async with self._lock:
            if self._header is not None and self._header.get("Authorization") == sent.get("Authorization"):
                self._header = None  # the token we sent was refused: fetch a new one next time
        return True

    def secrets(self) -> list[str]:
        found = [self._secret, self._client_basic]
        if self._header is not None:
            token = self._header["Authorization"]
            found += [token, token.removeprefix("Bearer ")]
        return found

    async def _fetch(self) -> None:
        form = dict(self._form)
        headers = {"Accept": "application/json"}
        if self._in_body:
            form["client_id"] = self._client_id
            form["client_secret"] = self._secret
        else:
            headers["Authorization"] = "Basic " + self._client_basic
        where = f"oauth token request to {safe_url(self._url)}"
        try:
            async with self._session.post(
                self._url, data=form, headers=headers, allow_redirects=False
            ) as resp:
                body = await resp.read()
                status = resp.status
                retry_after = resp.headers.get("Retry-After")
        except TimeoutError:
            raise HttpRetryableError(f"{where}: timed out") from None
        except aiohttp.InvalidURL:  # its text is the whole URL, user info included
            raise HttpFatalError(f"{where}: invalid URL") from None
        except aiohttp.ClientError as exc:
            said = str(exc).replace(self._url, safe_url(self._url))  # no user info
            raise HttpRetryableError(f"{where}: {type(exc).__name__}: {said}") from None
        document = _json_object(body)
        if status != 200:
            # A careless token endpoint may echo what it got (the client secret, the Basic header).
            echoed = {
                k: blank_secrets(document[k], self.secrets())
                for k in ("error", "error_description")
                if isinstance(document.get(k), str)
            }
            message = f"{where}: HTTP {status}" + (f" {orjson.dumps(echoed).decode()}" if echoed else "")
            if status in (408, 429) or status >= 500:
                wait = parse_retry_after(retry_after, self._clock.wall())
                raise HttpRetryableError(message, retry_after_s=wait, status=status)
            raise HttpFatalError(message, status=status)
        token = document.get("access_token")
        if not isinstance(token, str) or not token:
            raise HttpRetryableError(f"{where}: the answer has no access_token")
        lifetime = document.get("expires_in")
        life_s = float(lifetime) if isinstance(lifetime, int | float) and lifetime > 0 else 3600.0
        self._header = {"Authorization": f"Bearer {token}"}
        self._expires = self._clock.monotonic() + life_s - min(_EARLY_S, life_s / 10)
        self.fetched += 1


def _again(error: HttpRetryableError | HttpFatalError) -> HttpRetryableError | HttpFatalError:
    """A fresh copy of ``error``: every request fails with its own exception."""
    if isinstance(error, HttpRetryableError):
        return HttpRetryableError(str(error), error.retry_after_s, error.status, error.body)
    return HttpFatalError(str(error), error.status, error.body)


def _form_quote(text: str) -> str:
    # RFC 6749 2.3.1: client id and secret are form-urlencoded before Basic encoding.
    from urllib.parse import quote_plus

    return quote_plus(text)


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def credentials_for(
    options: ClientAuthOptions | None, session: aiohttp.ClientSession, clock: Clock
) -> Credentials:
    """The credentials ``options`` describe (no headers at all without ``auth``)."""
    if options is None:
        return StaticCredentials({})
    if options.kind == "basic":
        assert options.username is not None and options.password is not None
        password = options.password.get_secret_value()
        encoded = base64.b64encode(f"{options.username}:{password}".encode()).decode("ascii")
        return StaticCredentials({"Authorization": f"Basic {encoded}"}, [password, encoded])
    if options.kind == "api_key":
        assert options.value is not None
        return StaticCredentials({options.header: options.value.get_secret_value()})
    if options.kind == "bearer":
        assert options.token is not None
        token = options.token.get_secret_value()
        return StaticCredentials({"Authorization": f"Bearer {token}"}, [token])
    return OAuthCredentials(options, session, clock)
