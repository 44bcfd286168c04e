"""Connector options to form fields: any connector's options model gets a form."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr

from pipes.connector import ConnectorOptions
from pipes.console.forms import form_fields, secret_paths
from pipes.registry import Registry
from pipes.units import Duration


def by_name(fields: list[dict]) -> dict[str, dict]:  # type: ignore[type-arg]
    return {f["name"]: f for f in fields}


def test_the_kafka_target_form() -> None:
    fields = by_name(form_fields(Registry().connector("kafka").target.options_model))  # type: ignore[union-attr]
    assert (
        fields["topic"]["kind"] == "text" and fields["topic"]["required"] and not fields["topic"]["advanced"]
    )
    assert fields["bootstrap_servers"]["kind"] == "list"  # text or a list of texts
    assert fields["password"]["kind"] == "secret" and fields["password"]["advanced"]
    assert fields["acks"] == fields["acks"] | {"kind": "enum", "choices": [0, 1, "all"], "default": "all"}
    assert fields["idempotent"]["kind"] == "boolean" and fields["idempotent"]["default"] is True
    assert fields["linger"]["kind"] == "text" and "duration" in fields["linger"]["hint"]
    assert fields["headers"]["kind"] == "yaml" and fields["headers"]["nullable"]
    assert fields["partition"]["kind"] == "integer"
    assert fields["topic"]["description"].startswith("Topic to write to")


def test_redis_passwords_are_secrets() -> None:
    for name in ("redis_stream", "redis_list", "redis_pubsub"):
        connector = Registry().connector(name)
        for role in connector.roles:
            model = getattr(connector, role).options_model
            assert ("password",) in secret_paths(model), (name, role)


class _Auth(ConnectorOptions):
    kind: Literal["basic", "bearer"] = "basic"
    username: str | None = None
    password: SecretStr | None = None
    token: str | None = Field(default=None, json_schema_extra={"writeOnly": True})


class _Options(ConnectorOptions):
    """A third-party connector's options, with a nested model."""

    url: str
    timeout: Duration = 5.0
    scopes: list[str] = Field(default_factory=list)
    auth: _Auth | None = None
    extra: dict[str, int] | int | None = None


def test_a_third_party_connector_gets_a_form_with_nested_groups_and_its_secrets_found() -> None:
    fields = by_name(form_fields(_Options))
    assert fields["url"]["required"] and fields["url"]["kind"] == "text"
    assert fields["timeout"]["kind"] == "text" and fields["timeout"]["default"] == 5.0
    assert fields["scopes"]["kind"] == "list" and not fields["scopes"]["required"]
    assert fields["extra"]["kind"] == "yaml"
    auth = fields["auth"]
    assert auth["kind"] == "group" and auth["nullable"]
    inner = by_name(auth["fields"])
    assert inner["kind"]["choices"] == ["basic", "bearer"]
    assert inner["password"]["kind"] == "secret" and inner["token"]["kind"] == "secret"
    assert inner["username"]["kind"] == "text"
    assert secret_paths(_Options) == [("auth", "password"), ("auth", "token")]


def test_a_list_of_secrets_is_a_field_of_secrets() -> None:
    auth = by_name(form_fields(Registry().connector("webhook").source.options_model))["auth"]  # type: ignore[union-attr]
    inner = by_name(auth["fields"])
    assert inner["tokens"]["kind"] == "secrets" and inner["secrets"]["kind"] == "secrets"
    model = Registry().connector("webhook").source.options_model  # type: ignore[union-attr]
    assert {("auth", "tokens"), ("auth", "secrets")} <= set(secret_paths(model))
