"""Decoding of source bodies, shared by every source so they all behave alike.

AWS decodes a source's data field when it is JSON so that patterns and
templates can address its fields; otherwise it stays text. Bytes that are not
UTF-8 cannot be text, so they are kept as base64 beside a marker field, which a
target turns back into the original bytes.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson

__all__ = ["BASE64_MARKER", "decode_body", "encode_payload"]

#: A body that was not UTF-8 is carried as ``{BASE64_MARKER: "<base64>"}``.
BASE64_MARKER = "$base64"


def decode_body(raw: bytes | str | None) -> Any:
    """JSON when it parses, else text, else ``{"$base64": ...}`` for non-UTF-8 bytes."""
    if raw is None:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    if isinstance(raw, str):
        return raw
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return {BASE64_MARKER: base64.b64encode(raw).decode("ascii")}


def encode_payload(payload: Any) -> bytes:
    """Bytes to write for a payload: text verbatim, base64-marked bodies restored, else JSON.

    A ``str`` payload is written as is: it is either a rendered template (already
    the exact text the user asked for) or a body that was text to begin with.
    """
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, str):
        return payload.encode("utf-8")
    if isinstance(payload, dict) and len(payload) == 1 and BASE64_MARKER in payload:
        return base64.b64decode(payload[BASE64_MARKER])
    return orjson.dumps(payload)
