"""The ``http`` target: an API destination. One request per event, or one per batch.

Each event gets the outcome of its own request (``body: payload``) or of the
request its payload travelled in (``body: batch``): 2xx delivered; 408, 429,
5xx, timeouts and connection errors retried, no sooner than ``Retry-After``;
other statuses fail for good, with the status and the start of the answer in
the dead letter (``connectors.http.errors``). The requests of one write go out
together, bounded by ``max_connections`` and the rate limit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import ClassVar

from pydantic import Field

from connectors.http.client import Answer, HttpClient, Request
from connectors.http.errors import HttpFatalError, HttpRetryableError
from connectors.http.options import HttpClientOptions, Method
from connectors.http.rendering import (
    BodyEncoder,
    RequestShape,
    batch_requests,
    each_request,
    json_value,
    merge_headers,
)
from pipes.connector import ConnectorContext, Target
from pipes.errors import FatalError
from pipes.events import Event, Outcome

__all__ = ["HttpTarget", "HttpTargetOptions"]


class HttpTargetOptions(HttpClientOptions):
    """Options of the ``http`` target."""

    method: Method = Field(default="POST", description="The request method.")


class HttpTarget(Target):
    options_model: ClassVar[type[HttpTargetOptions]] = HttpTargetOptions
    options: HttpTargetOptions

    def __init__(self, options: HttpTargetOptions) -> None:
        super().__init__(options)
        self._shape = RequestShape(options, options.method)
        self._encode_body = BodyEncoder(options.content_type)
        self._client: HttpClient | None = None
        # The payload is read through payload_bytes; only templates read the record.
        self.reads_record = self._shape.reads_record

    async def start(self, context: ConnectorContext) -> None:
        self._client = HttpClient(self.options, context.clock)
        await self._client.open()

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def write(self, events: Sequence[Event]) -> Sequence[Outcome]:
        if not events:
            return []
        if self.options.body == "batch":
            return await self._write_batches(events)
        requests, outcomes = each_request(events, self._request)
        sends = [(i, r) for i, r in enumerate(requests) if r is not None]
        results = await asyncio.gather(*(self._deliver(r) for _, r in sends))
        for (index, _), outcome in zip(sends, results, strict=True):
            outcomes[index] = outcome
        return outcomes

    def _request(self, event: Event) -> Request:
        request = self._shape.render(event)
        data, content_type = self._encode_body(event)
        request.data = data
        request.headers = merge_headers(request.headers, content_type)
        return request

    async def _deliver(self, request: Request) -> Outcome:
        client = self._client
        assert client is not None, "write before start"
        answer = await client.send(request)
        if not isinstance(answer, Answer):
            return answer
        return client.judge(request, answer)

    async def _write_batches(self, events: Sequence[Event]) -> list[Outcome]:
        rendered, outcomes = each_request(events, self._batch_item)
        sends = batch_requests(rendered, self.options.max_batch_bytes, self.options.content_type)
        results = await asyncio.gather(*(self._deliver(r) for _, r in sends))
        for (indexes, _), outcome in zip(sends, results, strict=True):
            for index in indexes:
                outcomes[index] = _shared(outcome)
        return outcomes

    def _batch_item(self, event: Event) -> tuple[Request, bytes]:
        return self._shape.render(event), json_value(event)


def _shared(outcome: Outcome) -> Outcome:
    """One error per event: the runner may annotate each failure on its own."""
    shared: Outcome
    if isinstance(outcome, HttpRetryableError):
        shared = HttpRetryableError(str(outcome), outcome.retry_after_s, outcome.status, outcome.body)
    elif isinstance(outcome, HttpFatalError):
        shared = HttpFatalError(str(outcome), outcome.status, outcome.body)
    elif isinstance(outcome, FatalError):
        return FatalError(str(outcome))
    else:
        return outcome
    shared.execution_data = outcome.execution_data
    return shared
