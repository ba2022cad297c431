"""Lag reporting never holds the fetch loop, whatever the broker does.

The loop sets its lag gauge from each partition's position every couple of seconds.
`AIOKafkaConsumer.position()` waits while a partition's position is pending (after an
assignment or a reset, until the broker answers), retrying without limit: the fake below
does what it does while the broker is down (waits until the test's "broker" answers). The
loop used to await it for the gauge, so one pending partition stopped every partition's
consumption for the whole outage.
"""

from __future__ import annotations

import asyncio

from aiokafka import TopicPartition
from prometheus_client import REGISTRY

from perpsignal_common.events.base import Event
from perpsignal_common.kafka.consumer import Record
from tests.helpers import eventually
from tests.unit.common.test_consumer_loop import TP, make, rec

PENDING = TopicPartition("t", 1)  # its position is being reset: the broker must answer


class OutageConsumer:
    """The aiokafka calls the fetch loop makes; PENDING's position needs the broker."""

    def __init__(self, batches: list[dict[TopicPartition, list[Record]]]) -> None:
        self.batches = batches
        self.broker_back = asyncio.Event()
        self.position_waits = 0

    async def getmany(self, timeout_ms: int = 0) -> dict[TopicPartition, list[Record]]:
        if self.batches:
            return self.batches.pop(0)
        await asyncio.sleep(timeout_ms / 1000)
        return {}

    def assignment(self) -> set[TopicPartition]:
        return {TP, PENDING}

    def highwater(self, tp: TopicPartition) -> int:
        return 10

    async def position(self, tp: TopicPartition) -> int:
        if tp == PENDING:
            self.position_waits += 1
            await self.broker_back.wait()  # aiokafka: until the offset reset is answered
            return 0
        return 4

    async def commit(self, offsets: object) -> None:
        return None


async def test_a_pending_position_during_an_outage_does_not_stop_consumption() -> None:
    handled: list[int] = []

    async def handler(event: Event, record: Record) -> None:
        handled.append(record.offset)

    loop, _, _ = make(handler)
    consumer = OutageConsumer([{TP: [rec(0), rec(1)]}, {TP: [rec(2), rec(3)]}])
    loop._consumer = consumer  # type: ignore[assignment]
    stop = asyncio.Event()
    task = asyncio.create_task(loop.run(stop))
    try:
        # both batches are fetched and handled although the lag report (due at once) met
        # the pending partition after the first; the broker never comes back in this test
        await eventually(lambda: handled == [0, 1, 2, 3], timeout=5, what="both batches")
        assert consumer.position_waits >= 1  # the report did ask for the pending one
        lag = REGISTRY.get_sample_value(
            "perpsignal_consumer_lag_records",
            {"service": "unit", "topic": "t", "partition": "0"},
        )
        assert lag == 6  # the known partition is still reported: 10 - 4
        assert await asyncio.wait_for(loop.lag(), 1) == 6  # the pending one counts 0
    finally:
        stop.set()
        consumer.broker_back.set()
        await asyncio.wait_for(task, 5)
