"""Dead-letter publishing: the original bytes, with the error and origin in headers."""

from __future__ import annotations

from datetime import UTC, datetime

from aiokafka.structs import ConsumerRecord

from perpsignal_common.events.topics import dlq_topic
from perpsignal_common.kafka.producer import EventProducer
from perpsignal_common.observability.metrics import DLQ_MESSAGES

MAX_ERROR_BYTES = 1024


def dlq_headers(
    record: ConsumerRecord[bytes, bytes], *, group: str, error: BaseException, attempts: int
) -> list[tuple[str, bytes]]:
    """Return the headers that say where a dead letter came from and why it failed."""
    reason = f"{type(error).__name__}: {error}".encode()[:MAX_ERROR_BYTES]
    origin = [(k, v) for k, v in (record.headers or ()) if not k.startswith("dlq.")]
    return [
        *origin,
        ("dlq.topic", record.topic.encode()),
        ("dlq.partition", str(record.partition).encode()),
        ("dlq.offset", str(record.offset).encode()),
        ("dlq.timestamp", str(record.timestamp).encode()),
        ("dlq.group", group.encode()),
        ("dlq.error_type", type(error).__name__.encode()),
        ("dlq.error", reason),
        ("dlq.attempts", str(attempts).encode()),
        ("dlq.failed_at", datetime.now(UTC).isoformat().encode()),
    ]


class DeadLetterPublisher:
    """Publish failed records to `<topic>.dlq` and wait for the ack before the loop commits."""

    def __init__(self, producer: EventProducer, *, service: str, group: str) -> None:
        self._producer = producer
        self._service = service
        self._group = group

    async def publish(
        self, record: ConsumerRecord[bytes, bytes], error: BaseException, attempts: int
    ) -> None:
        """Dead-letter `record`; raises DependencyUnavailable when the DLQ cannot be written."""
        headers = dlq_headers(record, group=self._group, error=error, attempts=attempts)
        await self._producer.send_raw(
            dlq_topic(record.topic), record.key, record.value, headers, wait=True
        )
        DLQ_MESSAGES.labels(self._service, record.topic, type(error).__name__).inc()
