"""Settings shared by every service, read from the environment (pydantic-settings).

Env names are flat and unprefixed where design.md names them (`KAFKA_BOOTSTRAP_SERVERS`,
`DATABASE_URL`); each service adds its own `<SERVICE>_*` settings. Every field has a safe
default so a bare `perpsignal up` works; `.env.example` documents all of them.
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from perpsignal_common.errors import ConfigError


class KafkaSettings(BaseSettings):
    """How to reach Kafka and how clients behave (see shared broker notes for the numbers)."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092", description="Comma-separated bootstrap servers"
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    # The embedded broker rejects aiokafka's InitProducerId version: off by default, on for
    # real Kafka (compose and k8s set it)
    kafka_idempotent_producer: bool = False
    kafka_compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = "lz4"
    kafka_linger_ms: int = 5
    kafka_request_timeout_ms: int = 30_000
    # Group joins wait half the session timeout on the embedded broker
    kafka_session_timeout_ms: int = 6_000
    kafka_heartbeat_interval_ms: int = 2_000
    # The embedded broker polls rather than waking waiting fetches: latency ~ U(0, wait/2)
    kafka_fetch_max_wait_ms: int = 50
    kafka_max_poll_records: int = 500
    kafka_max_poll_interval_ms: int = 300_000
    kafka_create_topics: bool = Field(
        default=True, description="Create missing topics at start-up (idempotent)"
    )
    kafka_topic_partitions: int | None = Field(
        default=None, description="Override the registry's partition counts (tests)"
    )
    kafka_topic_prefix: str = Field(
        default="", description="Prefix every topic name (isolation in tests)"
    )

    def client_kwargs(self) -> dict[str, object]:
        """Return the connection kwargs common to aiokafka producers, consumers and admins."""
        kwargs: dict[str, object] = {
            "bootstrap_servers": self.kafka_bootstrap_servers,
            "security_protocol": self.kafka_security_protocol,
            "request_timeout_ms": self.kafka_request_timeout_ms,
        }
        if self.kafka_security_protocol.startswith("SASL"):
            kwargs["sasl_mechanism"] = self.kafka_sasl_mechanism
            kwargs["sasl_plain_username"] = self.kafka_sasl_username
            kwargs["sasl_plain_password"] = (
                self.kafka_sasl_password.get_secret_value() if self.kafka_sasl_password else None
            )
        if self.kafka_security_protocol in ("SSL", "SASL_SSL"):
            from aiokafka.helpers import create_ssl_context

            kwargs["ssl_context"] = create_ssl_context()
        return kwargs

    def topic(self, name: str) -> str:
        """Return the physical name of a logical topic (applies the prefix)."""
        return self.kafka_topic_prefix + name


class DatabaseSettings(BaseSettings):
    """PostgreSQL connection (SQLAlchemy async URL; plain postgresql:// is accepted)."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    database_url: SecretStr = Field(
        default=SecretStr("postgresql+asyncpg://postgres@127.0.0.1:5432/perpsignal"),
        description="PostgreSQL URL; secret because it may hold a password",
    )
    database_pool_size: int = 5
    database_statement_timeout_ms: int = 5_000

    def async_url(self) -> str:
        """Return the URL with the asyncpg driver."""
        url = self.database_url.get_secret_value()
        for prefix in ("postgresql://", "postgres://"):
            if url.startswith(prefix):
                return "postgresql+asyncpg://" + url[len(prefix) :]
        return url


class OpsSettings(BaseSettings):
    """The ops HTTP server (`/healthz`, `/readyz`, `/metrics`) and lifecycle deadlines."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    ops_host: str = "0.0.0.0"
    ops_port: int = Field(default=0, description="0 = the service's default port")
    startup_timeout_s: float = 60.0
    shutdown_timeout_s: float = 20.0


class ServiceSettings(BaseSettings):
    """Base of every `<Service>Settings`: identity, logging and the shared groups."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True, env_file=None)

    service_name: str = "perpsignal"
    environment: Literal["dev", "test", "staging", "prod"] = "dev"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = "json"
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    ops: OpsSettings = Field(default_factory=OpsSettings)

    @model_validator(mode="after")
    def _prod_invariants(self) -> Self:
        if self.environment == "prod" and self.kafka.kafka_security_protocol == "PLAINTEXT":
            raise ConfigError(
                "ENVIRONMENT=prod requires KAFKA_SECURITY_PROTOCOL other than PLAINTEXT"
            )
        return self
