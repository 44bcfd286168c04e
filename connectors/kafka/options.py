"""Options shared by the Kafka source and target: where the brokers are and how to reach them.

Security settings are checked together when the pipe is loaded, so that a
half-configured connection (SASL without a password, a certificate without its
key) fails validation with one line instead of a broker handshake error later.
"""

from __future__ import annotations

from typing import Any, Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator

from pipes.connector import ConnectorOptions

__all__ = ["KafkaConnectionOptions", "client_kwargs"]

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


class KafkaConnectionOptions(ConnectorOptions):
    """Connection and security options of every Kafka client."""

    bootstrap_servers: str | list[str] = Field(
        description="Brokers to bootstrap from: `host:port`, a comma-separated list, or a YAML list.",
    )
    client_id: str | None = Field(
        default=None,
        description="Client id the brokers see (logs, quotas). Default: `pipes-<pipe name>`.",
    )
    security_protocol: SecurityProtocol = Field(
        default="PLAINTEXT",
        description="PLAINTEXT, SSL (TLS), SASL_PLAINTEXT or SASL_SSL (SASL over TLS).",
    )
    sasl_mechanism: SaslMechanism | None = Field(
        default=None,
        description="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; required with a SASL protocol.",
    )
    username: str | None = Field(default=None, description="SASL user name.")
    password: SecretStr | None = Field(
        default=None, description="SASL password (use `${ENV}` interpolation, not a literal)."
    )
    ssl_cafile: str | None = Field(
        default=None,
        description="PEM file of CA certificates to verify the brokers (default: the system CAs).",
    )
    ssl_certfile: str | None = Field(
        default=None, description="PEM client certificate (chain) for mutual TLS."
    )
    ssl_keyfile: str | None = Field(default=None, description="PEM private key of `ssl_certfile`.")

    @field_validator("bootstrap_servers")
    @classmethod
    def _servers(cls, value: str | list[str]) -> str | list[str]:
        servers = value.split(",") if isinstance(value, str) else value
        if not [s for s in servers if s.strip()]:
            raise ValueError("bootstrap_servers: give at least one host:port")
        return value

    @model_validator(mode="after")
    def _security(self) -> Self:
        protocol = self.security_protocol
        sasl = protocol.startswith("SASL_")
        tls = protocol.endswith("SSL")
        if sasl:
            if self.sasl_mechanism is None:
                raise ValueError(
                    f"security_protocol {protocol} needs sasl_mechanism "
                    "(PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)"
                )
            if not self.username or self.password is None:
                raise ValueError(f"sasl_mechanism {self.sasl_mechanism} needs username and password")
        else:
            if self.sasl_mechanism is not None:
                raise ValueError(
                    f"sasl_mechanism needs security_protocol SASL_PLAINTEXT or SASL_SSL, not {protocol}"
                )
            if self.username is not None or self.password is not None:
                raise ValueError(
                    f"username/password are only used with SASL_PLAINTEXT or SASL_SSL, not {protocol}"
                )
        if not tls and (self.ssl_cafile or self.ssl_certfile or self.ssl_keyfile):
            raise ValueError(
                f"ssl_cafile/ssl_certfile/ssl_keyfile need security_protocol SSL or SASL_SSL, not {protocol}"
            )
        if bool(self.ssl_certfile) != bool(self.ssl_keyfile):
            raise ValueError("ssl_certfile and ssl_keyfile go together: give both or neither")
        return self

    def servers(self) -> list[str]:
        raw = (
            self.bootstrap_servers.split(",")
            if isinstance(self.bootstrap_servers, str)
            else self.bootstrap_servers
        )
        return [s.strip() for s in raw if s.strip()]


def client_kwargs(options: KafkaConnectionOptions, pipe: str) -> dict[str, Any]:
    """Keyword arguments every aiokafka client takes, from the options (builds the TLS context)."""
    kwargs: dict[str, Any] = {
        "bootstrap_servers": options.servers(),
        "client_id": options.client_id or f"pipes-{pipe}",
        "security_protocol": options.security_protocol,
    }
    if options.security_protocol.endswith("SSL"):
        from aiokafka.helpers import create_ssl_context

        kwargs["ssl_context"] = create_ssl_context(
            cafile=options.ssl_cafile,
            certfile=options.ssl_certfile,
            keyfile=options.ssl_keyfile,
        )
    if options.sasl_mechanism is not None:
        kwargs["sasl_mechanism"] = options.sasl_mechanism
        kwargs["sasl_plain_username"] = options.username
        kwargs["sasl_plain_password"] = (
            options.password.get_secret_value() if options.password is not None else None
        )
    return kwargs
