"""One record that did not simply succeed: retries, the dependency grace, the dead letter.

`RetryingMixin` is the slow path of `ConsumerLoop`: a record whose first attempt raised (or
overran, or did not decode) is retried with backoff; `DependencyUnavailable` is retried until
`dependency_grace_s` and then raised (the process exits and is restarted); a
`PermanentError`, or a failure that outlives its attempts, goes to the dead-letter topic.
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiokafka import TopicPartition

from perpsignal_common.errors import DependencyUnavailable, PermanentError, PoisonMessage
from perpsignal_common.events.base import Event
from perpsignal_common.kafka.dlq import DeadLetterPublisher, error_text
from perpsignal_common.kafka.lanes import Record
from perpsignal_common.kafka.options import ConsumerOptions, Decoder, Handler
from perpsignal_common.observability.metrics import HANDLE_SECONDS, HANDLER_ERRORS, MESSAGES_IN

log = logging.getLogger("perpsignal_common.kafka.consumer")


class HandlerCancelled(RuntimeError):
    """A handler raised CancelledError though nothing cancelled its worker.

    E.g. it cancelled a task of its own and awaited it. Left alone, the CancelledError ended
    the worker silently: its record was never finished (its partition's offsets stopped
    moving) and the loop ran on with one worker fewer, then none, consuming nothing.
    """


def stray_cancel(error: asyncio.CancelledError) -> HandlerCancelled | None:
    """Return `error` as a handler failure, or None when this task really is being cancelled
    (a stop, a failure's clean-up, or a timeout scope whose deadline passed)."""
    task = asyncio.current_task()
    if task is None or task.cancelling():
        return None
    return HandlerCancelled("the handler raised CancelledError without being cancelled")


class _TopicMetrics:
    """Label-bound metric children of one topic (labels() lookups are costly per record)."""

    __slots__ = ("duration", "ok", "retried")

    def __init__(self, service: str, topic: str) -> None:
        self.ok = MESSAGES_IN.labels(service, topic, "ok")
        self.retried = MESSAGES_IN.labels(service, topic, "retried")
        self.duration = HANDLE_SECONDS.labels(service, topic)


class RetryingMixin:
    """The retry and dead-letter path of a `ConsumerLoop` (state set in its __init__)."""

    _service: str
    _opts: ConsumerOptions
    _handler: Handler
    _decode: Decoder
    _dlq: DeadLetterPublisher
    _topic_metrics: dict[str, _TopicMetrics]
    _replay_until: dict[TopicPartition, int]
    processed: int

    def _metrics(self, topic: str) -> _TopicMetrics:
        m = self._topic_metrics.get(topic)
        if m is None:
            m = self._topic_metrics[topic] = _TopicMetrics(self._service, topic)
        return m

    async def _process(
        self,
        record: Record,
        *,
        first_attempt: int = 1,
        per_attempt_timeout: bool = False,
        event: Event | None = None,
        started: float | None = None,
        failed: Exception | None = None,
    ) -> None:
        """Decode and handle one record with retries; `failed` continues after a first
        attempt (of `event`, begun at `started`) that raised it."""
        topic = record.topic
        if event is None:
            try:
                event = self._decode(record.value)
            except PermanentError as exc:
                await self._dead_letter(record, exc, attempts=0)
                return
            except Exception as exc:
                # a decoder that fails otherwise than it should (a bug its input found): the
                # record cannot be read either way, and failing the loop on it would fail it
                # again after every restart
                log.exception("the decoder failed; dead-lettering", extra={"topic": topic})
                reason = PoisonMessage(
                    f"the decoder failed: {type(exc).__name__}: {error_text(exc)}"
                )
                await self._dead_letter(record, reason, attempts=0)
                return
        metrics = self._metrics(topic)
        if started is None:
            started = time.perf_counter()
        deadline = (
            time.monotonic() - (time.perf_counter() - started) + self._opts.dependency_grace_s
        )
        attempt = first_attempt - 1
        while True:
            attempt += 1
            try:
                if failed is not None:
                    first_failure, failed = failed, None
                    raise first_failure
                try:
                    if per_attempt_timeout:
                        async with asyncio.timeout(self._opts.handler_timeout_s):
                            await self._handler(event, record)
                    else:
                        await self._handler(event, record)
                except asyncio.CancelledError as cancelled:
                    stray = stray_cancel(cancelled)
                    if stray is None:
                        raise
                    raise stray from cancelled
                metrics.duration.observe(time.perf_counter() - started)
                metrics.ok.inc()
                self.processed += 1
                return
            except DependencyUnavailable as exc:
                HANDLER_ERRORS.labels(self._service, topic, type(exc).__name__).inc()
                if time.monotonic() > deadline:
                    log.error(
                        "dependency still down after grace period; giving up",
                        extra={"topic": topic, "error": str(exc)},
                    )
                    raise
                log.warning(
                    "dependency unavailable, will retry",
                    extra={"topic": topic, "error": str(exc), "attempt": attempt},
                )
                await self._opts.retry.sleep(self._opts.retry.delay(min(attempt, 6)))
            except PermanentError as exc:
                HANDLER_ERRORS.labels(self._service, topic, type(exc).__name__).inc()
                await self._dead_letter(record, exc, attempts=attempt)
                return
            except Exception as exc:  # transient failures and bugs: bounded retry, then DLQ
                HANDLER_ERRORS.labels(self._service, topic, type(exc).__name__).inc()
                if attempt >= self._opts.retry.max_attempts:
                    log.exception(
                        "handler failed after retries; dead-lettering",
                        extra={"topic": topic, "offset": record.offset},
                    )
                    await self._dead_letter(record, exc, attempts=attempt)
                    return
                metrics.retried.inc()
                await self._opts.retry.sleep(self._opts.retry.delay(attempt))

    async def _dead_letter(
        self, record: Record, error: BaseException, attempts: int, *, unreadable: bool = False
    ) -> None:
        until = self._replay_until.get(TopicPartition(record.topic, record.partition))
        if until is not None and record.offset < until:
            # re-read only to rebuild state (below the committed offset): this group handled
            # it before, dead-lettering it then if it failed; a second copy per restart would
            # be a duplicate for whoever reprocesses the DLQ
            log.info(
                "replayed record fails again; it was dead-lettered when first read",
                extra={
                    "topic": record.topic,
                    "partition": record.partition,
                    "offset": record.offset,
                    "error_type": type(error).__name__,
                },
            )
            return
        log.warning(
            "dead-lettering message",
            extra={
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "error_type": type(error).__name__,
                "error": error_text(error)[:300],
            },
        )
        # the broker may be down for a while (a handler's DependencyUnavailable is retried
        # for the same grace): the record stays in hand, uncommitted, until its dead letter
        # is acknowledged; only past the grace does the loop fail (the process restarts)
        deadline = time.monotonic() + self._opts.dependency_grace_s
        tries = 0
        while True:
            try:
                await self._dlq.publish(record, error, attempts, unreadable=unreadable)
                break
            except DependencyUnavailable as exc:
                tries += 1
                if time.monotonic() > deadline:
                    log.error(
                        "dead-letter topic still unavailable after grace period; giving up",
                        extra={"topic": record.topic, "error": str(exc)},
                    )
                    raise
                log.warning(
                    "dead-letter topic unavailable, will retry",
                    extra={"topic": record.topic, "error": str(exc), "attempt": tries},
                )
                await self._opts.retry.sleep(self._opts.retry.delay(min(tries, 6)))
        MESSAGES_IN.labels(self._service, record.topic, "dead_lettered").inc()
