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

`ConsumerLoop`, `ConsumerOptions`, `Record`, `Handler`, `Decoder` and `PoisonMessage` are
imported from here by every service.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from bisect import bisect_left
from collections import deque

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from perpsignal_common.errors import DependencyUnavailable
from perpsignal_common.errors import PoisonMessage as PoisonMessage  # re-exported
from perpsignal_common.events.registry import decode
from perpsignal_common.kafka.dlq import DeadLetterPublisher
from perpsignal_common.kafka.lanes import Lane, OffsetBook
from perpsignal_common.kafka.lanes import Record as Record  # re-exported: handlers type with it
from perpsignal_common.kafka.limits import check_client_settings
from perpsignal_common.kafka.options import ConsumerOptions as ConsumerOptions
from perpsignal_common.kafka.options import Decoder as Decoder
from perpsignal_common.kafka.options import Handler as Handler
from perpsignal_common.kafka.positions import known_position, reset_past_log_end
from perpsignal_common.kafka.producer import Deliveries, EventProducer
from perpsignal_common.kafka.rebalance import LaneTable, RebalanceMixin
from perpsignal_common.kafka.recovery import RecoveryMixin
from perpsignal_common.kafka.retrying import RetryingMixin, _TopicMetrics, stray_cancel
from perpsignal_common.kafka.unreadable import find_unreadable, placeholder, read_before
from perpsignal_common.logging import reset_log_event, set_log_event
from perpsignal_common.observability.metrics import CONSUMER_LAG
from perpsignal_common.settings import KafkaSettings

log = logging.getLogger(__name__)

# records one lane handles before it goes to the back of the ready queue
_TURN = 256


def _never() -> bool:
    return False


class ConsumerLoop(RebalanceMixin, RecoveryMixin, RetryingMixin):
    """Consume topics with manual commits, bounded per-key concurrency, retries and a DLQ.

    This module holds the fetch loop and the lane workers (the hot path); rebalances are in
    `rebalance.py`, commits and outage recovery in `recovery.py`, retries and the dead
    letter in `retrying.py`.
    """

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
        check_client_settings(kafka)  # ConfigError at start-up, naming the setting
        self._kafka = kafka
        self._service = service
        self._opts = options
        self._handler = handler
        self._producer = producer
        # the sends of this loop's handlers (its workers bind it): the commit waits for these,
        # not for another loop's or task's sharing the producer, and is told their failures
        self._deliveries = Deliveries(service)
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
        self._lanes: dict[TopicPartition, LaneTable] = {}
        self._ready: deque[Lane] = deque()
        self._workers: list[asyncio.Task[None]] = []
        self._idle: list[asyncio.Future[None]] = []
        self._waking = 0  # workers woken that have not run yet
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
                except ValueError as exc:  # UnicodeDecodeError: a header key is not UTF-8
                    if not await self._step_over_unreadable(exc, stop):
                        raise
                    continue
                if batches:
                    self._dispatch(batches, stop)
                    # let the woken workers take the batch before the next getmany: getmany
                    # returns without suspending while aiokafka has records buffered, so the
                    # loop would otherwise queue up to `_max_inflight` records at once, and
                    # the garbage collector's passes over that many live records cost more
                    # than the loop's own work (~120 collections per 100k records, none
                    # this way). Handlers that wait (I/O) still let fetching run ahead
                    await asyncio.sleep(0)
                now = time.monotonic()
                if now >= next_commit:
                    await self._commit()
                    next_commit = time.monotonic() + interval
                await self._report_lag()
        finally:
            await self._drain()
        if self._failure is not None:
            raise self._failure

    async def _step_over_unreadable(self, error: ValueError, stop: asyncio.Event) -> bool:
        """Dead-letter the record the client could not unpack and go on after it.

        The records of its partition in front of it (in the failed fetch, so never handed
        out) are read separately and queued as usual; the unreadable one is dead-lettered
        without content (the original stays at its offset) and counted as done, then the
        partition is read on from the next offset. Returns False when no unreadable record
        is found (the error is not one of those).

        The failed fetch may already have taken other partitions' records (moving their
        positions past them) when the exception dropped them all: once the records in hand
        are finished, every other partition is put back at its first record not queued.
        """
        consumer = self.consumer
        found = find_unreadable(consumer)
        if found is None:
            return False
        tp, offset = found
        await self._settle()
        if stop.is_set() or self._failure is not None:
            return True  # the drain commits only what was handled; a restart reads on
        for other in consumer.assignment():
            if other != tp:
                await self._reposition(other)
        if tp not in consumer.assignment():
            return True  # no longer ours: its next owner steps over it
        start = await consumer.position(tp)
        book = self._books.get(tp)
        if book is not None and book.base >= 0:
            start = book.next_offset
        before = await read_before(
            self._kafka, self._service, tp, start, offset, self._opts.commit_timeout_s
        )
        if tp not in consumer.assignment() or self._books.get(tp) is not book:
            # a rebalance meanwhile moved the position: the next fetch meets it again
            return True
        if before:
            self._dispatch({tp: before}, stop)
        reason = PoisonMessage(
            f"unreadable record: {error}; the original is still at its offset (dlq.topic, "
            "dlq.partition, dlq.offset)"
        )
        log.warning(
            "a record the client cannot unpack; dead-lettering it by its position",
            extra={"partition": str(tp), "offset": offset, "error": str(error)[:300]},
        )
        await self._dead_letter(placeholder(tp, offset), reason, attempts=0, unreadable=True)
        book = self._books.get(tp)
        if book is None:
            book = self._books[tp] = OffsetBook()
            book.base = offset
        if book.next_offset <= offset:  # it, and any gap in front of it, are done
            book.flags.extend(b"\x01" * (offset + 1 - book.next_offset))
        consumer.seek(tp, offset + 1)
        return True

    async def _reposition(self, tp: TopicPartition) -> None:
        """Seek `tp` to its first record not queued here: after its book, or, with none (no
        record queued since it was assigned or re-read), where assignment put it."""
        consumer = self.consumer
        book = self._books.get(tp)
        if book is not None and book.base >= 0:
            consumer.seek(tp, book.next_offset)
        elif self._opts.assign_all or self._opts.group_id is None:
            await consumer.seek_to_beginning(tp)
        elif self._opts.rewind_on_assign is not None:
            await self._rewind({tp})
        else:
            committed = await consumer.committed(tp)
            if committed is None:
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, committed)

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
        self._waking = 0
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
            table = lanes.get(tp)
            if table is None:
                table = lanes[tp] = {}
            for record in records:
                record_key = record.key
                lane = table.get(record_key)
                if lane is None:
                    lane = table[record_key] = Lane(tp, record_key, book, table)
                    ready.append(lane)
                    fresh += 1
                lane.records.append(record)
            count += len(records)
        self._inflight += count
        if fresh and not self._waking:
            self._wake()

    def _wake(self) -> None:
        """Wake one idle worker. A worker that takes a lane while more are ready wakes the
        next, so as many run as there are lanes to take while handlers wait, yet a batch
        whose handlers never wait costs one wake-up rather than one per worker."""
        idle = self._idle
        while idle:
            waiter = idle.pop()
            if not waiter.done():
                waiter.set_result(None)
                self._waking += 1
                return

    async def _worker(self) -> None:
        """Take ready lanes until the loop closes; a failure (a dependency down past its
        grace, a bug in the DLQ path) is recorded for `run` to raise."""
        loop = asyncio.get_running_loop()
        self._deliveries.bind()
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
                if self._waking:
                    self._waking -= 1
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
        ready = self._ready
        stop = self._stop
        stopped = stop.is_set if stop is not None else _never
        lane: Lane | None = None
        record: Record | None = None  # in hand: taken from its lane, not yet done
        done = 0
        # successes are counted per topic and added to its counters (and the histogram's
        # sum, and `processed`) every `_TURN` of them and at the end of the run (the
        # counter takes a lock per call), not per record
        topic: str | None = None
        metrics: _TopicMetrics | None = None
        good = 0
        spent = 0.0
        # the log context holds the event in hand: set per record, restored once at the
        # end of the run (a reset per record costs as much as the set)
        context = set_log_event(None)
        try:
            while ready:
                try:
                    async with asyncio.timeout(None) as scope:
                        # the scope's deadline is pushed to `limit` ahead once `half` has
                        # passed (perf clock) since it last was: each handler starts with
                        # at least `half` of its limit left
                        renew_at = -1.0
                        while ready:
                            lane = ready.popleft()
                            if ready and not self._waking and self._idle:
                                self._wake()  # the next ready lane's worker
                            queue = lane.records
                            book = lane.book
                            flags = book.flags  # advance() trims it in place: same object
                            if lane.tp.topic != topic or metrics is None:
                                if metrics is not None and good:
                                    self._count_ok(metrics, good, spent)
                                    good, spent = 0, 0.0
                                topic = lane.tp.topic
                                metrics = self._metrics(topic)
                            # the histogram's observe() inlined: bucket count (sum above)
                            counts = metrics.duration.counts
                            bounds = metrics.duration._bounds
                            turn = 0
                            while queue:
                                if stopped() or self._failure:
                                    ready.appendleft(lane)
                                    return  # the rest is redelivered after restart
                                if turn == _TURN:
                                    ready.append(lane)
                                    break
                                record = queue.popleft()
                                try:
                                    event = decode(record.value)
                                except Exception:  # PermanentError, or a decoder's bug
                                    set_log_event(None)
                                    scope.reschedule(None)
                                    renew_at = -1.0
                                    await self._process(record)  # dead-letters it
                                else:
                                    set_log_event(event)  # ids on its log lines
                                    started = perf()
                                    if started > renew_at:
                                        renew_at = started + half
                                        scope.reschedule(clock() + limit)
                                    try:
                                        await handler(event, record)
                                    except (Exception, asyncio.CancelledError) as error:
                                        exc = (
                                            error
                                            if isinstance(error, Exception)
                                            else stray_cancel(error)
                                        )
                                        if exc is None:
                                            raise  # this worker is being cancelled
                                        scope.reschedule(None)
                                        renew_at = -1.0
                                        await self._process(
                                            record,
                                            event=event,
                                            started=started,
                                            failed=exc,
                                            per_attempt_timeout=True,
                                        )
                                    else:
                                        took = perf() - started
                                        counts[bisect_left(bounds, took)] += 1
                                        spent += took
                                        good += 1
                                # done: base is read each time (a commit may have moved it)
                                flags[record.offset - book.base] = 1
                                record = None
                                done += 1
                                turn += 1
                            else:
                                lane.release()
                            if good >= _TURN:  # the counters lag a run by a turn at most
                                self._count_ok(metrics, good, spent)
                                good, spent = 0, 0.0
                except TimeoutError:
                    # the handler of `record` overran: retry it under per-attempt timeouts,
                    # then let its lane go on
                    if record is not None and lane is not None:
                        await self._process(record, first_attempt=2, per_attempt_timeout=True)
                        lane.book.done(record.offset)
                        record = None
                        done += 1
                    if lane is not None and lane.lanes.get(lane.key) is lane:
                        if lane.records:
                            ready.appendleft(lane)
                        else:
                            lane.release()
        finally:
            reset_log_event(context)
            if metrics is not None and good:
                self._count_ok(metrics, good, spent)
            self._inflight -= done
            self._room.set()
            self._settled.set()  # _settle re-checks what it waits for

    def _count_ok(self, metrics: _TopicMetrics, good: int, spent: float) -> None:
        """Add a run's first-attempt successes to the counters and the histogram's sum."""
        metrics.ok.inc(good)
        metrics.duration.total += spent
        self.processed += good

    async def _settle(self) -> None:
        """Wait until every dispatched record is handled (or a worker failed, or stop)."""
        while self._inflight > 0 and self._failure is None and self._workers:
            if self._stop is not None and self._stop.is_set():
                return
            self._settled.clear()
            await self._settled.wait()

    async def _report_lag(self) -> None:
        """Set the lag gauge from the positions the client knows; never waits for one.

        Runs inside the fetch loop: a partition whose position is pending (a reset the
        broker has not answered, e.g. during an outage) keeps its last value rather than
        holding the loop until the broker is back.
        """
        now = time.monotonic()
        if now - self._last_lag_at < 2 or self._consumer is None:
            return
        self._last_lag_at = now
        self._forget(await reset_past_log_end(self._consumer, self._service))
        for tp in self._consumer.assignment():
            high = self._consumer.highwater(tp)
            if high is None:
                continue
            pos = await known_position(self._consumer, tp)
            if pos is None:
                continue
            CONSUMER_LAG.labels(self._service, tp.topic, str(tp.partition)).set(max(0, high - pos))

    async def lag(self) -> int:
        """Return the total records between position and high watermark; a partition whose
        high watermark or position is not known now counts 0 (this never waits)."""
        total = 0
        if self._consumer is None:
            return 0
        for tp in self._consumer.assignment():
            high = self._consumer.highwater(tp)
            if high is None:
                continue
            pos = await known_position(self._consumer, tp)
            if pos is not None:
                total += max(0, high - pos)
        return total


__all__ = [
    "ConsumerLoop",
    "ConsumerOptions",
    "Decoder",
    "Handler",
    "PoisonMessage",
    "Record",
]
