"""The map file as validated, frozen models (``pipes map FILE``).

A map file is recognised by its top-level ``items:`` key (a pipe file has
``source:`` instead). These models are the one description of the format:
validation, ``docs/map.md`` and the error messages come from them. The
stages reuse the pipe format's own models (``FilterConfig``,
``TransformConfig``) so that a filter or a template reads the same in both.
Names follow AWS Step Functions Distributed Map where they fit (item reader,
item batcher, max concurrency, tolerated failures, result writer).
"""

from __future__ import annotations

import codecs
from typing import Any, Literal

from pydantic import BaseModel, ByteSize, ConfigDict, Field, field_validator, model_validator

from pipes.models import ConnectorSpec, FilterConfig, TransformConfig
from pipes.units import Duration

__all__ = [
    "AGGREGATIONS",
    "Aggregation",
    "ItemBatcherConfig",
    "ItemReaderConfig",
    "ItemsConfig",
    "MapConfig",
    "MapFunctionConfig",
    "MapRetryConfig",
    "ReduceConfig",
    "ResultWriterConfig",
]

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"
FIELD_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"

#: Built-in aggregations, in the order the docs list them.
AGGREGATIONS = ("count", "sum", "min", "max", "avg", "distinct_count", "first", "last")

#: What a CSV column's text becomes (an empty field is null for every type but ``str``).
type ColumnType = Literal["str", "int", "float", "bool", "json"]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ItemsConfig(Model):
    """Which files to map over; a bare string or list is taken as ``paths``."""

    paths: list[str] = Field(
        default_factory=list,
        description=(
            "Glob patterns of files (`data/**/*.csv.gz`; `**` crosses folders), relative to the "
            "working directory, or fsspec URLs (`s3://bucket/prefix/*.csv`)."
        ),
    )
    manifest: str | None = Field(
        default=None,
        description="A file listing the items: one path per line, or JSON lines of strings or {path: ...}.",
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"paths": [value]}
        if isinstance(value, list):
            return {"paths": value}
        return value

    @model_validator(mode="after")
    def _something(self) -> ItemsConfig:
        if not self.paths and self.manifest is None:
            raise ValueError("give paths (globs) or a manifest")
        return self


class ItemReaderConfig(Model):
    """How one file becomes records ``{file, line, body}``."""

    format: Literal["csv", "jsonl", "json", "text"] = Field(
        description="csv (a row is a record), jsonl (a line), json (the file, or each element of an array), text (a line).",
    )
    columns: list[str] | None = Field(
        default=None, description="csv: column names; without them the first row of each file names them."
    )
    header: bool | None = Field(
        default=None,
        description="csv: whether the first row is a header (default: true without columns, false with).",
    )
    delimiter: str = Field(default=",", min_length=1, max_length=1, description="csv: field separator.")
    quotechar: str = Field(default='"', min_length=1, max_length=1, description="csv: quote character.")
    types: dict[str, ColumnType] = Field(
        default_factory=dict,
        description="csv: column -> str, int, float, bool or json; other columns stay text. Empty fields of typed columns are null.",
    )
    encoding: str = Field(
        default="utf-8", description="Text encoding of csv and text files (json and jsonl are read as UTF-8)."
    )
    compression: Literal["auto", "none", "gzip", "bz2", "xz"] = Field(
        default="auto", description="auto: by the file's suffix (.gz, .bz2, .xz)."
    )

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(f"unknown encoding {value!r}") from None
        return value

    @model_validator(mode="after")
    def _csv_only(self) -> ItemReaderConfig:
        if self.format != "csv":
            given = [k for k in ("columns", "header", "types") if getattr(self, k)]
            given += [k for k, d in (("delimiter", ","), ("quotechar", '"')) if getattr(self, k) != d]
            if given:
                raise ValueError(f"{', '.join(given)}: only for format csv")
        if self.format in ("json", "jsonl") and codecs.lookup(self.encoding).name != "utf-8":
            raise ValueError(f"encoding: {self.format} files are read as UTF-8 (the encoding JSON uses)")
        if self.columns is not None:
            if len(set(self.columns)) != len(self.columns):
                raise ValueError("columns: a name is given twice")
            unknown = sorted(set(self.types) - set(self.columns))
            if unknown:
                raise ValueError(f"types: {', '.join(unknown)} not among the columns")
        return self

    @property
    def has_header(self) -> bool:
        return self.header if self.header is not None else self.columns is None


class ItemBatcherConfig(Model):
    """Items per task, so that 500,000 small files do not become 500,000 tasks."""

    max_items: int | None = Field(
        default=None,
        ge=1,
        description="Most items in one task (default: enough tasks to keep every worker busy).",
    )
    max_bytes: ByteSize | None = Field(
        default=None,
        ge=1,
        description="Most bytes (as stored, e.g. 64MB) in one task; a larger item goes alone.",
    )


class MapFunctionConfig(Model):
    """The "first simple function": records in, values out, a batch at a time."""

    function: str = Field(
        description="`package.module:function`; called with a list of records, returns values."
    )
    batch_size: int = Field(default=1000, ge=1, le=1_000_000, description="Most records per call.")
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="Passed as the keyword argument options= when the function takes it.",
    )


class Aggregation(Model):
    """Exactly one built-in aggregation of a JMESPath expression over each value."""

    count: str | None = Field(default=None, description="Values where the expression is not null (`@`: all).")
    sum: str | None = None
    min: str | None = None
    max: str | None = None
    avg: str | None = None
    distinct_count: str | None = Field(
        default=None, description="Approximate (HyperLogLog), exact when small."
    )
    first: str | None = Field(default=None, description="In item order, then record order.")
    last: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if value == "count":
            return {"count": "@"}
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> Aggregation:
        given = [name for name in AGGREGATIONS if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of {', '.join(AGGREGATIONS)} (or the shorthand `count`)")
        return self

    @property
    def kind(self) -> str:
        return next(name for name in AGGREGATIONS if getattr(self, name) is not None)

    @property
    def expression(self) -> str:
        value: str = getattr(self, self.kind)
        return value


class ReduceConfig(Model):
    """Built-in aggregations, or the "second simple function", per group."""

    group_by: list[TransformConfig] | None = Field(
        default=None,
        description=(
            "A key ({jmespath} or {template}) evaluated on each mapped value, or a list of keys "
            "(grouping sets: every value counts once in each). A key that is an object gives "
            "one result column per field."
        ),
    )
    aggregations: dict[str, Aggregation] = Field(
        default_factory=dict,
        description="Result field -> {count|sum|min|max|avg|distinct_count|first|last: JMESPath}.",
    )
    function: str | None = Field(
        default=None,
        description="`package.module:function` called with a list of values or earlier results; returns one.",
    )
    finalize: str | None = Field(
        default=None,
        description="With function: called once per group on the final value; returns the result.",
    )
    batch_size: int = Field(
        default=1000, ge=2, le=1_000_000, description="With function: most values per call."
    )

    @field_validator("group_by", mode="before")
    @classmethod
    def _one_key(cls, value: Any) -> Any:
        return [value] if isinstance(value, dict) else value

    @field_validator("aggregations")
    @classmethod
    def _field_names(cls, value: dict[str, Aggregation]) -> dict[str, Aggregation]:
        import re

        for name in value:
            if not re.match(FIELD_PATTERN, name):
                raise ValueError(f"aggregation name {name!r}: use letters, digits and _")
        return value

    @model_validator(mode="after")
    def _one_way(self) -> ReduceConfig:
        if bool(self.aggregations) == (self.function is not None):
            raise ValueError("give aggregations or function (one of them)")
        if self.finalize is not None and self.function is None:
            raise ValueError("finalize goes with function")
        if self.group_by is not None and not self.group_by:
            raise ValueError("group_by: give at least one key")
        return self


class MapRetryConfig(Model):
    max_attempts: int = Field(
        default=3, ge=1, le=100, description="Attempts per item; a data error (corrupt file) is not retried."
    )
    backoff_initial: Duration = Field(
        default=1.0, gt=0, description="Wait before the second attempt; doubles."
    )
    backoff_max: Duration = Field(default=30.0, gt=0, description="Longest wait between attempts.")


class ResultWriterConfig(Model):
    path: str = Field(
        description="Folder for result.json, result.csv, SUCCEEDED.jsonl, FAILED.jsonl, run.json."
    )


class MapConfig(Model):
    name: str | None = Field(
        default=None,
        pattern=NAME_PATTERN,
        max_length=64,
        description="Names the run's state (default: the file name).",
    )
    description: str = Field(default="", max_length=512)
    items: ItemsConfig
    item_reader: ItemReaderConfig
    item_batcher: ItemBatcherConfig = Field(default_factory=ItemBatcherConfig)
    filter: FilterConfig | None = Field(
        default=None, description="Event patterns and/or JMESPath, as in a pipe."
    )
    transform: TransformConfig | None = Field(
        default=None, description="A template or JMESPath, as in a pipe."
    )
    map: MapFunctionConfig | None = None
    reduce: ReduceConfig
    max_concurrency: int | None = Field(
        default=None, ge=1, le=100_000, description="Most tasks running at once."
    )
    tolerated_failure_percentage: float | None = Field(
        default=None, ge=0, le=100, description="The run fails when more than this share of items failed."
    )
    tolerated_failure_count: int | None = Field(
        default=None, ge=0, description="The run fails when more than this many items failed (neither: 0)."
    )
    retry: MapRetryConfig = Field(default_factory=MapRetryConfig)
    checkpoint_interval: Duration = Field(
        default=2.0, gt=0, le=3600, description="Longest time between checkpoints."
    )
    result_writer: ResultWriterConfig | None = Field(default=None, description="Default: out/NAME.")
    result_target: ConnectorSpec | None = Field(
        default=None,
        description="Any pipes target (`type:` plus options) that also receives the result records.",
    )

    @field_validator("filter", mode="before")
    @classmethod
    def _filter_list(cls, value: Any) -> Any:
        if isinstance(value, list):
            return {"patterns": value}
        return value
