"""On the real broker: a caller's `wait_delivered()` returns only once its events are in the log,
even while another caller sharing the producer waits too."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from perpsignal_common.events.topics import Topic
from perpsignal_common.kafka.admin import ensure_topics
from perpsignal_common.kafka.producer import EventProducer
from perpsignal_common.settings import KafkaSettings

pytestmark = pytest.mark.kafka


async def values_in_log(kafka: KafkaSettings, topic: str) -> list[bytes]:
    """Read `topic` from the beginning to what the broker holds now (a fetch that comes back
    empty; the broker's "latest" offsets are unreliable, see broker-notes)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka.kafka_bootstrap_servers, fetch_max_wait_ms=25
    )
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        values: list[bytes] = []
        while batch := await consumer.getmany(timeout_ms=300):
            values += [r.value for records in batch.values() for r in records if r.value]
        return values
    finally:
        await consumer.stop()


async def test_a_second_waiter_returns_only_once_its_event_is_in_the_log(
    kafka_settings: KafkaSettings,
) -> None:
    # sends linger in the client for 3 s: long enough to see a wait return too early
    kafka = kafka_settings.model_copy(update={"kafka_linger_ms": 3000})
    await ensure_topics(kafka)
    topic = kafka.topic(Topic.MARKET)
    assert await values_in_log(kafka, topic) == []
    producer = EventProducer(kafka, "test")
    await producer.start()
    try:
        await producer.send_raw(topic, b"k", b"a")  # caller A's event
        await producer.send_raw(topic, b"k", b"b")  # caller B's event
        first = asyncio.create_task(producer.wait_delivered())  # A commits
        await asyncio.sleep(0.05)
        await producer.wait_delivered()  # then B commits
        # B's event is acknowledged, so it is in the log now
        assert sorted(await values_in_log(kafka, topic)) == [b"a", b"b"]
        await first
    finally:
        await producer.stop()
