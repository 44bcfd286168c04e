"""The ``http`` enricher: calls an endpoint per event (or per batch) and returns its JSON answer.

The answer (decoded JSON, else text) is the enrichment result: it replaces the
record, or goes under ``into:`` (the runner does that for every enricher).
With ``body: batch`` one request carries a JSON array of the events' payloads
and the answer must be an array of as many results, mapped back by position.

Equal requests of one batch (method, URL with query, headers and body alike)
are sent once; with ``cache`` an answer is reused for ``ttl``. A 404 may mean "no result" (``not_found: keep`` gives null,
``drop`` drops the event), otherwise status codes mean what they mean for the
target (``connectors.http.errors``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, ClassVar, Literal, Self

import orjson
from pydantic import Field, field_validator, model_validator

from connectors.http.cache import ResponseCache
from connectors.http.client import Answer, HttpClient, Request
from connectors.http.errors import HttpFatalError, HttpRetryableError
from connectors.http.options import BODILESS, HttpClientOptions, Method
from connectors.http.rendering import (
    JSON,
    TEXT,
    BodyEncoder,
    RequestShape,
    batch_requests,
    each_request,
    json_value,
    merge_headers,
)
from pipes.codec import decode_body
from pipes.connector import ConnectorContext, ConnectorOptions, Enricher
from pipes.errors import FatalError
from pipes.events import Event
from pipes.templates import InputTemplate
from pipes.units import Duration

__all__ = ["CacheOptions", "HttpEnricher", "HttpEnricherOptions"]

type Result = list[Any] | Exception


class CacheOptions(ConnectorOptions):
    ttl: Duration = Field(gt=0, description="How long an answer is reused.")
    max_entries: int = Field(
        default=10_000, ge=1, description="Most answers kept (least recently used go first)."
    )


class HttpEnricherOptions(HttpClientOptions):
    """Options of the ``http`` enricher."""

    method: Method = Field(default="GET", description="The request method. GET and DELETE send no body.")
    template: str | None = Field(
        default=None,
        description="The request body, as an input template over the record. Default: the event's body.",
    )
    not_found: Literal["fail", "keep", "drop"] = Field(
        default="fail",
        description="What a 404 means: fail (the event goes to the dead letter), keep (the result is "
        "null) or drop (the event is filtered out).",
    )
    cache: CacheOptions | None = Field(
        default=None, description="Reuse answers: `{ttl: 5m, max_entries: 10000}`. Not with body: batch."
    )
    max_response_bytes: int = Field(
        default=6 * 1024 * 1024,
        ge=1,
        description="Longest answer read; a longer one fails the event for good (AWS allows 6 MB).",
    )

    @field_validator("template")
    @classmethod
    def _template_compiles(cls, template: str | None) -> str | None:
        if template is not None:
            InputTemplate(template)
        return template

    @model_validator(mode="after")
    def _body_fits_method(self) -> Self:
        if self.body == "batch" and self.method in BODILESS:
            raise ValueError(f"body: batch sends an array, which {self.method} cannot carry: use POST")
        if self.body == "batch" and self.cache is not None:
            raise ValueError("cache works per event; it cannot be used with body: batch")
        if self.body == "batch" and self.template is not None and not InputTemplate(self.template).is_json:
            raise ValueError("body: batch puts each rendered template into a JSON array: use a JSON template")
        if self.template is not None and self.method in BODILESS:
            raise ValueError(f"template is the request body, which {self.method} does not send")
        return self


class HttpEnricher(Enricher):
    options_model: ClassVar[type[HttpEnricherOptions]] = HttpEnricherOptions
    options: HttpEnricherOptions

    def __init__(self, options: HttpEnricherOptions) -> None:
        super().__init__(options)
        self._shape = RequestShape(options, options.method)
        self._template = InputTemplate(options.template) if options.template is not None else None
        self._encode_body = BodyEncoder(options.content_type)
        self._sends_body = options.method not in BODILESS
        self._client: HttpClient | None = None
        self._cache: ResponseCache | None = None

    async def start(self, context: ConnectorContext) -> None:
        self._client = HttpClient(self.options, context.clock, max_body_bytes=self.options.max_response_bytes)
        await self._client.open()
        cache = self.options.cache
        if cache is not None:
            self._cache = ResponseCache(cache.ttl, cache.max_entries, context.clock)

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def enrich(self, events: Sequence[Event]) -> Sequence[list[Any] | Exception]:
        if not events:
            return []
        if self.options.body == "batch":
            return await self._enrich_batches(events)
        requests, failed = each_request(events, self._request)
        results: list[Result | None] = list(failed)
        # Equal requests are sent once; answers are decoded per event.
        wanted: dict[Any, list[int]] = {}
        keyed: dict[Any, Request] = {}
        cache = self._cache
        for index, request in enumerate(requests):
            if request is None:
                continue
            key = (request.method, str(request.url), tuple(sorted(request.headers.items())), request.data)
            if cache is not None:
                hit = cache.get(key)
                if hit is not None:
                    results[index] = self._result(*hit)
                    continue
            wanted.setdefault(key, []).append(index)
            keyed[key] = request
        keys = list(wanted)
        answers = await asyncio.gather(*(self._ask(keyed[key]) for key in keys))
        for key, answer in zip(keys, answers, strict=True):
            if cache is not None and not isinstance(answer, Exception):
                cache.put(key, answer)
            for index in wanted[key]:
                results[index] = self._result(*answer) if not isinstance(answer, Exception) else _own(answer)
        return [r if r is not None else FatalError("no result") for r in results]

    def _request(self, event: Event) -> Request:
        request = self._shape.render(event)
        if self._sends_body:
            if self._template is not None:
                request.data = self._template.render(event.record).encode("utf-8")
                content_type = self.options.content_type or (JSON if self._template.is_json else TEXT)
            else:
                request.data, content_type = self._encode_body(event)
            request.headers = merge_headers(request.headers, content_type)
        return request

    async def _ask(self, request: Request) -> tuple[str, bytes] | Exception:
        """("found", body) or ("missing", b"") for a 404 taken as no result, or the error."""
        client = self._client
        assert client is not None, "enrich before start"
        answer = await client.send(request)
        if not isinstance(answer, Answer):
            return answer
        if answer.status == 404 and self.options.not_found != "fail":
            return ("missing", b"")
        error = client.judge(request, answer)
        if error is not None:
            return error
        if answer.truncated:
            return HttpFatalError(
                f"{request.what}: answer longer than max_response_bytes={self.options.max_response_bytes}",
                status=answer.status,
            )
        return ("found", answer.body)

    def _result(self, kind: str, body: bytes) -> Result:
        if kind == "missing":
            return [] if self.options.not_found == "drop" else [None]
        return [decode_body(body) if body else None]

    async def _enrich_batches(self, events: Sequence[Event]) -> list[Result]:
        rendered, failed = each_request(events, self._batch_item)
        results: list[Result | None] = list(failed)
        sends = batch_requests(rendered, self.options.max_batch_bytes, self.options.content_type)
        answers = await asyncio.gather(*(self._ask(request) for _, request in sends))
        for (indexes, request), answer in zip(sends, answers, strict=True):
            for index, result in zip(
                indexes, self._batch_results(request, len(indexes), answer), strict=True
            ):
                results[index] = result
        return [r if r is not None else FatalError("no result") for r in results]

    def _batch_item(self, event: Event) -> tuple[Request, bytes]:
        request = self._shape.render(event)
        if self._template is not None:
            return request, self._template.render(event.record).encode("utf-8")
        return request, json_value(event)

    def _batch_results(
        self, request: Request, count: int, answer: tuple[str, bytes] | Exception
    ) -> list[Result]:
        if isinstance(answer, Exception):
            return [_own(answer) for _ in range(count)]
        kind, body = answer
        if kind == "missing":
            return [self._result(kind, body) for _ in range(count)]
        try:
            items = orjson.loads(body)
        except orjson.JSONDecodeError:
            items = None
        if not isinstance(items, list) or len(items) != count:
            got = f"{len(items)} items" if isinstance(items, list) else "no JSON array"
            return [
                HttpFatalError(f"{request.what}: sent {count} events, the answer has {got}")
                for _ in range(count)
            ]
        return [[item] for item in items]


def _own(error: Exception) -> Exception:
    """A copy of ``error`` per event, so that no two failures share one exception object."""
    if isinstance(error, HttpRetryableError):
        return HttpRetryableError(str(error), error.retry_after_s, error.status, error.body)
    if isinstance(error, HttpFatalError):
        return HttpFatalError(str(error), error.status, error.body)
    return error
