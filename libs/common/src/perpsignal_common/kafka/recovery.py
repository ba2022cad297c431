"""Offset commits and recovery from outages of the broker or of a handler's effects.

`RecoveryMixin` is the part of `ConsumerLoop` that moves committed offsets: only past records
whose effects are durable (produced events acknowledged), retried through a broker outage
within `dependency_grace_s`. When the produced events were not acknowledged, or the broker
came back empty (the embedded one after a restart: topics re-created), it re-reads from the
last committed offsets, as a restart would, without one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from perpsignal_common.errors import DependencyUnavailable
from perpsignal_common.kafka.admin import ensure_topics
from perpsignal_common.kafka.lanes import OffsetBook
from perpsignal_common.kafka.options import ConsumerOptions
from perpsignal_common.kafka.producer import Deliveries, EventProducer
from perpsignal_common.settings import KafkaSettings

log = logging.getLogger("perpsignal_common.kafka.consumer")


class RecoveryMixin:
    """Commits and outage recovery of a `ConsumerLoop` (state set in its __init__)."""

    _kafka: KafkaSettings
    _opts: ConsumerOptions
    _producer: EventProducer
    _deliveries: Deliveries
    _books: dict[TopicPartition, OffsetBook]

    if TYPE_CHECKING:  # ConsumerLoop's and RebalanceMixin's

        @property
        def consumer(self) -> AIOKafkaConsumer: ...

        async def _settle(self) -> None: ...

        def _forget(self, partitions: set[TopicPartition]) -> None: ...

    async def _commit(self) -> None:
        offsets = self._finished_offsets()
        if not offsets:
            return
        # effects first: events produced by handlers must be acknowledged before the commit
        try:
            await self._producer.wait_delivered(self._deliveries)
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
                # a failure seen here stays for `_commit`, which re-reads and discards it
                await self._producer.wait_delivered(self._deliveries)
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
        self._producer.discard_pending(self._deliveries)
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
