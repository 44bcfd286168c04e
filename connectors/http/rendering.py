"""From an event to a request: URL, query and headers rendered from templates, and the body.

Templates are compiled once; a value without ``<`` is static and costs
nothing per event. The body of ``body: payload`` is the event's payload bytes
(the source's own bytes when nothing transformed them) with a content type
that says what they are: JSON, text, or raw bytes. ``body: batch`` puts the
payloads, as JSON values, into one array per request.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import orjson
from multidict import MultiDict
from yarl import URL

from connectors.http.client import Request
from connectors.http.options import HttpClientOptions
from pipes.codec import Base64Body, encode_payload
from pipes.errors import FatalError
from pipes.events import Event, Outcome
from pipes.templates import InputTemplate

__all__ = ["JSON", "TEXT", "BodyEncoder", "RequestShape", "each_request", "json_value"]

JSON: Final = "application/json"
TEXT: Final = "text/plain; charset=utf-8"
BYTES: Final = "application/octet-stream"
# First characters a JSON text can start with (after white space).
_JSON_START = frozenset(b'{["-0123456789tfn')
_WS = b" \t\r\n"


def each_request[T](
    events: Sequence[Event], make: Callable[[Event], T]
) -> tuple[list[T | None], list[Outcome]]:
    """``make(event)`` for each event; one that cannot be made (a template that fails on its
    record, a payload with no JSON form) fails alone, for good, saying why; the others go on."""
    made: list[T | None] = []
    outcomes: list[Outcome] = []
    for event in events:
        try:
            made.append(make(event))
            outcomes.append(None)
        except Exception as exc:
            made.append(None)
            outcomes.append(FatalError(f"cannot make the request: {type(exc).__name__}: {exc}"))
    return made, outcomes


def _template(text: str) -> InputTemplate | str:
    return InputTemplate(text) if "<" in text else text


class RequestShape:
    """The method, URL, query and headers of the requests of one connector, compiled."""

    def __init__(self, options: HttpClientOptions, method: str) -> None:
        self.method = method
        self._url = _template(options.url)
        self._static_url = URL(options.url) if isinstance(self._url, str) else None
        self._headers = [(name, _template(value)) for name, value in options.headers.items()]
        self._query = [(name, _template(value)) for name, value in options.query.items()]
        self._static_headers = {n: v for n, v in self._headers if isinstance(v, str)}
        self._dynamic_headers = [(n, v) for n, v in self._headers if not isinstance(v, str)]
        self._static = (
            self._static_url is not None
            and not self._dynamic_headers
            and all(isinstance(v, str) for _, v in self._query)
        )
        if self._static and self._static_url is not None and self._query:
            self._static_url = self._static_url.extend_query([(n, str(v)) for n, v in self._query])

    @property
    def reads_record(self) -> bool:
        """Whether rendering reads the record (any template at all)."""
        return not self._static

    def render(self, event: Event) -> Request:
        """The request for ``event``, without body; raises when a template cannot render on its record."""
        if self._static:
            assert self._static_url is not None
            return Request(self.method, self._static_url, dict(self._static_headers))
        record = event.record
        url = self._static_url
        if url is None:
            assert isinstance(self._url, InputTemplate)
            url = URL(self._url.render(record).strip())
            if not url.is_absolute() or url.scheme not in ("http", "https"):
                raise ValueError(f"url template rendered {_short(str(url))!r}, not an http(s) URL")
        if self._query:
            query: MultiDict[str] = MultiDict(url.query)
            for name, value in self._query:
                query.add(name, value if isinstance(value, str) else value.render(record))
            url = url.with_query(query)
        headers = dict(self._static_headers)
        for name, template in self._dynamic_headers:
            headers[name] = template.render(record)
        return Request(self.method, url, headers)


def _short(text: str) -> str:
    return text if len(text) <= 80 else text[:77] + "..."


def _looks_json(data: bytes) -> bool:
    stripped = data.lstrip(_WS)
    return bool(stripped) and stripped[0] in _JSON_START


def _is_json_text(data: bytes) -> bool:
    if not _looks_json(data):
        return False
    try:
        orjson.loads(data)
    except orjson.JSONDecodeError:
        return False
    return True


def json_value(event: Event) -> bytes:
    """The payload as one JSON value (for an array of payloads): JSON text as is, other text quoted."""
    if not event.transformed and event.raw is not None:
        raw = event.raw
        if _is_json_text(raw):
            return raw
        return orjson.dumps(event.body)
    payload = event.payload
    if isinstance(payload, str):
        data = payload.encode("utf-8")
        return data if _is_json_text(data) else orjson.dumps(payload)
    return encode_payload(payload) if not isinstance(payload, Base64Body) else orjson.dumps(payload)


class BodyEncoder:
    """The body bytes of one event's request and its content type (``content_type`` overrides the guess)."""

    def __init__(self, content_type: str | None) -> None:
        self.content_type = content_type

    def __call__(self, event: Event) -> tuple[bytes, str]:
        if not event.transformed and event.raw is not None:
            data = event.raw
            # Raw source bytes: an object or array is JSON without decoding it here; the
            # rest is decoded (cached on the event) to tell JSON from text.
            if self.content_type is not None:
                return data, self.content_type
            stripped = data.lstrip(_WS)
            if stripped[:1] in (b"{", b"["):
                return data, JSON
            body = event.body
            if isinstance(body, Base64Body):
                return data, BYTES
            return data, TEXT if isinstance(body, str) else JSON
        payload = event.payload
        data = encode_payload(payload)
        if self.content_type is not None:
            return data, self.content_type
        if isinstance(payload, Base64Body):
            return data, BYTES
        if isinstance(payload, str):
            return data, JSON if _is_json_text(data) else TEXT
        return data, JSON


def merge_headers(base: Mapping[str, str], content_type: str | None) -> dict[str, str]:
    headers = dict(base)
    if content_type is not None and not any(k.lower() == "content-type" for k in headers):
        headers["Content-Type"] = content_type
    return headers


def batch_arrays(items: list[tuple[int, bytes]], max_bytes: int) -> list[tuple[list[int], bytes]]:
    """``(index, JSON value)`` pairs packed into arrays of at most ``max_bytes`` (one value alone may exceed it)."""
    out: list[tuple[list[int], bytes]] = []
    indexes: list[int] = []
    parts: list[bytes] = []
    size = 2
    for index, value in items:
        if parts and size + len(value) + 1 > max_bytes:
            out.append((indexes, b"[" + b",".join(parts) + b"]"))
            indexes, parts, size = [], [], 2
        indexes.append(index)
        parts.append(value)
        size += len(value) + 1
    if parts:
        out.append((indexes, b"[" + b",".join(parts) + b"]"))
    return out


def grouping_key(request: Request) -> Any:
    """Requests with equal keys may share one batch request."""
    return (str(request.url), tuple(sorted(request.headers.items())))


def batch_requests(
    rendered: Sequence[tuple[Request, bytes] | None], max_bytes: int, content_type: str | None
) -> list[tuple[list[int], Request]]:
    """The array requests of ``body: batch``, each with the indexes of the events it carries.

    Consecutive events whose URL and headers render alike share requests (so order
    per lane holds); ``None`` marks an event that already failed to render. The
    target and the enricher both batch this way, so a change of rule reaches both.
    """
    groups: list[tuple[Request, list[tuple[int, bytes]]]] = []
    last_key: object = None
    for index, item in enumerate(rendered):
        if item is None:
            continue
        request, value = item
        key = grouping_key(request)
        if not groups or key != last_key:
            groups.append((request, []))
            last_key = key
        groups[-1][1].append((index, value))
    sends: list[tuple[list[int], Request]] = []
    for request, items in groups:
        for indexes, array in batch_arrays(items, max_bytes):
            headers = merge_headers(request.headers, content_type or JSON)
            sends.append((indexes, Request(request.method, request.url, headers, array)))
    return sends
