"""The ``redis_lookup`` enricher: one key per event, looked up in one pipelined round trip.

The enricher returns the looked-up *value*; where it goes is the pipe's
``enrichment.into`` (merged under that key of the record, the body staying where
it was) or, without ``into``, it replaces the record as an AWS enrichment does.
So ``into`` is handled by the runner for every enricher alike, not here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import orjson
from pydantic import Field, field_validator

from connectors.redis.client import (
    RedisClientLifecycle,
    RedisOptions,
    map_error,
    redis_errors,
    text,
)
from pipes.codec import decode_body
from pipes.connector import ConnectorContext, Enricher
from pipes.errors import FatalError
from pipes.events import Event
from pipes.templates import InputTemplate

__all__ = ["RedisLookupEnricher", "RedisLookupOptions"]


class RedisLookupOptions(RedisOptions):
    """Options of the ``redis_lookup`` enricher."""

    key: str = Field(
        description="Input template rendered as text against the record, e.g. customer:<$.body.customer_id>."
    )
    command: Literal["get", "hgetall", "json"] = Field(
        default="get",
        description=(
            "get: the string value (JSON-decoded when it is JSON); hgetall: the hash as an object of "
            "text; json: JSON.GET where the server has RedisJSON, else GET of a JSON text."
        ),
    )
    missing: Literal["keep", "drop", "fail"] = Field(
        default="keep",
        description=(
            "When the key does not exist: keep (the result is null), drop (the event is filtered "
            "out), fail (the event goes to the dead letter)."
        ),
    )

    @field_validator("key")
    @classmethod
    def _template_compiles(cls, key: str) -> str:
        InputTemplate(key)
        return key


class RedisLookupEnricher(RedisClientLifecycle, Enricher):
    """Looks up one key per event; per-event results and errors."""

    options_model: ClassVar[type[RedisLookupOptions]] = RedisLookupOptions

    options: RedisLookupOptions

    def __init__(self, options: RedisLookupOptions) -> None:
        super().__init__(options)
        self._key = InputTemplate(options.key)
        self._json_module = False

    async def start(self, context: ConnectorContext) -> None:
        await super().start(context)
        if self.options.command == "json":
            client: Any = self._client
            async with redis_errors("COMMAND INFO JSON.GET"):
                info: Any = await client.execute_command("COMMAND INFO", "JSON.GET")
            # "COMMAND INFO" as one name: redis-py then leaves the reply unparsed ([nil]
            # without the module; its parser fails on that). A server that refuses COMMAND
            # raises, which is an error to fix, not a module to guess at.
            self._json_module = isinstance(info, list) and any(item is not None for item in info)

    async def enrich(self, events: Sequence[Event]) -> Sequence[list[Any] | Exception]:
        assert self._client is not None, "enrich before start"
        command = self.options.command
        keys = [self._key.render(event.record) for event in events]
        async with redis_errors(f"lookup {command}"), self._client.pipeline(transaction=False) as pipe:
            for key in keys:
                if command == "hgetall":
                    pipe.hgetall(key)
                elif command == "json" and self._json_module:
                    pipe.execute_command("JSON.GET", key)
                else:
                    pipe.get(key)
            replies = await pipe.execute(raise_on_error=False)
        return [self._result(key, reply) for key, reply in zip(keys, replies, strict=True)]

    def _result(self, key: str, reply: Any) -> list[Any] | Exception:
        if isinstance(reply, Exception):
            return map_error(reply, f"lookup of key {key!r}")
        if reply is None or reply == {}:
            if self.options.missing == "drop":
                return []
            if self.options.missing == "fail":
                return FatalError(f"key {key!r} not found")
            return [None]
        command = self.options.command
        if command == "hgetall":
            return [{text(k): text(v) for k, v in reply.items()}]
        if command == "json":
            try:
                return [orjson.loads(reply)]
            except orjson.JSONDecodeError:
                return FatalError(f"value of key {key!r} is not JSON")
        return [decode_body(reply)]
