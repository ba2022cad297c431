"""The consumer loop: decode, handle, then commit; dead-letter what cannot be handled.

Semantics (design.md section 3): at-least-once delivery with effectively-once effects. A
partition's offset is committed only up to the last record whose handler finished (its
produced events acknowledged) or that was dead-lettered. Records with different keys are
handled concurrently (bounded); records with the same key run in order. Fetching does not
wait for a batch to finish: each key's records of a new batch queue behind that key's earlier
records, so one slow key (an LLM call) never holds up the others, and the number of records in
flight is bounded. On stop the loop finishes the records in hand, commits the contiguous done
prefix of each partition and returns.

How: every (partition, key) with queued records is a lane; a fixed pool of `concurrency`
workers takes ready lanes and handles each lane's records in order, so at most one worker
holds a key and no task is created per key or batch. Commits go out at most every
`KAFKA_COMMIT_INTERVAL_MS` (a commit is a round trip the fetch loop waits for), and always
on stop and before a rebalance takes partitions away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from perpsignal_common.errors import DependencyUnavailable, PermanentError
from perpsignal_common.events.base import Event
from perpsignal_common.events.registry import decode
from perpsignal_common.kafka.admin import ensure_topics
from perpsignal_common.kafka.dlq import DeadLetterPublisher
from perpsignal_common.kafka.lanes import Lane, OffsetBook
from perpsignal_common.kafka.lanes import Record as Record  # re-exported: handlers type with it
from perpsignal_common.kafka.positions import partitions_for, reset_past_log_end
from perpsignal_common.kafka.producer import EventProducer
from perpsignal_common.observability.metrics import (
    CONSUMER_LAG,
    HANDLE_SECONDS,
    HANDLER_ERRORS,
    MESSAGES_IN,
)
from perpsignal_common.retry import RetryPolicy
from perpsignal_common.settings import KafkaSettings

log = logging.getLogger(__name__)

Handler = Callable[[Event, Record], Awaitable[None]]
Decoder = Callable[[bytes | None], Event]
_LaneKey: TypeAlias = "tuple[TopicPartition, bytes | None]"
# records one lane handles before it goes to the back of the ready queue
_TURN = 256


@dataclass
class ConsumerOptions:
    """Behaviour of one consumer loop."""

    group_id: str | None
    topics: Sequence[str]  # logical names; the Kafka prefix is applied
    concurrency: int = 16
    handler_timeout_s: float = 30.0
    dependency_grace_s: float = 120.0
    commit_timeout_s: float = 10.0
    batch_max_records: int | None = None
    # attempts per record before it is dead-lettered, and the backoff between them
    retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(max_attempts=5))
    # Read every partition without a group (state fan-in, e.g. market.global for scorers)
    assign_all: bool = False
    # Rebuild in-memory state after (re)assignment: seek each partition back this many
    # records before its committed offset (-1 = from the beginning). Records before the
    # committed offset are "replays": `ConsumerLoop.is_replay(record)` is True for them, so
    # a handler updates state but repeats no side effect
    rewind_on_assign: int | None = None
    # Called with each new assignment (after any rewind), before its records are handled:
    # e.g. to read back which outputs a killed predecessor already published
    on_assigned: Callable[[set[TopicPartition]], Awaitable[None]] | None = None


class _TopicMetrics:
    """Label-bound metric children of one topic (labels() lookups are costly per record)."""

    __slots__ = ("duration", "ok", "retried")

    def __init__(self, service: str, topic: str) -> None:
        self.ok = MESSAGES_IN.labels(service, topic, "ok")
        self.retried = MESSAGES_IN.labels(service, topic, "retried")
        self.duration = HANDLE_SECONDS.labels(service, topic)


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, loop: ConsumerLoop) -> None:
        self._loop = loop

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        # commits are periodic: hand the finished prefix to the next owner before leaving
        await self._loop._commit_before_revoke()
        self._loop._forget(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        # aiokafka fetches and hands out the new partitions' records while this callback is
        # still awaiting (committed offsets arrive during it): paused, nothing is handled
        # before the rewind and the on_assigned read-back are done. Nothing is fetched before
        # the callback starts (positions wait for the committed offsets), and pausing comes
        # before its first await.
        consumer = self._loop._consumer
        if consumer is not None and assigned:
            consumer.pause(*assigned)
        try:
            self._loop._forget(assigned)
            if self._loop._opts.rewind_on_assign is not None:
                await self._loop._rewind(assigned)
            if self._loop._opts.on_assigned is not None:
                await self._loop._opts.on_assigned(assigned)
        finally:
            if consumer is not None and assigned:
                still = consumer.assignment()
                consumer.resume(*[tp for tp in assigned if tp in still])


class ConsumerLoop:
    """Consume topics with manual commits, bounded per-key concurrency, retries and a DLQ."""

    def __init__(
        self,
        *,
        kafka: KafkaSettings,
        service: str,
        options: ConsumerOptions,
        handler: Handler,
        producer: EventProducer,
        decoder: Decoder = decode,
    ) -> None:
        self._kafka = kafka
        self._service = service
        self._opts = options
        self._handler = handler
        self._producer = producer
        self._decode = decoder
        self._dlq = DeadLetterPublisher(
            producer, service=service, group=options.group_id or service
        )
        self._consumer: AIOKafkaConsumer | None = None
        self._concurrency = max(1, options.concurrency)
        self._last_lag_at = 0.0
        self._replay_until: dict[TopicPartition, int] = {}
        self._topic_metrics: dict[str, _TopicMetrics] = {}
        self._books: dict[TopicPartition, OffsetBook] = {}
        # per-key lanes of queued records, the keys ready for a worker, the worker tasks and
        # the futures idle workers wait on
        self._lanes: dict[_LaneKey, Lane] = {}
        self._ready: deque[_LaneKey] = deque()
        self._workers: list[asyncio.Task[None]] = []
        self._idle: list[asyncio.Future[None]] = []
        self._closing = False
        self._stop: asyncio.Event | None = None
        self._settled = asyncio.Event()
        self._inflight = 0
        # aiokafka fetches a partition again only once its buffered records are taken: room
        # for several fetches' worth lets the next fetch overlap handling the last one
        self._max_inflight = 20 * (options.batch_max_records or kafka.kafka_max_poll_records)
        self._room = asyncio.Event()
        self._failure: BaseException | None = None
        self.processed = 0

    @property
    def consumer(self) -> AIOKafkaConsumer:
        """Return the underlying aiokafka consumer (started)."""
        if self._consumer is None:
            raise DependencyUnavailable("consumer not started")
        return self._consumer

    async def start(self) -> None:
        """Connect and subscribe (or assign every partition when `assign_all`)."""
        k, o = self._kafka, self._opts
        topics = [k.topic(t) for t in o.topics]
        consumer = AIOKafkaConsumer(
            **k.client_kwargs(),
            client_id=f"{self._service}-consumer",
            group_id=None if o.assign_all else o.group_id,
            enable_auto_commit=False,
            # the embedded broker's "latest" offset is wrong; committed offsets decide resume
            auto_offset_reset="earliest",
            session_timeout_ms=k.kafka_session_timeout_ms,
            heartbeat_interval_ms=k.kafka_heartbeat_interval_ms,
            fetch_max_wait_ms=k.kafka_fetch_max_wait_ms,
            max_poll_records=o.batch_max_records or k.kafka_max_poll_records,
            max_poll_interval_ms=k.kafka_max_poll_interval_ms,
        )
        try:
            await consumer.start()
            if o.assign_all:
                parts = [
                    TopicPartition(t, p)
                    for t in topics
                    for p in sorted(await partitions_for(consumer, t))
                ]
                consumer.assign(parts)
                await consumer.seek_to_beginning(*parts)
            else:
                consumer.subscribe(topics, listener=_Listener(self))
        except KafkaError as exc:
            await consumer.stop()
            raise DependencyUnavailable(f"kafka consumer cannot start: {exc}") from exc
        self._consumer = consumer

    def is_replay(self, record: Record) -> bool:
        """Return True when `record` is re-read only to rebuild state after assignment."""
        until = self._replay_until.get(TopicPartition(record.topic, record.partition))
        return until is not None and record.offset < until

    async def _rewind(self, assigned: set[TopicPartition]) -> None:
        consumer = self.consumer
        back = self._opts.rewind_on_assign
        for tp in assigned:
            committed = await consumer.committed(tp)
            if not committed:
                self._replay_until.pop(tp, None)
                continue
            self._replay_until[tp] = committed
            start = 0 if back is None or back < 0 else max(0, committed - back)
            consumer.seek(tp, start)
        log.info(
            "rewound partitions to rebuild state",
            extra={
                "partitions": len(assigned),
                "replay_until": {str(k): v for k, v in self._replay_until.items()},
            },
        )

    def assigned(self) -> bool:
        """Return True once the consumer owns at least one partition."""
        return self._consumer is not None and bool(self._consumer.assignment())

    async def stop(self) -> None:
        """Leave the group and disconnect."""
        if self._consumer is not None:
            with contextlib.suppress(Exception):
                await self._consumer.stop()
            self._consumer = None

    def _forget(self, partitions: set[TopicPartition]) -> None:
        # after a rebalance, records in flight for these partitions are no longer ours to
        # commit; their new owner (maybe us again) starts from the committed offset
        for tp in partitions:
            self._books.pop(tp, None)
        if partitions and self._lanes:
            # their queued records are the new owner's (re-fetched from the committed
            # offset); a record in a worker's hand still finishes
            for key in [k for k in self._lanes if k[0] in partitions]:
                lane = self._lanes.pop(key)
                self._inflight -= len(lane.records)
                lane.records.clear()
            if self._inflight <= 0:
                self._settled.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set; raise DependencyUnavailable when Kafka stays down."""
        consumer = self.consumer
        interval = self._kafka.kafka_commit_interval_ms / 1000
        next_commit = 0.0
        try:
            while not stop.is_set() and self._failure is None:
                if self._inflight >= self._max_inflight:
                    self._room.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(0.2):
                            await self._room.wait()
                    await self._commit()
                    continue
                try:
                    batches = await consumer.getmany(timeout_ms=200)
                except KafkaError as exc:
                    log.warning("fetch failed, retrying", extra={"error": str(exc)})
                    await asyncio.sleep(0.5)
                    continue
                if batches:
                    self._dispatch(batches, stop)
                now = time.monotonic()
                if now >= next_commit:
                    await self._commit()
                    next_commit = time.monotonic() + interval
                await self._report_lag()
        finally:
            await self._drain()
        if self._failure is not None:
            raise self._failure

    async def _drain(self) -> None:
        """Stop the workers, then commit what finished.

        Without a stop or a failure, every queued record is handled first (a batch run to
        its end); with a stop, each worker finishes the record in hand and the rest stays
        for redelivery; after a failure the workers are cancelled.
        """
        stop = self._stop
        if self._failure is None and not (stop is not None and stop.is_set()):
            await self._settle()
        self._closing = True
        for waiter in self._idle:
            if not waiter.done():
                waiter.set_result(None)
        if self._failure is not None:
            for task in self._workers:
                task.cancel()
        if self._workers:
            await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers.clear()
        self._idle.clear()
        self._lanes.clear()
        self._ready.clear()
        self._inflight = 0
        self._closing = False
        # commit what finished, even after a failure: those effects are durable
        await self._commit()

    async def process_batch(
        self, batches: dict[TopicPartition, list[Record]], stop: asyncio.Event
    ) -> None:
        """Handle one fetched batch to the end, then commit what finished (tests, tools)."""
        self._dispatch(batches, stop)
        await self._drain()
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure

    def _dispatch(self, batches: dict[TopicPartition, list[Record]], stop: asyncio.Event) -> None:
        """Queue each record on its key's lane; wake one idle worker per newly ready lane.

        A lane (partition, key) exists while it has records queued or in hand; a new lane
        goes to the back of the ready queue, an existing one just grows, so one key is
        only ever handled by one worker at a time, in offset order.
        """
        self._stop = stop
        if not self._workers:
            self._workers = [
                asyncio.create_task(self._worker(), name=f"{self._service}-consumer-worker-{i}")
                for i in range(self._concurrency)
            ]
        lanes = self._lanes
        ready = self._ready
        fresh = 0
        count = 0
        for tp, records in batches.items():
            if not records:
                continue
            book = self._books.get(tp)
            if book is not None and records[0].offset < book.next_offset:
                # the client went back by itself (an out-of-range reset after a broker
                # restart): what is queued will come again; start a new book
                log.warning(
                    "partition position went back; re-reading",
                    extra={"partition": str(tp), "offset": records[0].offset},
                )
                self._forget({tp})
                book = None
            if book is None:
                book = self._books[tp] = OffsetBook()
            book.add(records)
            for record in records:
                key = (tp, record.key)
                lane = lanes.get(key)
                if lane is None:
                    lane = lanes[key] = Lane(book)
                    ready.append(key)
                    fresh += 1
                lane.records.append(record)
            count += len(records)
        self._inflight += count
        idle = self._idle
        while fresh and idle:
            waiter = idle.pop()
            if not waiter.done():
                waiter.set_result(None)
                fresh -= 1

    async def _worker(self) -> None:
        """Take ready lanes until the loop closes; a failure (a dependency down past its
        grace, a bug in the DLQ path) is recorded for `run` to raise."""
        loop = asyncio.get_running_loop()
        try:
            while not self._closing:
                stop = self._stop
                if self._ready and self._failure is None and not (stop and stop.is_set()):
                    await self._run_lanes()
                    continue
                # nothing ready, or stopping: park until dispatch or drain wakes us
                waiter = loop.create_future()
                self._idle.append(waiter)
                await waiter
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            if self._failure is None:
                self._failure = exc
            self._settled.set()
            self._room.set()

    async def _run_lanes(self) -> None:
        """Handle ready lanes, record by record, until none is ready.

        Hot path: one timeout scope per run of lanes (a per-record asyncio.timeout costs
        more than decoding the record), pushed forward lazily, so a stuck handler is still
        cancelled within handler_timeout_s and then retried under per-attempt timeouts. A
        record that decodes and whose handler succeeds on the first attempt costs no extra
        coroutine, task or garbage-collected object; anything else goes through `_process`
        (dead letter, retries, grace period) outside the scope. A lane's turn ends after
        `_TURN` records, so a busy key cannot starve the ready queue.
        """
        limit = self._opts.handler_timeout_s
        half = limit / 2
        clock = asyncio.get_running_loop().time
        perf = time.perf_counter
        decode = self._decode
        handler = self._handler
        lanes = self._lanes
        ready = self._ready
        stop = self._stop
        key: _LaneKey | None = None
        lane: Lane | None = None
        record: Record | None = None  # in hand: taken from its lane, not yet done
        done = 0
        try:
            while ready:
                try:
                    async with asyncio.timeout(None) as scope:
                        while ready:
                            key = ready.popleft()
                            lane = lanes.get(key)
                            if lane is None:
                                continue  # forgotten after a rebalance
                            queue = lane.records
                            mark = lane.book.done
                            # metric children once per lane turn; successes counted per turn
                            metrics = self._metrics(key[0].topic)
                            observe = metrics.duration.observe
                            turn = good = 0
                            try:
                                while queue:
                                    if (stop is not None and stop.is_set()) or self._failure:
                                        ready.appendleft(key)
                                        return  # the rest is redelivered after restart
                                    if turn == _TURN:
                                        ready.append(key)
                                        break
                                    record = queue.popleft()
                                    now = clock()
                                    when = scope.when()
                                    if when is None or when - now < half:
                                        scope.reschedule(now + limit)
                                    try:
                                        event = decode(record.value)
                                    except PermanentError:
                                        scope.reschedule(None)
                                        await self._process(record)  # dead-letters it
                                    else:
                                        started = perf()
                                        try:
                                            await handler(event, record)
                                        except Exception as exc:
                                            scope.reschedule(None)
                                            await self._process(
                                                record,
                                                event=event,
                                                started=started,
                                                failed=exc,
                                                per_attempt_timeout=True,
                                            )
                                        else:
                                            observe(perf() - started)
                                            good += 1
                                            self.processed += 1
                                    mark(record.offset)
                                    record = None
                                    done += 1
                                    turn += 1
                                else:
                                    if lanes.get(key) is lane:
                                        del lanes[key]
                            finally:
                                if good:
                                    metrics.ok.inc(good)
                except TimeoutError:
                    # the handler of `record` overran: retry it under per-attempt timeouts,
                    # then let its lane go on
                    if record is not None and lane is not None:
                        await self._process(record, first_attempt=2, per_attempt_timeout=True)
                        lane.book.done(record.offset)
                        record = None
                        done += 1
                    if key is not None and lane is not None and lanes.get(key) is lane:
                        if lane.records:
                            ready.appendleft(key)
                        else:
                            del lanes[key]
        finally:
            self._inflight -= done
            self._room.set()
            self._settled.set()  # _settle re-checks what it waits for

    async def _settle(self) -> None:
        """Wait until every dispatched record is handled (or a worker failed, or stop)."""
        while self._inflight > 0 and self._failure is None and self._workers:
            if self._stop is not None and self._stop.is_set():
                return
            self._settled.clear()
            await self._settled.wait()

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
                if per_attempt_timeout:
                    async with asyncio.timeout(self._opts.handler_timeout_s):
                        await self._handler(event, record)
                else:
                    await self._handler(event, record)
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

    async def _dead_letter(self, record: Record, error: BaseException, attempts: int) -> None:
        log.warning(
            "dead-lettering message",
            extra={
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "error_type": type(error).__name__,
                "error": str(error)[:300],
            },
        )
        await self._dlq.publish(record, error, attempts)
        MESSAGES_IN.labels(self._service, record.topic, "dead_lettered").inc()

    async def _commit(self) -> None:
        offsets = self._finished_offsets()
        if not offsets:
            return
        # effects first: events produced by handlers must be acknowledged before the commit
        try:
            await self._producer.wait_delivered()
        except DependencyUnavailable as exc:
            # some effect of these records is not durable: never commit past them; re-read
            # from the last commit instead (effects are idempotent), as a restart would
            await self._reread_from_committed(f"events not acknowledged: {exc}")
            return
        if self._opts.assign_all or self._opts.group_id is None:
            return
        deadline = time.monotonic() + self._opts.dependency_grace_s
        while True:
            try:
                async with asyncio.timeout(self._opts.commit_timeout_s):
                    await self.consumer.commit(offsets)
                return
            except (CommitFailedError, IllegalStateError) as exc:
                # a rebalance took the partition (IllegalStateError: no longer assigned): the
                # new owner reprocesses, idempotently
                log.warning("commit failed after rebalance", extra={"error": str(exc)})
                return
            except (TimeoutError, KafkaError) as exc:
                if await self._topics_recreated({tp.topic for tp in offsets}):
                    # an empty broker came back (embedded broker restart): these offsets
                    # belong to a log that no longer exists
                    await self._reread_from_committed("topics vanished and were re-created")
                    return
                if time.monotonic() > deadline:
                    raise DependencyUnavailable(f"offset commit failed: {exc!r}") from exc
                log.warning("offset commit failed, retrying", extra={"error": repr(exc)})
                await asyncio.sleep(1.0)

    async def _commit_before_revoke(self) -> None:
        """Commit what finished before a rebalance; on failure the new owner redoes it."""
        offsets = self._finished_offsets()
        if not offsets or self._opts.assign_all or self._opts.group_id is None:
            return
        try:
            async with asyncio.timeout(self._opts.commit_timeout_s):
                await self._producer.wait_delivered()
                await self.consumer.commit(offsets)
        except (TimeoutError, KafkaError, DependencyUnavailable, IllegalStateError) as exc:
            log.warning("commit before rebalance failed", extra={"error": repr(exc)})

    def _finished_offsets(self) -> dict[TopicPartition, int]:
        offsets = {}
        for tp, book in self._books.items():
            offset = book.advance()
            if offset is not None:
                offsets[tp] = offset
        return offsets

    async def _topics_recreated(self, topics: set[str]) -> bool:
        """Re-create missing platform topics (when allowed); True if any of `topics` was."""
        if not self._kafka.kafka_create_topics:
            return False
        try:
            created = await ensure_topics(self._kafka)
        except DependencyUnavailable:
            return False
        return bool(topics & set(created))

    async def _reread_from_committed(self, reason: str) -> None:
        """Finish the records in hand, then seek every partition back to its committed offset.

        What a restart would do, without one: records after the last commit are handled again
        (idempotently) and their effects published again. Raises DependencyUnavailable when
        the committed offsets cannot be read within the grace period.
        """
        await self._settle()
        self._producer.discard_pending()
        consumer = self.consumer
        assigned = set(consumer.assignment())
        self._forget(assigned)
        deadline = time.monotonic() + self._opts.dependency_grace_s
        while True:
            try:
                async with asyncio.timeout(self._opts.commit_timeout_s):
                    for tp in assigned:
                        committed = None
                        if self._opts.group_id is not None and not self._opts.assign_all:
                            committed = await consumer.committed(tp)
                        if committed is None:
                            await consumer.seek_to_beginning(tp)
                        else:
                            consumer.seek(tp, committed)
                break
            except (TimeoutError, KafkaError, IllegalStateError) as exc:
                if time.monotonic() > deadline:
                    raise DependencyUnavailable(
                        f"cannot re-read from committed offsets: {exc!r}"
                    ) from exc
                await asyncio.sleep(1.0)
        log.warning(
            "re-reading from the last committed offsets",
            extra={"reason": reason, "partitions": len(assigned)},
        )

    async def _report_lag(self) -> None:
        now = time.monotonic()
        if now - self._last_lag_at < 2 or self._consumer is None:
            return
        self._last_lag_at = now
        self._forget(await reset_past_log_end(self._consumer, self._service))
        for tp in self._consumer.assignment():
            high = self._consumer.highwater(tp)
            if high is None:
                continue
            pos = await self._consumer.position(tp)
            CONSUMER_LAG.labels(self._service, tp.topic, str(tp.partition)).set(max(0, high - pos))

    async def lag(self) -> int:
        """Return the total records between position and high watermark (0 when unknown)."""
        total = 0
        if self._consumer is None:
            return 0
        for tp in self._consumer.assignment():
            high = self._consumer.highwater(tp)
            if high is None:
                continue
            pos = await self._consumer.position(tp)
            total += max(0, high - pos)
        return total
