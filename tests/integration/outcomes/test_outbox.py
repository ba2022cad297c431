"""The outbox marks an outcome published only once Kafka acknowledged *its* event.

The tracker shares the service's `EventProducer` with the consumer loop, which waits for its
own deliveries before committing offsets while the tracker publishes.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError
from sqlalchemy import select

from perpsignal_common.db.engine import session_scope
from perpsignal_common.db.models.outcomes import SignalOutcome
from perpsignal_common.errors import DependencyUnavailable
from perpsignal_common.kafka.producer import EventProducer
from perpsignal_common.settings import KafkaSettings
from perpsignal_outcomes import repository as repo
from perpsignal_outcomes.tracker import Tracker
from tests.integration.outcomes.conftest import judged, xrp_candle_rows
from tests.integration.outcomes.test_tracking import HORIZONS, LATER, settings

pytestmark = pytest.mark.db


class BrokerClient:
    """Stands in for aiokafka's producer: `send` queues a record, its future settles later."""

    def __init__(self, records: int) -> None:
        self.sent: list[asyncio.Future[Any]] = []
        self.first = asyncio.Event()
        self.every = asyncio.Event()
        self._records = records

    async def send(self, topic: str, **_: object) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.sent.append(fut)
        self.first.set()
        if len(self.sent) == self._records:
            self.every.set()
        await asyncio.sleep(0)  # aiokafka may yield while it queues a record
        return fut


async def test_an_event_the_broker_lost_stays_in_the_outbox(sessions, shared_data: Path) -> None:
    async with session_scope(sessions) as s:
        await repo.store_candles(s, xrp_candle_rows(shared_data))
        await repo.store_signals(s, [judged()], HORIZONS, timedelta(0))
    producer = EventProducer(KafkaSettings(), "outcomes")
    client = BrokerClient(3)
    producer._producer = client  # type: ignore[assignment]
    tracker = Tracker(settings(), sessions, producer, clock=lambda: LATER)
    assert await tracker.evaluate_batch() == 3

    publishing = asyncio.create_task(tracker.publish_batch())
    await client.first.wait()
    # the consumer loop commits its offsets meanwhile: it waits for what is pending
    committing = asyncio.create_task(producer.wait_delivered())
    await client.every.wait()
    # the broker restarted: the first record is lost, the later ones reach the new broker
    client.sent[0].set_exception(KafkaTimeoutError())
    for fut in client.sent[1:]:
        fut.set_result(None)
    await asyncio.gather(committing, return_exceptions=True)  # the loop's own business
    with pytest.raises(DependencyUnavailable):
        await publishing

    async with session_scope(sessions) as s:
        rows = (await s.execute(select(SignalOutcome))).scalars().all()
    # nothing was marked published: every event is sent again (same id; consumers dedupe)
    assert [r.published_at for r in rows] == [None, None, None]
