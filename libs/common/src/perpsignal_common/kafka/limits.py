"""Kafka client settings that cannot work: refused at start-up, by their variable's name.

aiokafka accepts a request timeout of 0 or -1, a negative fetch wait or linger, a heartbeat
longer than the session, and fails later (every request timing out, a group that never
forms) or never says; a batch size of 0 is refused only once the consumer starts, without
the variable's name. Every client (producer, consumer loop) checks its settings here first.
"""

from __future__ import annotations

from perpsignal_common.errors import ConfigError
from perpsignal_common.settings import KafkaSettings


def check_client_settings(kafka: KafkaSettings) -> None:
    """Raise ConfigError naming the first KAFKA_* setting no client can work with."""
    positive = {
        "kafka_request_timeout_ms": kafka.kafka_request_timeout_ms,
        "kafka_session_timeout_ms": kafka.kafka_session_timeout_ms,
        "kafka_heartbeat_interval_ms": kafka.kafka_heartbeat_interval_ms,
        "kafka_max_poll_records": kafka.kafka_max_poll_records,
        "kafka_max_poll_interval_ms": kafka.kafka_max_poll_interval_ms,
    }
    for name, value in positive.items():
        if value <= 0:
            raise ConfigError(f"{name.upper()} must be greater than 0 (got {value})")
    for name, value in {
        "kafka_linger_ms": kafka.kafka_linger_ms,
        "kafka_fetch_max_wait_ms": kafka.kafka_fetch_max_wait_ms,
    }.items():
        if value < 0:
            raise ConfigError(f"{name.upper()} must not be negative (got {value})")
    partitions = kafka.kafka_topic_partitions
    if partitions is not None and partitions <= 0:
        raise ConfigError(f"KAFKA_TOPIC_PARTITIONS must be greater than 0 (got {partitions})")
    heartbeat, session = kafka.kafka_heartbeat_interval_ms, kafka.kafka_session_timeout_ms
    if heartbeat >= session:
        # the coordinator evicts a member whose heartbeats are further apart than this
        raise ConfigError(
            f"KAFKA_HEARTBEAT_INTERVAL_MS ({heartbeat}) must be less than "
            f"KAFKA_SESSION_TIMEOUT_MS ({session}); a third of it is usual"
        )
    servers = [s.strip() for s in kafka.kafka_bootstrap_servers.split(",") if s.strip()]
    if not servers:
        raise ConfigError("KAFKA_BOOTSTRAP_SERVERS is empty")
    for server in servers:
        # aiokafka took `host:abc` or `host:99999` and failed at the connect, in a ValueError
        # or OverflowError traceback counted as a broker outage (exit 3, retried by `up`)
        problem = _address_problem(server)
        if problem:
            raise ConfigError(f"KAFKA_BOOTSTRAP_SERVERS: {server!r} {problem}")
    if kafka.kafka_security_protocol.startswith("SASL"):
        # aiokafka refuses it too, but only when a client is built, in a ValueError traceback
        password = kafka.kafka_sasl_password
        if not kafka.kafka_sasl_username or password is None or not password.get_secret_value():
            raise ConfigError(
                f"KAFKA_SECURITY_PROTOCOL={kafka.kafka_security_protocol} needs "
                "KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"
            )


def _address_problem(server: str) -> str | None:
    """Say what is wrong with one bootstrap address (host, host:port, [IPv6]:port), if
    anything. A bare IPv6 address (several colons, no brackets) is left to the client."""
    if server.startswith("["):
        host, closed, rest = server[1:].partition("]")
        if not closed or (rest and not rest.startswith(":")):
            return "is not host:port ([IPv6]:port for an IPv6 address)"
        port = rest[1:] if rest else None
    elif server.count(":") == 1:
        host, port = server.split(":")
    else:
        host, port = server, None
    if not host:
        return "has no host"
    if port is not None and not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
        return "has no valid port (1-65535)"
    return None
