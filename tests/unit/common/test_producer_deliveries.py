"""One producer shared by several callers: each waits for, and hears the failures of, its own sends.

A service shares one `EventProducer` among its consumer loops and its other tasks (an outbox,
a publisher). The broker is stood in for by a client whose delivery futures the test settles
by hand, so the order of acknowledgements, and which of them fail, is the test's choice.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaTimeoutError

from perpsignal_common.errors import DependencyUnavailable
from perpsignal_common.events.base import Event
from perpsignal_common.kafka.consumer import ConsumerLoop, ConsumerOptions
from perpsignal_common.kafka.producer import EventProducer
from perpsignal_common.retry import RetryPolicy
from perpsignal_common.settings import KafkaSettings
from tests.unit.common.test_consumer_loop import rec

TP = TopicPartition("t", 0)


class HandSettledClient:
    """Stands in for aiokafka's producer: `send` queues a record; the test settles its future."""

    def __init__(self) -> None:
        self.sent: dict[bytes, asyncio.Future[Any]] = {}

    async def send(
        self, topic: str, *, value: bytes | None, key: bytes | None, headers: object
    ) -> asyncio.Future[Any]:
        assert value is not None
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.sent[value] = fut
        return fut

    def ack(self, value: bytes) -> None:
        self.sent[value].set_result(None)

    def lose(self, value: bytes) -> None:
        self.sent[value].set_exception(KafkaTimeoutError())


def producer_on(client: HandSettledClient) -> EventProducer:
    producer = EventProducer(KafkaSettings(), "unit")
    producer._producer = client  # type: ignore[assignment]
    return producer


async def settle_loop() -> None:
    """Let every ready task run (a few passes of the event loop)."""
    for _ in range(20):
        await asyncio.sleep(0)


async def test_a_wait_does_not_return_before_its_own_sends_are_acknowledged() -> None:
    client = HandSettledClient()
    producer = producer_on(client)
    await producer.send_raw("out", b"k", b"a")
    await producer.send_raw("out", b"k", b"b")
    first = asyncio.create_task(producer.wait_delivered())  # caller A waits
    await settle_loop()
    second = asyncio.create_task(producer.wait_delivered())  # then caller B
    await settle_loop()
    # nothing is acknowledged yet: neither wait may have returned
    assert not first.done()
    assert not second.done()
    client.ack(b"a")
    client.ack(b"b")
    await asyncio.gather(first, second)


async def test_a_failed_send_reaches_every_caller_that_waits_for_it() -> None:
    client = HandSettledClient()
    producer = producer_on(client)
    await producer.send_raw("out", b"k", b"a")
    await producer.send_raw("out", b"k", b"b")
    first = asyncio.create_task(producer.wait_delivered())
    await settle_loop()
    second = asyncio.create_task(producer.wait_delivered())
    await settle_loop()
    client.ack(b"a")
    client.lose(b"b")
    # the first waiter seeing the loss does not swallow it: the second hears of it too
    with pytest.raises(DependencyUnavailable):
        await first
    with pytest.raises(DependencyUnavailable):
        await second
    # and so does a later wait, until the loss is handled
    with pytest.raises(DependencyUnavailable):
        await producer.wait_delivered()
    producer.discard_pending()
    await producer.wait_delivered()


async def test_a_scope_waits_for_its_own_sends_only_and_keeps_its_failures() -> None:
    client = HandSettledClient()
    producer = producer_on(client)
    await producer.send_raw("out", b"k", b"outside")
    with producer.scope() as mine:
        await producer.send_raw("out", b"k", b"inside")
    client.lose(b"inside")
    with pytest.raises(DependencyUnavailable):
        await mine.wait()
    # the loss is this scope's: the other sends' wait is not failed by it, nor discarded
    client.ack(b"outside")
    await producer.wait_delivered()
    with pytest.raises(DependencyUnavailable):
        await mine.wait()


class CommitLog:
    """Stands in for a consumer: records commits and the seeks of a re-read."""

    def __init__(self) -> None:
        self.commits: list[dict[TopicPartition, int]] = []
        self.seeks: list[tuple[TopicPartition, int]] = []

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(dict(offsets))

    def assignment(self) -> set[TopicPartition]:
        return {TP}

    async def committed(self, tp: TopicPartition) -> int:
        return 0

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append((tp, offset))

    async def seek_to_beginning(self, *tps: TopicPartition) -> None:
        self.seeks.extend((tp, 0) for tp in tps)


def publishing_loop(
    producer: EventProducer, name: str, gate: asyncio.Event
) -> tuple[ConsumerLoop, CommitLog]:
    """A loop whose handler sends `name` then waits for `gate` (a slow effect after the send)."""

    async def handler(event: Event, record: object) -> None:
        await producer.send_raw("out", b"k", name.encode())
        await gate.wait()

    loop = ConsumerLoop(
        kafka=KafkaSettings(),
        service=name,
        handler=handler,
        producer=producer,
        options=ConsumerOptions(group_id=name, topics=["t"], retry=RetryPolicy(max_attempts=1)),
    )
    consumer = CommitLog()
    loop._consumer = consumer  # type: ignore[assignment]
    return loop, consumer


async def test_a_loop_does_not_commit_before_its_events_are_acknowledged() -> None:
    """Loop A commits while loop B's event is in flight: B's commit must still wait for it."""
    client = HandSettledClient()
    producer = producer_on(client)
    gate_a, gate_b = asyncio.Event(), asyncio.Event()
    gate_a.set()
    loop_a, consumer_a = publishing_loop(producer, "a", gate_a)
    loop_b, consumer_b = publishing_loop(producer, "b", gate_b)
    b = asyncio.create_task(loop_b.process_batch({TP: [rec(0)]}, asyncio.Event()))
    await settle_loop()  # B's handler sent its event and waits for its gate
    a = asyncio.create_task(loop_a.process_batch({TP: [rec(0)]}, asyncio.Event()))
    await settle_loop()  # A's handler finished; A's commit waits for its event
    gate_b.set()
    await settle_loop()  # B's handler finished; B's commit waits for its event
    assert consumer_b.commits == []  # b is not acknowledged yet
    client.ack(b"a")
    await a
    assert consumer_a.commits == [{TP: 1}]
    assert consumer_b.commits == []
    client.ack(b"b")
    await b
    assert consumer_b.commits == [{TP: 1}]


async def test_a_lost_event_fails_the_commit_of_the_loop_that_sent_it() -> None:
    """B's event is lost while A waits: B re-reads (no commit), A commits its own."""
    client = HandSettledClient()
    producer = producer_on(client)
    gate_a, gate_b = asyncio.Event(), asyncio.Event()
    gate_a.set()
    loop_a, consumer_a = publishing_loop(producer, "a", gate_a)
    loop_b, consumer_b = publishing_loop(producer, "b", gate_b)
    b = asyncio.create_task(loop_b.process_batch({TP: [rec(0)]}, asyncio.Event()))
    await settle_loop()
    a = asyncio.create_task(loop_a.process_batch({TP: [rec(0)]}, asyncio.Event()))
    await settle_loop()
    gate_b.set()
    await settle_loop()
    client.lose(b"b")
    client.ack(b"a")
    await asyncio.gather(a, b)
    assert consumer_a.commits == [{TP: 1}]  # A's effect is durable
    assert consumer_a.seeks == []
    assert consumer_b.commits == []  # B's is not: it re-reads from its committed offset
    assert consumer_b.seeks == [(TP, 0)]


async def test_a_caller_that_never_waits_does_not_keep_its_acknowledged_sends() -> None:
    client = HandSettledClient()
    producer = producer_on(client)
    for i in range(20_000):
        await producer.send_raw("out", b"k", b"%d" % i)
        client.ack(b"%d" % i)
    assert len(producer._default._sent) < 5_000
    await producer.send_raw("out", b"k", b"lost")
    client.lose(b"lost")
    with pytest.raises(DependencyUnavailable):  # a sweep keeps failures for the next wait
        await producer.wait_delivered()
