"""The ``stdout`` target: one line per event on standard output, for demos and debugging.

The write is a plain blocking call: stdout is either a terminal or a pipe into
another process, and a reader that stops reading should slow the pipe down. A
reader that goes away fails the write (EPIPE); under ``pipes run`` that stops
the whole run at once, as it stops a Unix tool (``pipes.terminal.StdoutGuard``).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, Literal

import orjson
from pydantic import Field

from pipes.codec import BASE64_MARKER, encode_payload
from pipes.connector import Connector, ConnectorOptions, Target, encode_each, payload_bytes
from pipes.errors import RetryableError
from pipes.events import Event, Outcome

__all__ = ["StdoutOptions", "StdoutTarget", "connector"]


class StdoutOptions(ConnectorOptions):
    format: Literal["json", "pretty"] = Field(
        default="json",
        description=(
            "json: one compact line per event (text payloads as they are); "
            "pretty: JSON payloads indented over several lines."
        ),
    )


def _pretty(payload: Any) -> bytes:
    if isinstance(payload, str | bytes) or (
        isinstance(payload, dict) and len(payload) == 1 and BASE64_MARKER in payload
    ):
        return encode_payload(payload)
    return orjson.dumps(payload, option=orjson.OPT_INDENT_2)


def _pretty_payload(event: Event) -> bytes:
    return _pretty(event.payload) if event.transformed or event.raw is None else _pretty(event.body)


class StdoutTarget(Target):
    """Writes each payload as a line; one write and one flush per batch."""

    options_model = StdoutOptions
    reads_record = False

    def __init__(self, options: StdoutOptions) -> None:
        super().__init__(options)
        self.options: StdoutOptions = options
        self._encode = _pretty_payload if options.format == "pretty" else payload_bytes

    async def write(self, events: Sequence[Event]) -> Sequence[Outcome]:
        lines, outcomes = encode_each(events, self._encode)
        written = [line for line in lines if line is not None]
        if not written:
            return outcomes
        data = b"\n".join(written) + b"\n"
        # Looked up per batch, not at start, so redirection (and test capture) is honoured.
        stream = sys.stdout
        try:
            stream.flush()  # text printed before must come out before our bytes
            binary = getattr(stream, "buffer", None)
            if binary is None:  # replaced by a text-only stream (embedding, notebooks)
                stream.write(data.decode("utf-8", "replace"))
                stream.flush()
            else:
                binary.write(data)
                binary.flush()
        except OSError as exc:
            error = RetryableError(f"stdout: cannot write: {exc.strerror or exc}")
            return [error if outcome is None else outcome for outcome in outcomes]
        return outcomes


connector = Connector(
    name="stdout",
    description="Prints one line per event on standard output (compact or pretty JSON).",
    target=StdoutTarget,
)
