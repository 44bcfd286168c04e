"""The values that travel through a pipe.

An ``Event`` is created by a source and carries the *record* that patterns and
templates address, the *partition* it is ordered within and its *position* in
that partition.

Sources on the hot path build events lazily: they hand over the body as the
bytes they read (``raw``), plus whatever their ``RecordLayout`` needs to build
the rest of the record (``meta``: a Kafka ``ConsumerRecord``, a stream entry
id...). Nothing is decoded until a stage asks for it, and a stage that only
reads the body never builds the envelope at all; a pipe without filter and
transform never decodes, and writes the bytes it read (``payload_bytes``).
Sources that have a record at hand pass it directly (``Event(record=...)``).

The runner keeps no bookkeeping on the event: settling is counted per batch
(``pipes.checkpoints``) and retries live in ``pipes.pipeline.Failure``, so the
hot path allocates one small object per event.
"""

from __future__ import annotations

from typing import Any, Final, Protocol

from pipes.codec import decode_body, decode_exact, encode_payload

__all__ = ["DELIVERED", "UNSET", "Event", "Outcome", "Position", "RecordLayout"]

#: A position within a partition: a Kafka offset, a byte offset, a Redis stream id.
#: Only the source that made it interprets it; the runner only stores and returns it.
type Position = int | str

#: What a target or enricher reports per event: ``None`` (delivered) or the error.
#: The error's type decides: ``FatalError`` is permanent, anything else is retried.
type Outcome = Exception | None

DELIVERED: Outcome = None


class _Unset:
    __slots__ = ()

    def __repr__(self) -> str:
        return "UNSET"


#: ``Event.payload`` before a transform set it: the payload is then the body itself.
UNSET: Final = _Unset()


class RecordLayout(Protocol):
    """How a source's lazy events become records (one instance per source, shared by its events).

    ``body_field`` is the record key that holds the body; ``record(event, body)``
    builds the whole envelope around the already decoded ``body`` from
    ``event.meta``. It is called at most once per event, and only when a stage
    needs more of the record than the body.
    """

    body_field: str

    def record(self, event: Event, body: Any) -> dict[str, Any]: ...


class Event:
    """One event on its way through a pipe.

    ``record`` is the envelope dict (Kafka: topic, partition, offset, ..., value;
    other sources: their metadata beside ``body``). ``body_field`` names the key of
    the record that holds the body; an empty ``body_field`` means the whole record
    is the body (after an enrichment replaced the record, as AWS does).
    ``raw``, when set, is the body exactly as the source read it: the payload of a
    pipe without transform. ``fault`` lets a source hand over an event it already
    knows is poisoned (e.g. delivered too many times); the runner dead-letters it
    with stage ``source``.
    """

    __slots__ = (
        "_body",
        "_payload",
        "_record",
        "body_field",
        "fault",
        "layout",
        "meta",
        "partition",
        "position",
        "raw",
    )

    # Every argument may be passed by position: sources build events in their hot loop,
    # where keyword arguments cost a third more per event.
    def __init__(
        self,
        record: dict[str, Any] | None = None,
        partition: str = "",
        position: Position = 0,
        body_field: str = "body",
        payload: Any = UNSET,
        fault: Exception | None = None,
        raw: bytes | None = None,
        meta: Any = None,
        layout: RecordLayout | None = None,
    ) -> None:
        self._record = record
        self.partition = partition
        self.position = position
        self.body_field = body_field
        self._payload = payload
        self.fault = fault
        self.raw = raw
        self.meta = meta
        self.layout = layout
        self._body: Any = UNSET

    @property
    def record(self) -> dict[str, Any]:
        """The whole record, built (once) from the layout when the source made the event lazily."""
        record = self._record
        if record is None:
            layout = self.layout
            if layout is None:
                record = self._record = {self.body_field or "body": self.body}
            else:
                record = self._record = layout.record(self, self.body)
        return record

    @record.setter
    def record(self, record: dict[str, Any]) -> None:
        self._record = record

    @property
    def has_record(self) -> bool:
        """Whether the record exists already (no decoding or building needed to read it)."""
        return self._record is not None

    @property
    def body(self) -> Any:
        """The source body, decoded (JSON when it was JSON)."""
        record = self._record
        if record is not None:
            return record.get(self.body_field) if self.body_field else record
        body = self._body
        if body is UNSET:
            body = self._body = decode_body(self.raw)
        return body

    def decode_exactly(self) -> None:
        """Decode the body again keeping every digit of huge integers (see ``pipes.codec``).

        Only for events the source made lazily (``layout`` set): their record is
        rebuilt around the exact body. Others are left as their source made them.
        """
        if self.raw is None or self.layout is None:
            return
        self._body = decode_exact(self.raw)
        self._record = None

    @property
    def payload(self) -> Any:
        """What the target writes: the transform's output, else the body."""
        payload = self._payload
        return self.body if payload is UNSET else payload

    @payload.setter
    def payload(self, value: Any) -> None:
        self._payload = value

    @property
    def transformed(self) -> bool:
        return self._payload is not UNSET

    def payload_bytes(self) -> bytes:
        """The payload as bytes to write: the source's own bytes when nothing changed them."""
        payload = self._payload
        if payload is UNSET:
            raw = self.raw
            if raw is not None:
                return raw
            payload = self.body
        return encode_payload(payload)

    def derive(self, record: dict[str, Any], body_field: str, keep_raw: bool = False) -> Event:
        """A new event carrying ``record`` at the same place in the partition (enrichment results).

        ``keep_raw``: the body is still the source's (a result merged with ``into``),
        so a pipe without transform still writes the bytes it read.
        """
        return Event(
            record,
            self.partition,
            self.position,
            body_field,
            raw=self.raw if keep_raw else None,
            meta=self.meta,
        )

    def __repr__(self) -> str:
        return f"Event({self.partition}@{self.position})"
