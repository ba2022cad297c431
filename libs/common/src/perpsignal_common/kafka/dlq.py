"""Dead-letter publishing: the original bytes, with the error and origin in headers."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from aiokafka.errors import MessageSizeTooLargeError, RecordListTooLargeError
from aiokafka.structs import ConsumerRecord

from perpsignal_common.errors import DependencyUnavailable
from perpsignal_common.events.topics import dlq_topic
from perpsignal_common.kafka.producer import EventProducer
from perpsignal_common.observability.metrics import DLQ_MESSAGES

log = logging.getLogger(__name__)

MAX_ERROR_BYTES = 1024
# what a dead letter too large for the DLQ topic still carries of the original: a key this
# short (it picks the partition) and origin headers this small in total
MAX_KEPT_KEY_BYTES = 1024
MAX_KEPT_HEADER_BYTES = 64 * 1024

# the client's refusal (larger than max_request_size) and the broker's (max.message.bytes)
_TOO_LARGE = (MessageSizeTooLargeError, RecordListTooLargeError)


def error_text(error: BaseException) -> str:
    """Return `str(error)`, or `<unprintable>` when its `__str__` itself raises (a bug in
    an exception class must not keep a record from its dead letter)."""
    try:
        return str(error)
    except Exception:
        return "<unprintable>"


def _reason(error: BaseException) -> bytes:
    """`Type: message` as UTF-8, cut to MAX_ERROR_BYTES on a character boundary."""
    text = f"{type(error).__name__}: {error_text(error)}"
    cut = text.encode("utf-8", "backslashreplace")[:MAX_ERROR_BYTES]
    return cut.decode("utf-8", "ignore").encode()


def dlq_headers(
    record: ConsumerRecord[bytes, bytes], *, group: str, error: BaseException, attempts: int
) -> list[tuple[str, bytes]]:
    """Return the headers that say where a dead letter came from and why it failed."""
    origin = [(k, v) for k, v in (record.headers or ()) if not k.startswith("dlq.")]
    return [*origin, *_own_headers(record, group=group, error=error, attempts=attempts)]


def _own_headers(
    record: ConsumerRecord[bytes, bytes], *, group: str, error: BaseException, attempts: int
) -> list[tuple[str, bytes]]:
    return [
        ("dlq.topic", record.topic.encode()),
        ("dlq.partition", str(record.partition).encode()),
        ("dlq.offset", str(record.offset).encode()),
        ("dlq.timestamp", str(record.timestamp).encode()),
        ("dlq.group", group.encode()),
        ("dlq.error_type", type(error).__name__.encode()),
        ("dlq.error", _reason(error)),
        ("dlq.attempts", str(attempts).encode()),
        ("dlq.failed_at", datetime.now(UTC).isoformat().encode()),
    ]


def slim_dlq_headers(
    record: ConsumerRecord[bytes, bytes], *, group: str, error: BaseException, attempts: int
) -> tuple[bytes | None, list[tuple[str, bytes]]]:
    """Return the key and headers of a dead letter without the original value.

    For a record whose copy the DLQ topic refuses as too large: the `dlq.*` headers still
    say where the original is (`dlq.topic`, `dlq.partition`, `dlq.offset`) and why it failed;
    `dlq.dropped` says which parts were left out and their sizes.
    """
    value = record.value
    dropped = [f"value={0 if value is None else len(value)}"]
    key = record.key
    if key is not None and len(key) > MAX_KEPT_KEY_BYTES:
        dropped.append(f"key={len(key)}")
        key = None
    origin = [(k, v) for k, v in (record.headers or ()) if not k.startswith("dlq.")]
    size = sum(len(k.encode("utf-8", "surrogatepass")) + len(v or b"") for k, v in origin)
    if size > MAX_KEPT_HEADER_BYTES:
        dropped.append(f"headers={size}")
        origin = []
    own = _own_headers(record, group=group, error=error, attempts=attempts)
    return key, [*origin, *own, ("dlq.dropped", ",".join(dropped).encode())]


class DeadLetterPublisher:
    """Publish failed records to `<topic>.dlq` and wait for the ack before the loop commits."""

    def __init__(self, producer: EventProducer, *, service: str, group: str) -> None:
        self._producer = producer
        self._service = service
        self._group = group

    async def publish(
        self,
        record: ConsumerRecord[bytes, bytes],
        error: BaseException,
        attempts: int,
        *,
        unreadable: bool = False,
    ) -> None:
        """Dead-letter `record`; raises DependencyUnavailable when the DLQ cannot be written.

        A record the DLQ topic refuses as too large (the original plus the `dlq.*` headers
        can exceed the producer's or the topic's size limit) is dead-lettered without its
        value (see `slim_dlq_headers`): refusing it would stop the partition for good, the
        process failing on the same record after every restart.

        `unreadable`: `record` only says where a record is that the client could not unpack
        (see `kafka/unreadable.py`); the dead letter has an empty value and
        `dlq.dropped: unreadable`.
        """
        topic = dlq_topic(record.topic)
        headers = dlq_headers(record, group=self._group, error=error, attempts=attempts)
        if unreadable:
            await self._send(topic, None, b"", [*headers, ("dlq.dropped", b"unreadable")])
            DLQ_MESSAGES.labels(self._service, record.topic, type(error).__name__).inc()
            return
        try:
            await self._send(topic, record.key, record.value, headers)
        except DependencyUnavailable as exc:
            if not isinstance(exc.__cause__, _TOO_LARGE):
                raise
            key, slim = slim_dlq_headers(record, group=self._group, error=error, attempts=attempts)
            log.warning(
                "dead letter too large for the DLQ topic; sent without the original value",
                extra={
                    "topic": record.topic,
                    "partition": record.partition,
                    "offset": record.offset,
                    "dropped": dict(slim)["dlq.dropped"].decode(),
                },
            )
            await self._send(topic, key, None, slim)
        DLQ_MESSAGES.labels(self._service, record.topic, type(error).__name__).inc()

    async def _send(
        self, topic: str, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]
    ) -> None:
        if key is None and value is None:
            # the client refuses a record with neither (an AssertionError, which stopped the
            # loop): an empty value stands in, and `dlq.null_value` says it was null
            value = b""
            headers = [*headers, ("dlq.null_value", b"true")]
        await self._producer.send_raw(topic, key, value, headers, wait=True)
