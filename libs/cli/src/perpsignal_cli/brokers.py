"""One line for a command that cannot reach Kafka (`record`, `replay`, `topics`).

A user without a broker saw aiokafka's own `ERROR aiokafka: Unable connect to ...` log line and
then ours, which repeated the client's error type ("KafkaConnectionError: KafkaConnectionError:
Unable to bootstrap from [('127.0.0.1', 1, <AddressFamily.AF_INET: 2>)]") without saying which
setting chose the address. The client is kept quiet while it connects (the command reports the
failure itself) and the failure is said once: the address tried and the setting that sets it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from aiokafka.errors import KafkaConnectionError

from perpsignal_common.errors import DependencyUnavailable
from perpsignal_common.settings import KafkaSettings

SETTING = "KAFKA_BOOTSTRAP_SERVERS"


@contextmanager
def quiet_kafka_connect() -> Iterator[None]:
    """Silence aiokafka's logging while a client connects: a refused connection is logged as
    an ERROR per address before the client raises, which the caller then reports itself.

    Only around the connect: once recording, aiokafka's warnings of a lost broker (it keeps
    retrying, raising nothing) are the only sign of it and stay visible."""
    client_log = logging.getLogger("aiokafka")
    level = client_log.level
    client_log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        client_log.setLevel(level)


def client_error(exc: BaseException) -> str:
    """`exc` as `Type: text` once: aiokafka's errors already start their text with the type."""
    text = str(exc)
    name = type(exc).__name__
    if not text or text == name:
        return name
    return text if text.startswith(f"{name}:") else f"{name}: {text}"


def kafka_unreachable(kafka: KafkaSettings, exc: BaseException) -> str:
    """Return the one line (without the command's prefix or `no_stack_hint`, which the
    command adds) for a broker that cannot be used."""
    root = exc
    while isinstance(root, DependencyUnavailable) and root.__cause__ is not None:
        root = root.__cause__
    where = f"at {kafka.kafka_bootstrap_servers} ({SETTING})"
    if isinstance(root, KafkaConnectionError):
        said = f"no Kafka broker answered {where}"
    elif root is exc and isinstance(exc, DependencyUnavailable):
        said = f"Kafka {where} cannot be used: {exc}"
    else:
        said = f"Kafka {where} cannot be used: {client_error(root)}"
    return said


__all__ = ["SETTING", "client_error", "kafka_unreachable", "quiet_kafka_connect"]
