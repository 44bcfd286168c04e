"""The ``python`` connector: a user's function as a target or an enricher.

The function gets a whole batch (a list), so it can do its own I/O in bulk, the
way an AWS Lambda behind a pipe does. Sync functions run in a worker thread so a
slow one cannot stall the other pipes; async functions are awaited on the loop.

The function is imported when the options are validated, so ``pipes validate``
already reports a wrong ``function:`` with the file and line, instead of the pipe
failing when it starts. It is looked up by the rule of ``pipes.imports``: the
pipe file's folder, then the current directory, then the installed packages.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Self

from pydantic import Field, PrivateAttr, ValidationInfo, field_validator, model_validator

from pipes.connector import Connector, ConnectorOptions, Enricher, Target
from pipes.errors import ConfigError, FatalError, RetryableError
from pipes.events import Event, Outcome
from pipes.imports import ImportFailed, import_object, pipe_dir_of

__all__ = [
    "PythonEnricher",
    "PythonOptions",
    "PythonTarget",
    "connector",
    "load_function",
]


def load_function(spec: str, pipe_dir: Path | None = None) -> Callable[..., Any]:
    """The callable named ``package.module:function`` (``:Class.method`` works too).

    Looked up in ``pipe_dir`` (the pipe file's folder) first, then in the
    working directory, then in the installed packages (``pipes.imports``).
    Raises ``ConfigError`` with one line naming ``spec`` when it cannot be had.
    """
    module_name, sep, attr_path = spec.partition(":")
    if not sep or not module_name or not attr_path:
        raise ConfigError(f"python: function {spec!r} must be written 'package.module:function'")
    try:
        target = import_object(spec, pipe_dir)
    except ImportFailed as exc:
        raise ConfigError(f"python: cannot import {spec!r}: {exc}") from exc
    if not callable(target):
        raise ConfigError(f"python: cannot import {spec!r}: it is not callable")
    return target


class PythonOptions(ConnectorOptions):
    function: str = Field(
        description=(
            "The function to call, as 'package.module:function' (':Class.method' works too). "
            "It gets the batch as a list; what it returns says what happened to each event."
        ),
    )
    options: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "Passed to the function as the keyword argument options=, if it takes one "
            "(a parameter named options, or **kwargs)."
        ),
    )

    #: The function as resolved at validation, from the pipe file's folder.
    _resolved: Callable[..., Any] | None = PrivateAttr(default=None)

    @field_validator("function")
    @classmethod
    def _importable(cls, value: str, info: ValidationInfo) -> str:
        try:
            load_function(value, pipe_dir_of(info.context))
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _keep_function(self, info: ValidationInfo) -> Self:
        # Kept, so that building the pipe later uses the very function validated
        # (imported above, so this lookup is cheap), whatever the directory is then.
        self._resolved = load_function(self.function, pipe_dir_of(info.context))
        return self

    def resolve_function(self) -> Callable[..., Any]:
        """The function: as validated, or looked up now (options built without validation)."""
        return self._resolved if self._resolved is not None else load_function(self.function)


class _Function:
    """A resolved user function and how to call it with one batch."""

    def __init__(self, options: PythonOptions) -> None:
        self.spec = options.function
        self.fn = options.resolve_function()
        self.kwargs = {"options": options.options} if _accepts_options(self.fn) else {}
        self.is_async = inspect.iscoroutinefunction(self.fn)

    async def __call__(self, batch: list[Any]) -> Any:
        try:
            if self.is_async:
                return await self.fn(batch, **self.kwargs)
            result = await asyncio.to_thread(self.fn, batch, **self.kwargs)
            if inspect.isawaitable(result):
                result = await result
            return result
        except FatalError:
            raise
        except Exception as exc:
            raise RetryableError(f"python: {self.spec} raised {type(exc).__name__}: {exc}") from exc


def _accepts_options(fn: Callable[..., Any]) -> bool:
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # some builtins have no signature
        return False
    return any(
        p.kind is inspect.Parameter.VAR_KEYWORD
        or (p.name == "options" and p.kind is not inspect.Parameter.POSITIONAL_ONLY)
        for p in parameters
    )


class PythonTarget(Target):
    """Calls the function with the batch's payloads; its return says what was delivered.

    - ``None``: every event delivered.
    - a list with one entry per event: ``None`` or ``True`` delivered; an exception
      instance failed with that error (``FatalError``: never retried); a string failed
      with that message (retried); ``False`` failed (retried).
    - ``{"batchItemFailures": [{"itemIdentifier": "<index>"}, ...]}`` (AWS Lambda's
      partial batch response): the listed indexes failed (retried), the rest delivered.
    - raising fails the whole batch (retried, unless it raised a ``FatalError``).
    """

    options_model = PythonOptions

    def __init__(self, options: PythonOptions) -> None:
        super().__init__(options)
        self.options: PythonOptions = options
        self._function = _Function(options)

    async def write(self, events: Sequence[Event]) -> Sequence[Outcome]:
        result = await self._function([event.payload for event in events])
        return _target_outcomes(self._function.spec, result, len(events))


def _target_outcomes(spec: str, result: Any, n: int) -> list[Outcome]:
    if result is None:
        return [None] * n
    if isinstance(result, dict) and "batchItemFailures" in result:
        return _batch_item_failures(spec, result["batchItemFailures"], n)
    if isinstance(result, list | tuple):
        if len(result) != n:
            error = FatalError(f"python: {spec} returned {len(result)} results for {n} events")
            return [error] * n
        return [_target_outcome(spec, item) for item in result]
    error = FatalError(
        f"python: {spec} returned a {type(result).__name__}; "
        "expected None, a list with one entry per event, or batchItemFailures"
    )
    return [error] * n


def _target_outcome(spec: str, item: Any) -> Outcome:
    if item is None or item is True:
        return None
    if isinstance(item, Exception):
        return item
    if isinstance(item, str):
        return RetryableError(item)
    if item is False:
        return RetryableError(f"python: {spec} reported this event failed")
    return FatalError(f"python: {spec} returned {item!r} for an event; expected None/True/error")


def _batch_item_failures(spec: str, failures: Any, n: int) -> list[Outcome]:
    outcomes: list[Outcome] = [None] * n
    try:
        for failure in failures:
            index = int(failure["itemIdentifier"])
            if not 0 <= index < n:
                raise IndexError(index)
            outcomes[index] = RetryableError(f"python: {spec} reported item {index} failed")
    except (TypeError, KeyError, ValueError, IndexError):
        # AWS treats a malformed partial response as a failure of the whole batch.
        error = RetryableError(f"python: {spec} returned malformed batchItemFailures")
        return [error] * n
    return outcomes


class PythonEnricher(Enricher):
    """Calls the function with the batch's records; it returns one item per record.

    Each item is a record (any value: it replaces or merges with the event), a list
    of records (fan-out; empty drops the event), ``None`` (drop the event) or an
    exception instance (that event failed; ``FatalError`` is never retried).
    Raising fails the whole batch (retried, unless it raised a ``FatalError``).
    """

    options_model = PythonOptions

    def __init__(self, options: PythonOptions) -> None:
        super().__init__(options)
        self.options: PythonOptions = options
        self._function = _Function(options)

    async def enrich(self, events: Sequence[Event]) -> Sequence[list[Any] | Exception]:
        spec = self._function.spec
        n = len(events)
        result = await self._function([event.record for event in events])
        if not isinstance(result, list | tuple) or len(result) != n:
            got = f"{len(result)} items" if isinstance(result, list | tuple) else repr(result)[:80]
            error = FatalError(f"python: {spec} must return a list with {n} items, got {got}")
            return [error] * n
        out: list[list[Any] | Exception] = []
        for item in result:
            if item is None:
                out.append([])
            elif isinstance(item, list | Exception):
                out.append(item)
            else:
                out.append([item])
        return out


connector = Connector(
    name="python",
    description="Calls your Python function with each batch, as a target or an enricher.",
    target=PythonTarget,
    enricher=PythonEnricher,
)
