"""Publish events once: a bounded cache of recently published ids skips re-polled facts.

Event ids are deterministic, so consumers would dedupe anyway; skipping here saves the
broker and every consumer the work of a re-poll (klines with limit 2 return the previous
candle again every minute).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

from perpsignal_common.events.base import Event
from perpsignal_common.kafka.producer import EventProducer
from perpsignal_ingestor.metrics import EVENTS_PUBLISHED, EVENTS_SKIPPED


class Publisher:
    """Send events keyed by symbol, skipping ids published recently; wait for acks."""

    def __init__(self, producer: EventProducer, cache_size: int = 200_000) -> None:
        self._producer = producer
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._cache_size = cache_size
        self.published = 0

    def seen(self, event_id: str) -> bool:
        """Return True when `event_id` was published recently."""
        return event_id in self._seen

    async def publish(self, source: str, events: Iterable[Event]) -> int:
        """Publish the events not seen before and wait until Kafka acknowledged them."""
        fresh = []
        for event in events:
            if event.event_id in self._seen:
                EVENTS_SKIPPED.labels(source).inc()
                continue
            fresh.append(event)
        for event in fresh:
            await self._producer.publish(event)
        await self._producer.wait_delivered()
        # Remember only acknowledged ids: a failed send must be retried next poll
        for event in fresh:
            self._seen[event.event_id] = None
            EVENTS_PUBLISHED.labels(source, event.type).inc()
        while len(self._seen) > self._cache_size:
            self._seen.popitem(last=False)
        self.published += len(fresh)
        return len(fresh)
