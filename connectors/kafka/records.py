"""The Kafka record as patterns and templates see it, and its way back to wire form.

The layout is AWS's Kafka source record (``topic``, ``partition``, ``offset``,
``timestamp``, ``timestampType``, ``key``, ``headers``, ``value``), except that
``key`` and ``value`` arrive decoded (JSON, else text, else a ``$base64``
marker, see ``pipes.codec``) instead of as base64, because that is what AWS
filters and templates see. ``headers`` keeps AWS's layout, a list of
``{name: [byte values]}``, since header values are bytes and one name may occur
more than once; ``docs/connectors/kafka.md`` shows how templates address them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from pipes.codec import decode_body, encode_payload
from pipes.events import UNSET, Event

__all__ = [
    "BODY_FIELD",
    "LAYOUT",
    "TIMESTAMP_TYPES",
    "KafkaLayout",
    "build_events",
    "headers_from_record",
    "headers_to_record",
    "is_kafka_event",
    "is_kafka_record",
    "key_from_record",
    "partition_name",
]

#: The record key that holds the body (the payload when there is no transform).
BODY_FIELD = "value"

#: Kafka's timestamp type codes as AWS names them.
TIMESTAMP_TYPES = ("CREATE_TIME", "LOG_APPEND_TIME")


def partition_name(topic: str, partition: int) -> str:
    """AWS's ``eventSourceKey``: ``topic-partition``."""
    return f"{topic}-{partition}"


#: Bytes a JSON text can start with. Anything else is not JSON, and skipping the
#: parser for it matters: a failed parse costs more than a successful one, and
#: keys (customer ids, UUIDs) are usually plain text.
_JSON_START = frozenset(b'{["-0123456789tfn \t\r\n')


def decode(raw: bytes) -> Any:
    """``pipes.codec.decode_body``, without trying JSON on bytes that cannot be JSON."""
    if raw and raw[0] not in _JSON_START:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            pass
    return decode_body(raw)


def headers_to_record(headers: Sequence[tuple[str, bytes]]) -> list[dict[str, list[int]]]:
    return [{name: list(value) if value is not None else []} for name, value in headers]


class KafkaLayout:
    """Builds the AWS-shaped record of a lazy Kafka event from its ``ConsumerRecord`` (``meta``)."""

    body_field = BODY_FIELD

    def record(self, event: Event, body: Any) -> dict[str, Any]:
        m = event.meta
        key = m.key
        headers = m.headers
        return {
            "topic": m.topic,
            "partition": m.partition,
            "offset": m.offset,
            "timestamp": m.timestamp,
            "timestampType": TIMESTAMP_TYPES[m.timestamp_type],
            "key": None if key is None else decode(key),
            "headers": headers_to_record(headers) if headers else [],
            "value": body,
        }


LAYOUT = KafkaLayout()


def build_events(topic: str, partition: int, messages: Iterable[Any]) -> list[Event]:
    """Lazy events for one partition's fetched messages (aiokafka ``ConsumerRecord``s).

    The hot path of the source: one ``Event`` per message holding the value's
    bytes and the message itself; the record is built only if a stage reads
    more than the value (``KafkaLayout``), and the value is decoded only if a
    stage reads it at all.
    """
    name = partition_name(topic, partition)
    layout = LAYOUT
    unset = UNSET
    return [Event(None, name, m.offset, BODY_FIELD, unset, None, m.value, m, layout) for m in messages]


def is_kafka_event(event: Event) -> bool:
    """Whether ``event`` came from a Kafka source untouched (its message's key and headers are at hand)."""
    return event.layout is LAYOUT


def is_kafka_record(event: Event) -> bool:
    """Whether ``event`` still carries a Kafka source record (key and headers to carry over)."""
    if event.layout is LAYOUT:
        return True
    if event.layout is not None or (event.raw is not None and not event.has_record):
        return False  # another source's lazy event: no need to build its record to know
    return event.body_field == BODY_FIELD and "topic" in event.record and "offset" in event.record


def key_from_record(event: Event) -> bytes | None:
    """The source record's key, back in wire form (``None`` when it had none)."""
    if event.layout is LAYOUT:
        raw: bytes | None = event.meta.key
        return raw  # the bytes as read: nothing decoded and encoded again
    key = event.record.get("key")
    return None if key is None else encode_payload(key)


def headers_from_record(event: Event) -> list[tuple[str, bytes]]:
    """The source record's headers, back in wire form; malformed entries are skipped."""
    if event.layout is LAYOUT:
        return list(event.meta.headers or ())
    headers = event.record.get("headers")
    out: list[tuple[str, bytes]] = []
    if not isinstance(headers, list):
        return out
    for entry in headers:
        if not isinstance(entry, dict):
            continue
        for name, value in entry.items():
            if isinstance(value, list):
                out.append((str(name), bytes(value)))
            elif isinstance(value, str):
                out.append((str(name), value.encode("utf-8")))
    return out
