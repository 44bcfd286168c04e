"""Decoding of source bodies and encoding of payloads, shared by every connector.

AWS decodes a source's data field when it is JSON so that patterns and
templates can address its fields; otherwise it stays text. Bytes that are not
UTF-8 cannot be text: they are carried as ``{"$base64": "..."}`` so that a
template can still place them, and only that wrapper (a ``Base64Body``, made
here and nowhere else) is turned back into the original bytes when written. A
JSON body that merely looks like the wrapper is an ordinary object.

orjson reads integers beyond 64 bits as floats, losing digits. Rather than pay
for exact decoding on every event, the stages notice such a value when they
match or render it (``contains_inexact``) and decode that one event again with
``decode_exact``, which keeps every digit.
"""

from __future__ import annotations

import base64
import json
from typing import Any, Final

import orjson

__all__ = [
    "BASE64_MARKER",
    "INEXACT_ABOVE",
    "Base64Body",
    "InexactNumber",
    "contains_inexact",
    "decode_body",
    "decode_exact",
    "encode_payload",
]

#: A body that was not UTF-8 is carried as ``{BASE64_MARKER: "<base64>"}``.
BASE64_MARKER: Final = "$base64"

#: orjson turns an integer it cannot hold in 64 bits into a float at least this large.
INEXACT_ABOVE: Final = 9.223372036854775e18


class Base64Body(dict[str, str]):
    """The stand-in for a body that is not UTF-8; written back as the original bytes."""

    __slots__ = ()

    @classmethod
    def of(cls, raw: bytes) -> Base64Body:
        return cls({BASE64_MARKER: base64.b64encode(raw).decode("ascii")})

    def original(self) -> bytes:
        return base64.b64decode(self[BASE64_MARKER])


_loads = orjson.loads
_NotJson = orjson.JSONDecodeError


def decode_body(raw: bytes | str | None) -> Any:
    """JSON when it parses, else text, else a ``Base64Body`` for non-UTF-8 bytes."""
    if raw is None:
        return None
    try:
        return _loads(raw)
    except _NotJson:
        pass
    if isinstance(raw, str):
        return raw
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return Base64Body.of(raw)


def decode_exact(raw: bytes | str | None) -> Any:
    """``decode_body`` keeping every digit of integers beyond 64 bits (slower; used on demand)."""
    if raw is None:
        return None
    try:
        return json.loads(raw, parse_constant=_not_json)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return decode_body(raw)


def _not_json(name: str) -> Any:
    # NaN and Infinity are not JSON: orjson refuses them, so the exact decoder must too.
    raise ValueError(f"{name} is not JSON")


def contains_inexact(value: Any) -> bool:
    """Whether ``value`` holds a float orjson may have made from an integer beyond 64 bits."""
    kind = type(value)
    if kind is float:
        return bool(value >= INEXACT_ABOVE or value <= -INEXACT_ABOVE)
    if kind is dict:
        return any(contains_inexact(v) for v in value.values())
    if kind is list:
        return any(contains_inexact(v) for v in value)
    return False


def encode_payload(payload: Any) -> bytes:
    """Bytes to write for a payload: bytes and text as they are, a ``Base64Body`` restored, else JSON.

    A ``str`` payload is written as is: it is either a rendered template (already
    the exact text the user asked for) or a body that was text to begin with.
    Raises ``TypeError`` / ``ValueError`` for a value that has no JSON form.
    """
    kind = type(payload)
    if kind is bytes:
        return payload  # type: ignore[no-any-return]
    if kind is str:
        return payload.encode("utf-8")  # type: ignore[no-any-return]
    if kind is Base64Body:
        return payload.original()  # type: ignore[no-any-return]
    try:
        return orjson.dumps(payload)
    except orjson.JSONEncodeError:
        if isinstance(payload, bytes | str):
            return payload if isinstance(payload, bytes) else payload.encode("utf-8")
    # Integers beyond 64 bits (exactly decoded bodies) and the like: rare, so slow is fine.
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


class InexactNumber(Exception):
    """Raised by a stage that placed a value ``contains_inexact`` flags: decode this event exactly and redo it."""
