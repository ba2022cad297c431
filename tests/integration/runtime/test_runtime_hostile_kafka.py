"""Hostile records and failing dead letters on the real broker: the loop never stops on one."""

from __future__ import annotations

import asyncio
import sys

import pytest

from perpsignal_common.events.base import Event
from perpsignal_common.events.topics import Topic, dlq_topic
from perpsignal_common.kafka.consumer import ConsumerLoop, Record
from perpsignal_common.settings import KafkaSettings
from tests.helpers import TopicReader, eventually
from tests.integration.runtime.test_runtime_kafka import _loop, _producer, candle

pytestmark = pytest.mark.kafka


async def _run_until(loop: ConsumerLoop, done: asyncio.Event | None = None) -> asyncio.Task[None]:
    await loop.start()
    return asyncio.create_task(loop.run(done or asyncio.Event()))


async def test_a_record_too_large_to_copy_to_the_dlq_is_dead_lettered_without_its_value(
    kafka_settings: KafkaSettings,
) -> None:
    """The broker holds a record of nearly 10 MB; its dead-letter copy (plus the dlq.*
    headers) is over the producer's 10 MB request limit. The loop used to fail on it, and
    again after every restart: the partition never moved again."""
    producer = await _producer(kafka_settings)
    topic = kafka_settings.topic(Topic.MARKET)
    huge = b'{"pad":"' + b"a" * (10 * 1024 * 1024 - 300) + b'"}'
    await producer.send_raw(topic, b"BTCUSDT", huge, [("trace", b"t-1")], wait=True)
    good = candle(1)
    await producer.publish(good, wait=True)
    seen: list[str] = []

    async def handler(event: Event, record: Record) -> None:
        seen.append(event.event_id)

    loop = _loop(kafka_settings, producer, handler)
    stop = asyncio.Event()
    task = await _run_until(loop, stop)
    try:
        await eventually(
            lambda: good.event_id in seen or task.done(), what="the event after the huge one"
        )
        assert not task.done(), task.exception()
        async with TopicReader(kafka_settings, dlq_topic(Topic.MARKET)) as dlq:
            [letter] = await dlq.wait_for(1)
    finally:
        stop.set()
        await asyncio.wait({task})
        await loop.stop()
        await producer.stop()
    headers = dict(letter.headers)
    assert letter.value is None
    assert letter.key == b"BTCUSDT"
    assert headers["dlq.dropped"] == f"value={len(huge)}".encode()
    assert headers["dlq.topic"] == topic.encode()
    assert headers["dlq.offset"] == b"0"
    assert headers["dlq.error"].startswith(b"PoisonMessage: invalid event")
    assert headers["trace"] == b"t-1"
    assert seen == [good.event_id]


async def _send_without_key_or_value(kafka: KafkaSettings, topic: str) -> None:
    """Write a record with neither key nor value, as the Java client may (aiokafka refuses
    to, by an `assert`: run it with assertions off)."""
    script = (
        "import asyncio, sys\n"
        "from aiokafka import AIOKafkaProducer\n"
        "async def main(bootstrap, topic):\n"
        "    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)\n"
        "    await producer.start()\n"
        "    try:\n"
        "        await producer.send_and_wait(topic, key=None, value=None, partition=0)\n"
        "    finally:\n"
        "        await producer.stop()\n"
        "asyncio.run(main(*sys.argv[1:]))\n"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-O", "-c", script, kafka.kafka_bootstrap_servers, topic
    )
    assert await proc.wait() == 0


async def test_a_record_with_neither_key_nor_value_is_dead_lettered(
    kafka_settings: KafkaSettings,
) -> None:
    """Its dead-letter copy had neither either, which aiokafka refuses with an
    AssertionError: the loop stopped, and again after every restart."""
    producer = await _producer(kafka_settings)
    topic = kafka_settings.topic(Topic.MARKET)
    await _send_without_key_or_value(kafka_settings, topic)
    seen: list[str] = []

    async def handler(event: Event, record: Record) -> None:
        seen.append(event.event_id)

    loop = _loop(kafka_settings, producer, handler)
    stop = asyncio.Event()
    task = await _run_until(loop, stop)
    good = candle(1)
    try:
        await producer.publish(good, wait=True)
        await eventually(lambda: seen or task.done(), what="the event after the empty one")
        assert not task.done(), task.exception()
        async with TopicReader(kafka_settings, dlq_topic(Topic.MARKET)) as dlq:
            [letter] = await dlq.wait_for(1)
    finally:
        stop.set()
        await asyncio.wait({task})
        await loop.stop()
        await producer.stop()
    headers = dict(letter.headers)
    assert (letter.key, letter.value) == (None, b"")
    assert headers["dlq.null_value"] == b"true"
    assert headers["dlq.error"] == b"PoisonMessage: empty message value"
    assert headers["dlq.partition"] == b"0"
    assert seen == [good.event_id]
