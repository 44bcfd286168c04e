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
    "BatchConfig",
    "ConnectorSpec",
    "FilterConfig",
    "PipeConfig",
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
    log_level: Literal["OFF", "ERROR", "INFO", "TRACE"] = "INFO"

    @field_validator("filter", mode="before")
    @classmethod
    def _filter_list(cls, value: Any) -> Any:
        if isinstance(value, list):
            return {"patterns": value}
        return value

    @property
    def in_flight_bound(self) -> int:
        return self.max_in_flight or self.batch.size * self.concurrency * 4
