"""Group membership and rebalances: subscribe, commit before partitions go, rewind and read
back before new ones are handled, leave.

`RebalanceMixin` is the part of `ConsumerLoop` that knows which partitions are its own: it
joins (or assigns every partition), forgets the lanes and offsets of partitions that moved,
seeks new ones back to rebuild state (`rewind_on_assign`) and tells replays from new records.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import deque
from typing import TYPE_CHECKING, TypeAlias, cast

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from perpsignal_common.errors import DependencyUnavailable
from perpsignal_common.kafka.lanes import Lane, OffsetBook, Record
from perpsignal_common.kafka.options import ConsumerOptions
from perpsignal_common.kafka.positions import partitions_for
from perpsignal_common.settings import KafkaSettings

if TYPE_CHECKING:
    import asyncio

    from perpsignal_common.kafka.consumer import ConsumerLoop

log = logging.getLogger("perpsignal_common.kafka.consumer")

# each partition's lanes, by record key
LaneTable: TypeAlias = "dict[bytes | None, Lane]"


def _log_ownership(what: str, loop: ConsumerLoop, parts: set[TopicPartition]) -> None:
    """One line per ownership change: which process holds which partitions, from when.

    With eager rebalancing a member logs "revoked" before the group hands the partitions on,
    so these lines (with the process id) let an operator, or a test, rebuild who owned each
    partition when, and see that no two processes held one at once.
    """
    log.info(
        what,
        extra={
            "group": loop._opts.group_id or loop._service,
            "pid": os.getpid(),
            "partitions": sorted(f"{tp.topic}:{tp.partition}" for tp in parts),
        },
    )


class Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Commit before partitions go, pause new ones until their rewind and read-back end."""

    def __init__(self, loop: ConsumerLoop) -> None:
        self._loop = loop

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        if self._loop._opts.on_revoked is not None:
            await self._loop._opts.on_revoked(revoked)
        # commits are periodic: hand the finished prefix to the next owner before leaving
        await self._loop._commit_before_revoke()
        self._loop._forget(revoked)
        if revoked:
            _log_ownership("partitions revoked", self._loop, revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        # aiokafka fetches and hands out the new partitions' records while this callback is
        # still awaiting (committed offsets arrive during it): paused, nothing is handled
        # before the rewind and the on_assigned read-back are done. Nothing is fetched before
        # the callback starts (positions wait for the committed offsets), and pausing comes
        # before its first await.
        consumer = self._loop._consumer
        if consumer is not None and assigned:
            consumer.pause(*assigned)
        if assigned:
            _log_ownership("partitions assigned", self._loop, assigned)
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


class RebalanceMixin:
    """Partition ownership of a `ConsumerLoop` (state declared here, set in its __init__)."""

    _kafka: KafkaSettings
    _service: str
    _opts: ConsumerOptions
    _consumer: AIOKafkaConsumer | None
    _replay_until: dict[TopicPartition, int]
    _books: dict[TopicPartition, OffsetBook]
    _lanes: dict[TopicPartition, LaneTable]
    _ready: deque[Lane]
    _inflight: int
    _settled: asyncio.Event

    if TYPE_CHECKING:  # ConsumerLoop's

        @property
        def consumer(self) -> AIOKafkaConsumer: ...

    async def start(self) -> None:
        """Connect and subscribe (or assign every partition when `assign_all`)."""
        k, o = self._kafka, self._opts
        topics = [k.topic(t) for t in o.topics]
        consumer = AIOKafkaConsumer(
            **k.client_kwargs(),
            client_id=f"{self._service}-consumer",
            group_id=None if o.assign_all or o.group_id is None else k.group(o.group_id),
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
                consumer.subscribe(topics, listener=Listener(cast("ConsumerLoop", self)))
        except KafkaError as exc:
            await consumer.stop()
            raise DependencyUnavailable(f"kafka consumer cannot start: {exc}") from exc
        self._consumer = consumer

    def assigned(self) -> bool:
        """Return True once the consumer owns at least one partition."""
        return self._consumer is not None and bool(self._consumer.assignment())

    async def stop(self) -> None:
        """Leave the group and disconnect."""
        if self._consumer is not None:
            # aiokafka leaves the group without a revoke callback: say so here, before the
            # LeaveGroup that lets the partitions go, so the ownership lines stay complete
            held = set() if self._opts.assign_all else set(self._consumer.assignment())
            if held:
                _log_ownership("partitions revoked", cast("ConsumerLoop", self), held)
            with contextlib.suppress(Exception):
                await self._consumer.stop()
            self._consumer = None

    def is_replay(self, record: Record) -> bool:
        """Return True when `record` is re-read only to rebuild state after assignment."""
        until = self._replay_until.get(TopicPartition(record.topic, record.partition))
        return until is not None and record.offset < until

    async def _rewind(self, assigned: set[TopicPartition]) -> None:
        consumer = self.consumer
        back = self._opts.rewind_on_assign
        since = await self._rewind_offsets(assigned)
        for tp in assigned:
            committed = await consumer.committed(tp)
            if not committed:
                self._replay_until.pop(tp, None)
                continue
            self._replay_until[tp] = committed
            start = 0 if back is None or back < 0 else max(0, committed - back)
            at = since.get(tp)
            if at is not None:  # whichever reaches further back: the count or the time
                start = min(start, at)
            consumer.seek(tp, start)
        log.info(
            "rewound partitions to rebuild state",
            extra={
                "partitions": len(assigned),
                "replay_until": {str(k): v for k, v in self._replay_until.items()},
            },
        )

    async def _rewind_offsets(self, assigned: set[TopicPartition]) -> dict[TopicPartition, int]:
        """Return, per partition, the first offset within `rewind_on_assign_s` of now (by
        record timestamp); none where the option is off, every record is older, or the
        broker cannot say (then the count alone rewinds, as before)."""
        seconds = self._opts.rewind_on_assign_s
        if not seconds or seconds <= 0 or not assigned:
            return {}
        at_ms = int((time.time() - seconds) * 1000)
        try:
            async with asyncio.timeout(self._opts.commit_timeout_s):
                found = await self.consumer.offsets_for_times(dict.fromkeys(assigned, at_ms))
        except (TimeoutError, KafkaError) as exc:
            log.warning(
                "time-based rewind unavailable; rewinding by count", extra={"error": repr(exc)}
            )
            return {}
        return {tp: hit.offset for tp, hit in found.items() if hit is not None}

    def _forget(self, partitions: set[TopicPartition]) -> None:
        # after a rebalance, records in flight for these partitions are no longer ours to
        # commit; their new owner (maybe us again) starts from the committed offset
        for tp in partitions:
            self._books.pop(tp, None)
        if partitions and self._lanes:
            # their queued records are the new owner's (re-fetched from the committed
            # offset); a record in a worker's hand still finishes. A lane still in the
            # ready queue comes out empty and is dropped
            for tp in partitions:
                table = self._lanes.pop(tp, None)
                if table is None:
                    continue
                for lane in table.values():
                    self._inflight -= len(lane.records)
                    lane.records.clear()
                table.clear()
            if self._inflight <= 0:
                self._settled.set()
