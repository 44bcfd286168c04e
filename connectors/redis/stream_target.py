"""The ``redis_stream`` target: XADD each payload, a whole batch in one round trip."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from pydantic import Field, field_validator

from connectors.redis.client import (
    RedisClientLifecycle,
    RedisOptions,
    map_error,
    redis_errors,
)
from connectors.redis.wire import execute_packed, pack
from pipes.connector import Target, encode_each
from pipes.events import Event, Outcome
from pipes.templates import InputTemplate

__all__ = ["RedisStreamTarget", "RedisStreamTargetOptions"]


class RedisStreamTargetOptions(RedisOptions):
    """Options of the ``redis_stream`` target."""

    stream: str = Field(description="The stream key to append to (created by the first XADD).")
    field: str = Field(default="data", description="The entry field that holds the payload.")
    fields: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Extra entry fields: name -> input template rendered as text against the record, "
            'e.g. {order_id: "<$.body.detail.order_id>"}.'
        ),
    )
    maxlen: int | None = Field(
        default=None, ge=1, description="Trim the stream to about this many entries (XADD MAXLEN ~)."
    )
    approximate: bool = Field(
        default=True, description="Trim with ~ (cheap, keeps somewhat more than maxlen) or exactly."
    )

    @field_validator("fields")
    @classmethod
    def _templates_compile(cls, fields: dict[str, str]) -> dict[str, str]:
        for name, template in fields.items():
            try:
                InputTemplate(template)
            except ValueError as exc:
                raise ValueError(f"fields.{name}: {exc}") from exc
        return fields


class RedisStreamTarget(RedisClientLifecycle, Target):
    """Appends payloads to a stream; per-event outcomes from the pipelined replies."""

    options_model: ClassVar[type[RedisStreamTargetOptions]] = RedisStreamTargetOptions

    options: RedisStreamTargetOptions

    def __init__(self, options: RedisStreamTargetOptions) -> None:
        super().__init__(options)
        self._templates = [(name, InputTemplate(text)) for name, text in options.fields.items()]
        self._field = options.field
        trim: tuple[Any, ...] = ()
        if options.maxlen is not None:
            trim = ("MAXLEN", "~" if options.approximate else "=", options.maxlen)
        #: XADD stream [MAXLEN ~ n] * -- what every entry's command starts with.
        self._head: tuple[Any, ...] = ("XADD", options.stream, *trim, "*")
        # Without templated fields the record is never read: bodies are freed right after the transform.
        self.reads_record = bool(self._templates)

    async def write(self, events: Sequence[Event]) -> Sequence[Outcome]:
        assert self._client is not None, "write before start"
        what = f"XADD to stream {self.options.stream!r}"
        commands, outcomes = encode_each(events, self._command)
        sent = [i for i, command in enumerate(commands) if command is not None]
        if not sent:
            return outcomes
        async with redis_errors(what):
            replies = await execute_packed(
                self._client, pack([c for c in commands if c is not None]), len(sent)
            )
        for i, reply in zip(sent, replies, strict=True):
            if isinstance(reply, Exception):
                outcomes[i] = map_error(reply, what)
        return outcomes

    def _command(self, event: Event) -> tuple[Any, ...]:
        command = (*self._head, self._field, event.payload_bytes())
        if self._templates:
            fields: list[Any] = []
            for name, template in self._templates:
                fields += (name, template.render(event.record))
            command += tuple(fields)
        return command
