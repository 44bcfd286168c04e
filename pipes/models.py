"""The pipe definition as validated, frozen models.

These models are the single description of the pipe format: validation,
``docs/pipe-format.md`` and the JSON schema (``pipes schema``) all come from
them. Connector options are *not* here: each connector declares its own model,
and ``pipes.config`` validates ``source:`` / ``target:`` / ... against it once
the ``type:`` is known.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pipes.units import Duration

__all__ = [
    "LOG_LEVELS",
    "OUTCOMES",
    "BatchConfig",
    "ConnectorSpec",
    "Expectation",
    "FilterConfig",
    "LogConfig",
    "PipeConfig",
    "PipeTestCase",
    "RetryConfig",
    "TransformConfig",
]

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ConnectorSpec(BaseModel):
    """``type:`` plus the connector's own options (validated by the connector's model)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    type: str = Field(description="A connector name (see `pipes connectors`) or `package.module:Class`.")

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class FilterConfig(Model):
    """Both parts must pass when both are given."""

    patterns: list[dict[str, Any] | str] = Field(
        default_factory=list,
        description="EventBridge event patterns (objects or JSON text); an event passes if any matches.",
    )
    jmespath: str | None = Field(
        default=None,
        description="A JMESPath expression; the event passes when its result is truthy.",
    )


class TransformConfig(Model):
    """Exactly one of ``template`` or ``jmespath``."""

    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [
                {"required": ["template"], "properties": {"template": {"type": "string"}}},
                {"required": ["jmespath"], "properties": {"jmespath": {"type": "string"}}},
            ]
        }
    )

    template: str | None = Field(default=None, description="An AWS input-transformer template.")
    jmespath: str | None = Field(
        default=None, description="A JMESPath projection; its result is the payload."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> TransformConfig:
        if (self.template is None) == (self.jmespath is None):
            raise ValueError("give exactly one of template or jmespath")
        return self


class BatchConfig(Model):
    size: int = Field(default=100, ge=1, le=10000, description="Most events in one batch.")
    window: Duration = Field(
        default=0.5,
        le=300,
        description="Longest wait to fill a batch (e.g. 500ms); 0 sends what is there.",
    )


class RetryConfig(Model):
    max_attempts: int = Field(
        default=10, ge=1, description="Attempts per event before it goes to the dead letter."
    )
    backoff_initial: Duration = Field(
        default=0.2,
        gt=0,
        description="First backoff; doubles each attempt (more than 0: no busy retry loops).",
    )
    backoff_max: Duration = Field(default=30.0, description="Longest backoff between attempts.")
    max_event_age: Duration | None = Field(
        default=3600.0,
        description="After this long since first seen, a failing event is dead-lettered.",
    )


type LogLevel = Literal["OFF", "ERROR", "INFO", "TRACE"]
LOG_LEVELS: tuple[LogLevel, ...] = ("OFF", "ERROR", "INFO", "TRACE")


class LogConfig(Model):
    """The pipe's execution log, as AWS Pipes' ``LogConfiguration`` (docs/operations.md#execution-logs)."""

    level: LogLevel = Field(
        default="INFO",
        description="OFF, ERROR, INFO (the default), or TRACE: a line per event per stage.",
    )
    include_execution_data: bool = Field(
        default=False,
        description="Put the events' records and payloads (and a target's request and response, where "
        "it reports them) in the log lines. They can hold personal data: off by default.",
    )


def _outcome_or_payload(schema: dict[str, Any]) -> None:
    """In the JSON schema, ``expect`` is also a bare word: ``filtered`` or ``dropped``."""
    as_object = dict(schema)
    schema.clear()
    schema["description"] = as_object.pop("description", "")
    schema["anyOf"] = [{"enum": list(OUTCOMES)}, as_object]


#: What ``expect:`` may say in one word.
OUTCOMES = ("filtered", "dropped")


class Expectation(Model):
    """The outcome a pipe test expects: ``filtered``, ``dropped``, or the payload, given one way."""

    model_config = ConfigDict(json_schema_extra=_outcome_or_payload)

    outcome: Literal["filtered", "dropped"] | None = Field(
        default=None, description="filtered or dropped (written `expect: filtered`)."
    )
    payload: Any = Field(
        default=None,
        description="The one payload, exactly (a template's text compares as the JSON it holds).",
    )
    payloads: list[Any] | None = Field(
        default=None, description="Every payload, exactly, in order (an enrichment that fans out)."
    )
    payload_matches: dict[str, Any] | None = Field(
        default=None,
        description="An event pattern every payload must match (and at least one payload).",
    )

    @field_validator("payload_matches")
    @classmethod
    def _a_pattern(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            from pipes.patterns import EventFilter

            EventFilter.compile([value])  # a PatternError is a ValueError: reported where it is
        return value

    @model_validator(mode="before")
    @classmethod
    def _one_word(cls, value: Any) -> Any:
        if isinstance(value, str):
            if value not in OUTCOMES:
                raise ValueError(
                    f"{value!r}: write filtered, dropped, or a mapping with payload, payloads or payload_matches"
                )
            return {"outcome": value}
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> Expectation:
        given = self.model_fields_set & {"outcome", "payload", "payloads", "payload_matches"}
        if len(given) != 1:
            raise ValueError(
                "give exactly one of payload, payloads or payload_matches (or write filtered or dropped)"
            )
        return self


class PipeTestCase(Model):
    """One case of ``tests:``: an input, the enrichment's answer if stubbed, the expected outcome."""

    name: str = Field(
        min_length=1, max_length=200, description="What the case shows; printed by `pipes test`."
    )
    event: dict[str, Any] | None = Field(
        default=None, description="The source record, as the source would make it (e.g. {body: ...})."
    )
    events_file: str | None = Field(
        default=None,
        description="A file of source records (JSON lines, or one JSON array), relative to the pipe "
        "file; each must meet `expect`.",
    )
    enrichment: Any = Field(
        default=None,
        description="The enrichment's answer for the event, instead of calling it: a record, a list of "
        "records (fan-out; [] drops), or null (drops). Without it the enrichment is really called.",
    )
    expect: Expectation = Field(description="filtered, dropped, or {payload | payloads | payload_matches}.")

    @model_validator(mode="after")
    def _one_input(self) -> PipeTestCase:
        if (self.event is None) == (self.events_file is None):
            raise ValueError("give exactly one of event or events_file")
        return self

    @property
    def stubs_enrichment(self) -> bool:
        return "enrichment" in self.model_fields_set


def _filter_as_a_list(schema: dict[str, Any]) -> None:
    """The JSON schema of ``filter:`` also takes the list form (a list of patterns)."""
    patterns = {"anyOf": [{"type": "object"}, {"type": "string"}]}
    schema["anyOf"].insert(0, {"type": "array", "items": patterns})


class PipeConfig(Model):
    name: str = Field(pattern=NAME_PATTERN, max_length=64, description="Unique name of the pipe.")
    description: str = Field(default="", max_length=512)
    state: Literal["RUNNING", "STOPPED"] = Field(default="RUNNING", description="Desired state.")
    source: ConnectorSpec
    filter: FilterConfig | None = Field(
        default=None,
        description="A list of event patterns, or {patterns, jmespath}.",
        json_schema_extra=_filter_as_a_list,
    )
    enrichment: ConnectorSpec | None = Field(
        default=None,
        description="An enricher connector; `into: NAME` merges its result under NAME instead of replacing the record.",
    )
    transform: TransformConfig | None = None
    target: ConnectorSpec
    batch: BatchConfig = Field(default_factory=BatchConfig)
    retry: RetryConfig = Field(default_factory=RetryConfig)
    dead_letter: ConnectorSpec | None = Field(
        default=None,
        description="Target for events that failed for good; without it nothing is dropped.",
    )
    concurrency: int = Field(default=4, ge=1, le=1024, description="Partitions processed at once.")
    max_in_flight: int | None = Field(
        default=None, ge=1, description="Most events taken from the source and not yet settled."
    )
    checkpoint_interval: Duration = Field(
        default=5.0, gt=0, description="Longest time between checkpoint commits."
    )
    stall_timeout: Duration = Field(
        default=30.0,
        gt=0,
        description="A source, target or store that has not answered for this long marks the pipe "
        "DEGRADED (it clears when the system answers again).",
    )
    log: LogConfig | None = Field(
        default=None,
        description="The execution log: {level, include_execution_data}. Default: INFO, no execution data.",
    )
    log_level: LogLevel = Field(
        default="INFO", description="Short for log: {level: ...}; not together with `log:`."
    )
    tests: list[PipeTestCase] = Field(
        default_factory=list,
        description="Unit tests of this pipe, run by `pipes test FILE` (docs/testing-pipes.md); "
        "they never change how the pipe runs.",
    )

    @field_validator("filter", mode="before")
    @classmethod
    def _filter_list(cls, value: Any) -> Any:
        if isinstance(value, list):
            return {"patterns": value}
        return value

    @property
    def logging(self) -> LogConfig:
        """The log settings in effect (``log:``, or the ``log_level`` shorthand)."""
        return self.log if self.log is not None else LogConfig(level=self.log_level)

    @property
    def in_flight_bound(self) -> int:
        return self.max_in_flight or self.batch.size * self.concurrency * 4
