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

import orjson

from pipes.codec import decode_body, encode_payload
from pipes.events import Event

__all__ = [
    "BODY_FIELD",
    "TIMESTAMP_TYPES",
    "build_events",
    "headers_from_record",
    "headers_to_record",
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


def build_events(topic: str, partition: int, messages: Iterable[Any]) -> list[Event]:
    """Events for one partition's fetched messages (aiokafka ``ConsumerRecord``s).

    The hot path of the source: one dict and one ``Event`` per message, and
    nothing else allocated when a message has no key or headers.
    """
    name = partition_name(topic, partition)
    types = TIMESTAMP_TYPES
    loads = orjson.loads
    out: list[Event] = []
    append = out.append
    for m in messages:
        key = m.key
        headers = m.headers
        offset = m.offset
        raw = m.value
        # Inline fast path for the common case, a JSON object; decode() does the rest.
        if raw and raw[0] == 123:  # "{"
            try:
                value = loads(raw)
            except orjson.JSONDecodeError:
                value = decode(raw)
        else:
            value = decode(raw)
        append(
            Event(
                {
                    "topic": topic,
                    "partition": partition,
                    "offset": offset,
                    "timestamp": m.timestamp,
                    "timestampType": types[m.timestamp_type],
                    "key": None if key is None else decode(key),
                    "headers": headers_to_record(headers) if headers else [],
                    "value": value,
                },
                name,
                offset,
                BODY_FIELD,
            )
        )
    return out


def is_kafka_record(event: Event) -> bool:
    """Whether ``event`` still carries a Kafka source record (key and headers to carry over)."""
    return event.body_field == BODY_FIELD and "topic" in event.record and "offset" in event.record


def key_from_record(event: Event) -> bytes | None:
    """The source record's key, back in wire form (``None`` when it had none)."""
    key = event.record.get("key")
    return None if key is None else encode_payload(key)


def headers_from_record(event: Event) -> list[tuple[str, bytes]]:
    """The source record's headers, back in wire form; malformed entries are skipped."""
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
