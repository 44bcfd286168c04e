"""Options every HTTP client role shares: the ``http`` target and the ``http`` enricher.

Secrets (passwords, tokens, client secrets) are ``SecretStr``: their repr and
every error message show ``**********``; the value is read once, when the
client is built. Write them as ``${VAR}`` in pipe files.

``auth`` and ``tls`` are flat models with a ``kind`` rather than a pydantic
discriminated union, so that a mistake is reported at the key the user wrote
(``auth``), in one line that says which keys that kind needs.
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator

from pipes.connector import ConnectorOptions
from pipes.templates import InputTemplate
from pipes.units import Duration

__all__ = [
    "ClientAuthOptions",
    "HttpClientOptions",
    "Method",
    "RateLimitOptions",
    "TlsOptions",
]

type Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]

#: Methods whose requests carry no body.
BODILESS: frozenset[str] = frozenset({"GET", "DELETE"})

_NEEDS: dict[str, tuple[str, ...]] = {
    "basic": ("username", "password"),
    "api_key": ("value",),
    "bearer": ("token",),
    "oauth_client_credentials": ("token_url", "client_id", "client_secret"),
}
_ALL_KEYS = ("username", "password", "value", "token", "token_url", "client_id", "client_secret")


class ClientAuthOptions(ConnectorOptions):
    """How requests authenticate; ``kind`` says which of the other keys are used."""

    kind: Literal["basic", "api_key", "bearer", "oauth_client_credentials"] = Field(
        description="basic (username, password), api_key (header, value), bearer (token), "
        "or oauth_client_credentials (token_url, client_id, client_secret, scopes)."
    )
    username: str | None = Field(default=None, description="basic: the user name.")
    password: SecretStr | None = Field(default=None, description="basic: the password (`${VAR}`).")
    header: str = Field(
        default="X-API-Key", min_length=1, description="api_key: the header that carries the key."
    )
    value: SecretStr | None = Field(default=None, description="api_key: the key (`${VAR}`).")
    token: SecretStr | None = Field(
        default=None, description="bearer: the token (`${VAR}`), sent as `Authorization: Bearer ...`."
    )
    token_url: str | None = Field(default=None, description="oauth_client_credentials: the token endpoint.")
    client_id: str | None = Field(default=None, description="oauth_client_credentials: the client id.")
    client_secret: SecretStr | None = Field(
        default=None, description="oauth_client_credentials: the client secret (`${VAR}`)."
    )
    scopes: list[str] = Field(
        default_factory=list, description="oauth_client_credentials: scopes to ask for."
    )
    audience: str | None = Field(
        default=None,
        description="oauth_client_credentials: an `audience` parameter, for servers that want one.",
    )
    client_auth: Literal["basic", "body"] = Field(
        default="basic",
        description="oauth_client_credentials: send the client id and secret as HTTP Basic (basic, the "
        "RFC 6749 default) or as form fields (body).",
    )

    @field_validator("token_url")
    @classmethod
    def _token_url(cls, url: str | None) -> str | None:
        if url is not None and not url.strip().lower().startswith(("http://", "https://")):
            raise ValueError("token_url must start with http:// or https://")
        return url

    @model_validator(mode="after")
    def _keys_of_kind(self) -> Self:
        needs = _NEEDS[self.kind]
        missing = [key for key in needs if getattr(self, key) in (None, "")]
        if missing:
            raise ValueError(f"auth kind {self.kind} needs {' and '.join(missing)}")
        unused = [key for key in _ALL_KEYS if key not in needs and getattr(self, key) is not None]
        if self.kind != "oauth_client_credentials" and (self.scopes or self.audience):
            unused += ["scopes"] if self.scopes else []
            unused += ["audience"] if self.audience else []
        if unused:
            raise ValueError(f"auth kind {self.kind} does not use {', '.join(unused)}")
        return self


class TlsOptions(ConnectorOptions):
    """TLS of outgoing requests (https:// URLs)."""

    ca_file: str | None = Field(
        default=None, description="PEM file of CA certificates to trust (default: the system's)."
    )
    cert_file: str | None = Field(default=None, description="PEM client certificate (chain), for mutual TLS.")
    key_file: str | None = Field(default=None, description="PEM private key of `cert_file`.")
    verify: bool = Field(
        default=True,
        description="Verify the server's certificate and name. false accepts any server: for tests only.",
    )

    @model_validator(mode="after")
    def _pair(self) -> Self:
        if bool(self.cert_file) != bool(self.key_file):
            raise ValueError("cert_file and key_file go together: give both or neither")
        return self


class RateLimitOptions(ConnectorOptions):
    """A token bucket shared by every lane of the pipe; waiting for a token is backpressure."""

    rate: float = Field(gt=0, description="Requests per second, on average.")
    burst: int = Field(default=1, ge=1, description="Requests that may go at once after a quiet spell.")


class HttpClientOptions(ConnectorOptions):
    """What the target and the enricher share."""

    url: str = Field(
        min_length=1,
        description="The endpoint; a template over the record, e.g. "
        "`https://api.example.com/orders/<$.body.order_id>`.",
    )
    headers: dict[str, str] = Field(
        default_factory=dict, description="Request headers; values may be templates over the record."
    )
    query: dict[str, str] = Field(
        default_factory=dict, description="Query parameters; values may be templates over the record."
    )
    timeout: Duration = Field(
        default=10.0, gt=0, description="Longest time for one request, from sending to the whole answer."
    )
    max_connections: int = Field(
        default=32, ge=1, le=1024, description="Most requests in flight at once (all lanes together)."
    )
    tls: TlsOptions | None = Field(default=None, description="CA file, client certificate, verification.")
    auth: ClientAuthOptions | None = Field(default=None, description="How requests authenticate.")
    rate_limit: RateLimitOptions | None = Field(
        default=None, description="Requests per second with a burst, shared by all lanes of the pipe."
    )
    retry_on: list[int] = Field(
        default_factory=list, description="Status codes to retry even though the default says otherwise."
    )
    fail_on: list[int] = Field(
        default_factory=list,
        description="Status codes that fail for good (dead letter) even though the default says otherwise.",
    )
    follow_redirects: bool = Field(
        default=False,
        description="Follow 3xx redirects. Off by default: a 3xx then fails for good, naming where it pointed.",
    )
    content_type: str | None = Field(
        default=None,
        description="Content-Type of request bodies. Default: application/json, or text/plain for a "
        "payload that is text.",
    )
    body: Literal["payload", "batch"] = Field(
        default="payload",
        description="payload: one request per event; batch: one request per batch, the payloads as one "
        "JSON array (split to stay under `max_batch_bytes`).",
    )
    max_batch_bytes: int = Field(
        default=1_048_576, ge=1, description="body: batch: most bytes in one request's array."
    )

    @field_validator("url")
    @classmethod
    def _url_compiles(cls, url: str) -> str:
        InputTemplate(url)
        if not url.lstrip().lower().startswith(("http://", "https://", "<")):
            raise ValueError("url must start with http:// or https://")
        return url

    @field_validator("headers", "query")
    @classmethod
    def _values_compile(cls, values: dict[str, str]) -> dict[str, str]:
        for text in values.values():
            InputTemplate(text)
        return values

    @field_validator("retry_on", "fail_on")
    @classmethod
    def _status_codes(cls, codes: list[int]) -> list[int]:
        bad = [code for code in codes if not 100 <= code <= 599]
        if bad:
            raise ValueError(f"not HTTP status codes: {', '.join(map(str, bad))}")
        return codes

    @model_validator(mode="after")
    def _overrides_disjoint(self) -> Self:
        both = sorted(set(self.retry_on) & set(self.fail_on))
        if both:
            raise ValueError(f"status codes in both retry_on and fail_on: {', '.join(map(str, both))}")
        return self
