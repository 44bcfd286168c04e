"""Units users write in YAML, parsed once at load time.

Inside the code every duration is a float of seconds with ``_s`` in its name;
in YAML it is ``500ms``, ``2s``, ``1m``, ``1h`` (or a bare number of seconds).
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator

__all__ = ["Duration", "parse_duration"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
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
        match = _DURATION.match(value)
        if match:
            return float(match.group(1)) * _FACTOR[match.group(2)]
    raise ValueError(f"invalid duration {value!r}: use e.g. 500ms, 2s, 1m, 1h")


#: A pydantic field type: accepts ``500ms``-style text or seconds, holds seconds.
Duration = Annotated[float, BeforeValidator(parse_duration)]
