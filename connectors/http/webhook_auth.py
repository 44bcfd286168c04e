"""Who may post to a webhook: bearer tokens and HMAC signatures, checked in constant time.

Kinds (``auth.kind``):

- ``bearer``: ``Authorization: Bearer <token>``, any of ``tokens`` (several, so
  that one can be rotated out while the next is already accepted);
- ``standard_webhooks`` (Standard Webhooks, Svix): HMAC-SHA256 of
  ``webhook-id.webhook-timestamp.body`` with a ``whsec_<base64>`` secret,
  ``webhook-signature: v1,<base64> ...`` (any listed signature may match any
  secret), and the timestamp within ``tolerance`` of now, so that a captured
  request cannot be replayed later;
- ``github``: ``X-Hub-Signature-256: sha256=<hex>``, HMAC-SHA256 of the body;
- ``hmac``: any header, algorithm and encoding (``header``, ``algorithm``,
  ``encoding``, ``prefix``), HMAC of the body.

A refusal says why in a few words (for counting and for the sender's 401);
it never contains a secret or a signature.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from typing import Literal, Protocol, Self

from pydantic import Field, SecretStr, model_validator

from pipes.connector import ConnectorOptions
from pipes.units import Duration

__all__ = ["Verifier", "WebhookAuthOptions", "verifier_for"]

#: Headers never copied into a record: they carry credentials.
CREDENTIAL_HEADERS: frozenset[str] = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "webhook-signature",
        "x-hub-signature",
        "x-hub-signature-256",
    }
)


class WebhookAuthOptions(ConnectorOptions):
    """How senders prove who they are; ``kind`` says which of the other keys are used."""

    kind: Literal["bearer", "standard_webhooks", "github", "hmac"] = Field(
        description="bearer (tokens), standard_webhooks (secrets, tolerance), github (secrets), or "
        "hmac (secrets, header, algorithm, encoding, prefix)."
    )
    tokens: list[SecretStr] = Field(
        default_factory=list, description="bearer: accepted tokens (`${VAR}`); several while rotating."
    )
    secrets: list[SecretStr] = Field(
        default_factory=list,
        description="Signing secrets (`${VAR}`); several while rotating. standard_webhooks: `whsec_<base64>`.",
    )
    tolerance: Duration = Field(
        default=300.0,
        gt=0,
        description="standard_webhooks: how far `webhook-timestamp` may be from now (replays older "
        "than this are refused).",
    )
    header: str | None = Field(default=None, description="hmac: the header holding the signature.")
    algorithm: Literal["sha1", "sha256", "sha512"] = Field(default="sha256", description="hmac: the hash.")
    encoding: Literal["hex", "base64"] = Field(
        default="hex", description="hmac: how the signature is written."
    )
    prefix: str = Field(
        default="", description="hmac: text before the signature in the header, e.g. `sha256=`."
    )

    @model_validator(mode="after")
    def _keys_of_kind(self) -> Self:
        if self.kind == "bearer":
            if not self.tokens:
                raise ValueError("auth kind bearer needs tokens")
            if self.secrets:
                raise ValueError("auth kind bearer does not use secrets")
        else:
            if not self.secrets:
                raise ValueError(f"auth kind {self.kind} needs secrets")
            if self.tokens:
                raise ValueError(f"auth kind {self.kind} does not use tokens")
        if self.kind == "hmac" and not self.header:
            raise ValueError("auth kind hmac needs header")
        if self.kind != "hmac" and self.header is not None:
            raise ValueError(f"auth kind {self.kind} does not use header")
        if self.kind == "standard_webhooks":
            for index, secret in enumerate(self.secrets):
                try:
                    _whsec_key(secret.get_secret_value())
                except ValueError:
                    raise ValueError(f"secrets[{index}] is not a whsec_<base64> secret") from None
        return self


def _whsec_key(secret: str) -> bytes:
    encoded = secret.removeprefix("whsec_")
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not base64") from None


class Verifier(Protocol):
    #: Whether ``verify`` needs the body (signatures) or only the headers (tokens).
    needs_body: bool
    #: Header names (lower case) to leave out of records, besides ``CREDENTIAL_HEADERS``.
    hidden: frozenset[str]

    def verify(self, headers: Mapping[str, str], body: bytes, now_wall_s: float) -> str | None:
        """None when the request is authentic, else a short reason (no secret in it)."""
        ...


class BearerVerifier:
    needs_body = False
    hidden: frozenset[str] = frozenset()

    def __init__(self, tokens: list[SecretStr]) -> None:
        self._accepted = [f"Bearer {t.get_secret_value()}".encode() for t in tokens]

    def __repr__(self) -> str:
        return "BearerVerifier(<hidden>)"

    def verify(self, headers: Mapping[str, str], body: bytes, now_wall_s: float) -> str | None:
        given = headers.get("Authorization")
        if given is None:
            return "no bearer token"
        data = given.encode("utf-8", errors="replace")
        # Every token compared, whatever matched: the time does not tell which one did.
        matched = False
        for token in self._accepted:
            matched |= hmac.compare_digest(data, token)
        return None if matched else "wrong bearer token"


class StandardWebhooksVerifier:
    needs_body = True
    hidden: frozenset[str] = frozenset()

    def __init__(self, secrets: list[SecretStr], tolerance_s: float) -> None:
        self._keys = [_whsec_key(s.get_secret_value()) for s in secrets]
        self._tolerance_s = tolerance_s

    def __repr__(self) -> str:
        return "StandardWebhooksVerifier(<hidden>)"

    def verify(self, headers: Mapping[str, str], body: bytes, now_wall_s: float) -> str | None:
        msg_id = headers.get("webhook-id")
        stamp = headers.get("webhook-timestamp")
        signatures = headers.get("webhook-signature")
        if not msg_id or not stamp or not signatures:
            return "missing webhook-id, webhook-timestamp or webhook-signature"
        try:
            sent_at = int(stamp)
        except ValueError:
            return "webhook-timestamp is not a number"
        if abs(now_wall_s - sent_at) > self._tolerance_s:
            return "webhook-timestamp outside the tolerance"
        signed = f"{msg_id}.{stamp}.".encode() + body
        expected = [base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()) for key in self._keys]
        matched = False
        for item in signatures.split():
            version, _, value = item.partition(",")
            if version != "v1":
                continue
            given = value.encode("ascii", errors="replace")
            for candidate in expected:
                matched |= hmac.compare_digest(given, candidate)
        return None if matched else "wrong signature"


class BodyHmacVerifier:
    """GitHub's and the generic form: one header holding an HMAC of the body."""

    needs_body = True

    def __init__(
        self, secrets: list[SecretStr], header: str, algorithm: str, encoding: str, prefix: str
    ) -> None:
        self._keys = [s.get_secret_value().encode("utf-8") for s in secrets]
        self._header = header
        self._algorithm = algorithm
        self._encoding = encoding
        self._prefix = prefix
        self.hidden = frozenset({header.lower()})

    def __repr__(self) -> str:
        return f"BodyHmacVerifier(header={self._header!r})"

    def verify(self, headers: Mapping[str, str], body: bytes, now_wall_s: float) -> str | None:
        given = headers.get(self._header)
        if given is None:
            return f"no {self._header} header"
        if self._prefix and not given.startswith(self._prefix):
            return f"{self._header} does not start with {self._prefix!r}"
        signature = given[len(self._prefix) :].strip().encode("ascii", errors="replace")
        matched = False
        for key in self._keys:
            digest = hmac.new(key, body, self._algorithm).digest()
            expected = digest.hex().encode() if self._encoding == "hex" else base64.b64encode(digest)
            if self._encoding == "hex":
                signature = signature.lower()
            matched |= hmac.compare_digest(signature, expected)
        return None if matched else "wrong signature"


def verifier_for(options: WebhookAuthOptions | None) -> Verifier | None:
    if options is None:
        return None
    if options.kind == "bearer":
        return BearerVerifier(options.tokens)
    if options.kind == "standard_webhooks":
        return StandardWebhooksVerifier(options.secrets, options.tolerance)
    if options.kind == "github":
        return BodyHmacVerifier(options.secrets, "X-Hub-Signature-256", "sha256", "hex", "sha256=")
    assert options.header is not None
    return BodyHmacVerifier(
        options.secrets, options.header, options.algorithm, options.encoding, options.prefix
    )
