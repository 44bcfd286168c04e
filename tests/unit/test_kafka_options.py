"""Kafka connector options and record decoding, without a broker."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from connectors.kafka import KafkaSourceOptions, KafkaTargetOptions
from connectors.kafka.options import client_kwargs
from connectors.kafka.records import decode, headers_from_record, headers_to_record
from pipes.codec import decode_body
from pipes.events import Event

SOURCE: dict[str, Any] = {"bootstrap_servers": "k:9092", "topics": ["t"], "group_id": "g"}
TARGET: dict[str, Any] = {"bootstrap_servers": "k:9092", "topic": "t"}


def error(model: type[Any], **options: Any) -> str:
    with pytest.raises(ValidationError) as info:
        model(**options)
    return str(info.value)


def test_source_defaults() -> None:
    options = KafkaSourceOptions(**SOURCE)
    assert options.starting_position == "latest"
    assert options.session_timeout == 10.0
    assert options.security_protocol == "PLAINTEXT"
    kwargs = client_kwargs(options, "orders")
    assert kwargs == {
        "bootstrap_servers": ["k:9092"],
        "client_id": "pipes-orders",
        "security_protocol": "PLAINTEXT",
    }


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"topics": None}, "exactly one of topics"),
        ({"topic_pattern": "t.*"}, "exactly one of topics"),
        ({"topics": None, "topic_pattern": "("}, "not a valid regex"),
        ({"topics": []}, "at least one topic"),
        ({"group_id": ""}, "group_id"),
        ({"starting_position": "beginning"}, "starting_position"),
        ({"session_timeout": "2s", "heartbeat_interval": "3s"}, "below session_timeout"),
        ({"session_timeout": "soon"}, "invalid duration"),
        ({"security_protocol": "SASL_SSL"}, "needs sasl_mechanism"),
        ({"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN"}, "needs username and password"),
        ({"sasl_mechanism": "PLAIN", "username": "u", "password": "p"}, "needs security_protocol SASL"),
        ({"username": "u"}, "only used with SASL"),
        ({"ssl_cafile": "/ca.pem"}, "need security_protocol SSL or SASL_SSL"),
        ({"security_protocol": "SSL", "ssl_certfile": "/c.pem"}, "go together"),
        ({"bootstrap_servers": " , "}, "at least one host:port"),
        ({"unknown": 1}, "Extra inputs are not permitted"),
    ],
)
def test_source_rejects(options: dict[str, Any], message: str) -> None:
    assert message in error(KafkaSourceOptions, **{**SOURCE, **options})


def test_sasl_options_reach_the_client_without_leaking_the_password() -> None:
    options = KafkaSourceOptions(
        **SOURCE,
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-512",
        username="u",
        password="s3cret",
    )
    assert "s3cret" not in repr(options)
    kwargs = client_kwargs(options, "p")
    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (kwargs["sasl_plain_username"], kwargs["sasl_plain_password"]) == ("u", "s3cret")


def test_tls_builds_a_context() -> None:
    options = KafkaSourceOptions(**{**SOURCE, "bootstrap_servers": ["a:1", "b:2"]}, security_protocol="SSL")
    kwargs = client_kwargs(options, "p")
    assert kwargs["bootstrap_servers"] == ["a:1", "b:2"]
    assert kwargs["ssl_context"] is not None


def test_target_defaults_and_checks() -> None:
    options = KafkaTargetOptions(**TARGET)
    assert (options.acks, options.idempotent, options.key, options.headers) == ("all", True, None, None)
    assert KafkaTargetOptions(**TARGET, acks=1, idempotent=False).acks == 1
    assert "idempotent: true needs acks: all" in error(KafkaTargetOptions, **TARGET, acks=1)
    assert "template" in error(KafkaTargetOptions, **{**TARGET, "topic": "orders.<$.value..x>"}).lower()
    assert "template" in error(KafkaTargetOptions, **TARGET, key="<$.a").lower()
    assert "max_batch_size" in error(KafkaTargetOptions, **TARGET, max_batch_size=2_000_000)
    assert "compression_type" in error(KafkaTargetOptions, **TARGET, compression_type="brotli")


@given(st.one_of(st.binary(max_size=40), st.text(max_size=20).map(str.encode)))
def test_decode_is_decode_body(raw: bytes) -> None:
    assert decode(raw) == decode_body(raw)


def test_headers_round_trip() -> None:
    headers = [("a", b"x"), ("a", b"\xff\x00"), ("empty", b"")]
    record = {"topic": "t", "offset": 1, "headers": headers_to_record(headers), "value": 1}
    event = Event(record=record, partition="t-0", position=1, body_field="value")
    assert record["headers"] == [{"a": [120]}, {"a": [255, 0]}, {"empty": []}]
    assert headers_from_record(event) == headers
