"""Settings shared by every service, read from the environment (pydantic-settings).

Env names are flat and unprefixed where design.md names them (`KAFKA_BOOTSTRAP_SERVERS`,
`DATABASE_URL`); each service adds its own `<SERVICE>_*` settings. Every field has a safe
default so a bare `perpsignal up` works; `.env.example` documents all of them.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Literal, Self

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from perpsignal_common.errors import ConfigError

if TYPE_CHECKING:
    from perpsignal_common.db.url import PgConnect

_URL_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s,]*@")
_SECRET_NAME = re.compile(r"(key|keys|token|secret|password)$")


def redact_credentials(value: str) -> str:
    """Return `value` with the user:password part of every URL in it replaced by `***`."""
    return _URL_USERINFO.sub(r"\g<scheme>***@", value)


class _RedactedRepr(BaseSettings):
    # `inf` and `nan` parse as floats and pass `ge`/`gt` bounds (inf >= 0): an absurd value
    # (a neutral band of inf, a timeout of nan) must fail at start-up, not act silently
    model_config = SettingsConfigDict(allow_inf_nan=False)

    # a settings repr lands in logs and tracebacks: no URL credentials, no plain-str keys
    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            if isinstance(value, str) and value:
                secret = bool(name and _SECRET_NAME.search(name))
                yield name, "***" if secret else redact_credentials(value)
            else:
                yield name, value


class KafkaSettings(_RedactedRepr):
    """How to reach Kafka and how clients behave (see shared broker notes for the numbers)."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092", description="Comma-separated bootstrap servers"
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT", description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        default="SCRAM-SHA-512", description="SASL mechanism when SASL is on"
    )
    kafka_sasl_username: str | None = Field(default=None, description="SASL user name")
    kafka_sasl_password: SecretStr | None = Field(default=None, description="SASL password")
    # The embedded broker rejects aiokafka's InitProducerId version (it wants v3+), and it
    # has no TLS, so it never serves staging/prod: unset = on there, off in dev/test
    kafka_idempotent_producer: bool | None = Field(
        default=None,
        description="Idempotent producer (no duplicates or reordering on producer retries); "
        "unset = on with ENVIRONMENT=staging/prod (Apache Kafka), off in dev/test (the "
        "embedded broker refuses it; compose's Apache Kafka sets true)",
    )
    kafka_compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = Field(
        default="lz4", description="Producer compression codec"
    )
    kafka_linger_ms: int = Field(default=5, description="Producer batching delay")
    kafka_request_timeout_ms: int = Field(
        default=30_000, description="Broker request timeout; a longer outage fails the send"
    )
    # Group joins wait half the session timeout on the embedded broker
    kafka_session_timeout_ms: int = Field(
        default=6_000, description="Consumer group session timeout (joins wait half of it)"
    )
    kafka_heartbeat_interval_ms: int = Field(
        default=2_000, description="Consumer heartbeat, at most a third of the session timeout"
    )
    # The embedded broker polls rather than waking waiting fetches: latency ~ U(0, wait/2)
    kafka_fetch_max_wait_ms: int = Field(
        default=50, description="Fetch wait; each hop adds about uniform(0, wait/2) latency"
    )
    kafka_max_poll_records: int = Field(default=500, description="Records per consumer batch")
    # A commit is a broker round trip that the fetch loop waits for: once per batch it cost
    # more than handling the batch. Offsets still move only past durable effects; a longer
    # interval only means more (idempotent) redelivery after a crash
    kafka_commit_interval_ms: int = Field(
        default=250,
        ge=0,
        description="Commit finished offsets at most this often (0 = after every batch); "
        "they are always committed on shutdown and rebalance",
    )
    kafka_max_poll_interval_ms: int = Field(
        default=300_000, description="Max time between polls before the group evicts a member"
    )
    kafka_ssl_cafile: str | None = Field(
        default=None,
        description="PEM CA bundle that signed the brokers' certificates (e.g. Strimzi's "
        "cluster CA) for SSL/SASL_SSL; unset = the system CAs",
    )
    kafka_create_topics: bool = Field(
        default=True, description="Create missing topics at start-up (idempotent)"
    )
    kafka_topic_watch_s: float = Field(
        default=2.0,
        ge=0,
        description="With KAFKA_CREATE_TOPICS, re-create vanished topics every N s (an "
        "embedded broker comes back empty after a restart); 0 = only at start-up",
    )
    kafka_topic_partitions: int | None = Field(
        default=None, description="Override the registry's partition counts (tests)"
    )
    kafka_topic_prefix: str = Field(
        default="",
        description="Prefix every topic name and consumer group id (deployments sharing a "
        "cluster, tests)",
    )

    @field_validator("kafka_idempotent_producer", "kafka_topic_partitions", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # `.env.example` lists unset settings as `NAME=`: an empty value means unset
        return None if value == "" else value

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

            kwargs["ssl_context"] = create_ssl_context(cafile=self.kafka_ssl_cafile)
        return kwargs

    def idempotent_producer(self) -> bool:
        """Return whether producers are idempotent (unset: off, unless a service's
        `ENVIRONMENT` resolved it; see `ServiceSettings`)."""
        return bool(self.kafka_idempotent_producer)

    def topic(self, name: str) -> str:
        """Return the physical name of a logical topic (applies the prefix)."""
        return self.kafka_topic_prefix + name

    def group(self, name: str) -> str:
        """Return the consumer group id of a logical group (the topics' prefix): deployments
        sharing a cluster under different prefixes must not rebalance together."""
        return self.kafka_topic_prefix + name


class DatabaseSettings(_RedactedRepr):
    """PostgreSQL connection (SQLAlchemy async URL; plain postgresql:// is accepted)."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    database_url: SecretStr = Field(
        default=SecretStr("postgresql+asyncpg://postgres@127.0.0.1:5432/perpsignal"),
        description="PostgreSQL URL; secret because it may hold a password",
    )
    database_pool_size: int = Field(default=5, description="Connections per process")
    database_statement_timeout_ms: int = Field(
        default=5_000, description="Server-side timeout of every statement"
    )

    @field_validator("database_url")
    @classmethod
    def _url_parses(cls, v: SecretStr) -> SecretStr:
        from perpsignal_common.db.url import parse_database_url

        try:  # a bad scheme or sslmode fails at start-up
            parse_database_url(v.get_secret_value())
        except ConfigError:
            raise
        except Exception as exc:
            # never a ValueError out of here: pydantic would print the input, password and all
            raise ConfigError(f"DATABASE_URL cannot be read: {type(exc).__name__}") from None
        return v

    def async_url(self) -> str:
        """Return the URL as pasted, with the asyncpg driver (libpq parameters kept).

        Give it to `perpsignal_common.db` (engine, migrations), which understands them; for
        SQLAlchemy or asyncpg directly use `connect()`.
        """
        url = self.database_url.get_secret_value()
        for prefix in ("postgresql://", "postgres://"):
            if url.startswith(prefix):
                return "postgresql+asyncpg://" + url[len(prefix) :]
        return url

    def connect(self) -> PgConnect:
        """Return the parsed URL: SQLAlchemy URL and asyncpg kwargs (TLS context included)."""
        from perpsignal_common.db.url import parse_database_url

        return parse_database_url(self.database_url.get_secret_value())


class OpsSettings(_RedactedRepr):
    """The ops HTTP server (`/healthz`, `/readyz`, `/metrics`) and lifecycle deadlines."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    # loopback unless told otherwise: /metrics and the DLQ counts are unauthenticated
    # (Kubernetes sets 0.0.0.0, behind its NetworkPolicies)
    ops_host: str = Field(
        default="127.0.0.1", description="Ops server address (0.0.0.0 in containers)"
    )
    ops_port: int = Field(default=0, description="0 = the service's default port")
    startup_timeout_s: float = Field(default=60.0, description="Deadline for start-up")
    shutdown_timeout_s: float = Field(
        default=20.0,
        description="Deadline to drain and commit after SIGTERM (then the run is cancelled; "
        "a second SIGTERM cancels it at once), and as long again to close",
    )


class ServiceSettings(_RedactedRepr):
    """Base of every `<Service>Settings`: identity, logging and the shared groups."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True, env_file=None)

    service_name: str = "perpsignal"
    environment: Literal["dev", "test", "staging", "prod"] = Field(
        default="dev",
        description="dev, test, staging or prod (staging/prod require TLS to Kafka and to a "
        "database on another host)",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Log level"
    )
    log_format: Literal["json", "text"] = Field(
        default="json", description="json (one object per line) or text"
    )
    event_max_clock_skew_s: float = Field(
        default=300.0,
        ge=0,
        description="How far ahead of this machine's clock an event time may be; a later "
        "one is refused (dead-lettered)",
    )
    kafka: KafkaSettings = Field(default_factory=KafkaSettings, validate_default=True)
    ops: OpsSettings = Field(default_factory=OpsSettings)

    @field_validator("kafka")
    @classmethod
    def _idempotence_by_environment(
        cls, kafka: KafkaSettings, info: ValidationInfo
    ) -> KafkaSettings:
        # staging/prod run on Apache Kafka (they require TLS, which the embedded broker lacks)
        if kafka.kafka_idempotent_producer is not None:
            return kafka
        secure = info.data.get("environment") in ("staging", "prod")
        return kafka.model_copy(update={"kafka_idempotent_producer": secure})

    @model_validator(mode="after")
    def _prod_invariants(self) -> Self:
        """Refuse to run in staging/prod with every reason at once, the service's own too
        (`production_problems`): one fix per start-up was a round trip per setting."""
        if self.environment not in ("prod", "staging"):
            return self
        problems = []
        # SASL_PLAINTEXT sends the SASL exchange and every record in clear: TLS or nothing
        protocol = self.kafka.kafka_security_protocol
        if protocol not in ("SSL", "SASL_SSL"):
            problems.append(
                f"ENVIRONMENT={self.environment} requires KAFKA_SECURITY_PROTOCOL=SSL or "
                f"SASL_SSL (got {protocol})"
            )
        # the database's password exchange and rows, like Kafka's records: TLS or nothing
        for name in type(self).model_fields:
            db = getattr(self, name)
            risk = db.connect().plaintext_risk() if isinstance(db, DatabaseSettings) else None
            if risk:
                problems.append(
                    f"ENVIRONMENT={self.environment} requires TLS to the database: {risk}; "
                    "add ?sslmode=verify-full (or require / verify-ca) to DATABASE_URL"
                )
        problems += self.production_problems()
        if problems:
            raise ConfigError("; ".join(problems))
        return self

    def production_problems(self) -> list[str]:
        """Return what a service's own settings forbid in staging/prod (none by default)."""
        return []
