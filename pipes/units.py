"""Units users write in YAML, parsed once at load time.

Inside the code every duration is a float of seconds with ``_s`` in its name;
in YAML it is ``500ms``, ``2s``, ``1m``, ``1h`` (or a bare number of seconds).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

__all__ = ["DURATION_PATTERN", "Duration", "parse_duration"]

_DURATION_BODY = r"[ \t]*([0-9]+(?:\.[0-9]+)?)[ \t]*(ms|s|m|h|d)?[ \t]*"
#: Text a duration may be written as, for JSON schemas (the same regular expression ``parse_duration`` uses).
DURATION_PATTERN = f"^{_DURATION_BODY}$"
_DURATION = re.compile(_DURATION_BODY)
_FACTOR = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: object) -> float:
    """Seconds from ``500ms`` / ``2s`` / ``1m`` / ``1h`` / ``1d`` or a number of seconds."""
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r}: use e.g. 500ms, 2s, 1m, 1h")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"invalid duration {value!r}: must not be negative")
        return float(value)
    if isinstance(value, str):
        match = _DURATION.fullmatch(value)
        if match:
            return float(match.group(1)) * _FACTOR[match.group(2)]
    raise ValueError(f"invalid duration {value!r}: use e.g. 500ms, 2s, 1m, 1h")


class _DurationJsonSchema:
    """A duration's JSON schema: seconds (with the field's bounds) or text such as ``500ms``.

    Without it the schema would say ``number`` and an editor would flag
    ``window: 200ms``. Bounds apply to numbers only: a JSON schema cannot
    compare ``10m`` with 300 seconds (``pipes validate`` does).
    """

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        seconds: dict[str, Any] = dict(handler(core_schema))
        if "minimum" not in seconds and "exclusiveMinimum" not in seconds:
            seconds["minimum"] = 0
        text = {
            "type": "string",
            "pattern": DURATION_PATTERN,
            "description": "A duration: 500ms, 2s, 1m, 1h, 1d, or seconds.",
        }
        return {"anyOf": [seconds, text]}


#: A pydantic field type: accepts ``500ms``-style text or seconds, holds seconds.
Duration = Annotated[float, BeforeValidator(parse_duration), _DurationJsonSchema()]
