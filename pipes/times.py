"""Points in time as an operator writes them on the command line.

``pipes dlq show --since`` and ``pipes replay --from/--to`` take the same
forms, parsed here once: an ISO 8601 time (``2026-11-26T08:00:00Z``, a date
alone, an offset such as ``+01:00``; a time without a zone is UTC), or
``now`` with an optional offset back (``now-1h``, ``now-90m``, ``now-2d``),
with the durations of ``pipes.units``. Epoch numbers are not taken: a bare
number is a position (an offset, a sequence number) where positions are
accepted, and a time must not be mistaken for one.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from pipes.units import parse_duration

__all__ = ["looks_like_time", "parse_time"]

_NOW = re.compile(r"now(?:\s*-\s*(?P<back>.+))?", re.IGNORECASE)
#: An ISO date starts with four digits and a dash; nothing else we accept does.
_ISO_START = re.compile(r"\d{4}-\d{2}")

_HELP = "use an ISO 8601 time (2026-11-26T08:00:00Z) or now-DURATION (now-1h, now-30m)"


def looks_like_time(text: str) -> bool:
    """Whether ``text`` is written as a time (rather than a position)."""
    text = text.strip()
    return bool(_NOW.fullmatch(text) or _ISO_START.match(text))


def parse_time(text: str, now_s: float) -> float:
    """Epoch seconds for ``text``; ``ValueError`` with one line saying what is accepted.

    ``now_s`` is the current epoch time (injected, so that tests need no clock).
    """
    value = text.strip()
    now = _NOW.fullmatch(value)
    if now is not None:
        back = now.group("back")
        if back is None:
            return now_s
        try:
            return now_s - parse_duration(back.strip())
        except ValueError:
            raise ValueError(f"{text!r}: {back.strip()!r} is not a duration; {_HELP}") from None
    if not _ISO_START.match(value):
        raise ValueError(f"{text!r} is not a time; {_HELP}")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{text!r} is not a time; {_HELP}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
