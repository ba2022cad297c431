"""Hostile records and failing dead letters on the real broker: the loop never stops on one."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from perpsignal_common.embedded import EmbeddedKafka
from perpsignal_common.events.base import Event
from perpsignal_common.events.registry import decode, encode
from perpsignal_common.events.topics import Topic, dlq_topic
from perpsignal_common.kafka.consumer import ConsumerLoop, ConsumerOptions, Record
from perpsignal_common.settings import KafkaSettings
from tests.helpers import TopicReader, eventually, kill_on_exit
from tests.integration.runtime.test_runtime_kafka import _loop, _producer, candle

pytestmark = pytest.mark.kafka


async def _run_until(loop: ConsumerLoop, done: asyncio.Event | None = None) -> asyncio.Task[None]:
    await loop.start()
    return asyncio.create_task(loop.run(done or asyncio.Event()))


async def _dead_letters_of_a_run(
    kafka: KafkaSettings,
    loop: ConsumerLoop,
    until: Callable[[], object],
    what: str,
    letters: int = 1,
    producer: Any = None,
) -> list[Any]:
    """Run `loop` until `until()` holds (the loop still running: it must not have failed on
    a record), then return the market topic's first `letters` dead letters; stop the loop
    (and `producer`) whatever happened."""
    stop = asyncio.Event()
    task = await _run_until(loop, stop)
    try:
        await eventually(lambda: until() or task.done(), what=what)
        assert not task.done(), task.exception()
        if not letters:
            return []
        async with TopicReader(kafka, dlq_topic(Topic.MARKET)) as dlq:
            return list(await dlq.wait_for(letters))
    finally:
        stop.set()
        await asyncio.wait({task})
        await loop.stop()
        if producer is not None:
            await producer.stop()


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
    [letter] = await _dead_letters_of_a_run(
        kafka_settings,
        loop,
        lambda: good.event_id in seen,
        "the event after the huge one",
        producer=producer,
    )
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

    good = candle(1)
    await producer.publish(good, wait=True)
    loop = _loop(kafka_settings, producer, handler)
    [letter] = await _dead_letters_of_a_run(
        kafka_settings, loop, lambda: seen, "the event after the empty one", producer=producer
    )
    headers = dict(letter.headers)
    assert (letter.key, letter.value) == (None, b"")
    assert headers["dlq.null_value"] == b"true"
    assert headers["dlq.error"] == b"PoisonMessage: empty message value"
    assert headers["dlq.partition"] == b"0"
    assert seen == [good.event_id]


# Kafka header keys are bytes on the wire; aiokafka only ever writes UTF-8 ones, so the
# record comes from its pure-Python record builder given a key whose `encode` returns other
# bytes (in a child process: the builder is chosen at import)
_WRITE_BAD_HEADER_KEY = """
import asyncio, sys
from aiokafka import AIOKafkaProducer

class NotUtf8(str):
    def encode(self, *args, **kwargs):
        return b"\\xff\\xfetrace"

async def main(bootstrap, topic, value, partition=None):
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(
            topic,
            key=b"BTCUSDT",
            value=value.encode(),
            headers=[(NotUtf8("x"), b"v")],
            partition=None if partition is None else int(partition),
        )
    finally:
        await producer.stop()

asyncio.run(main(*sys.argv[1:]))
"""


async def _send_with_bad_header_key(
    kafka: KafkaSettings, topic: str, value: bytes, partition: int | None = None
) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _WRITE_BAD_HEADER_KEY,
        kafka.kafka_bootstrap_servers,
        topic,
        value.decode(),
        *([] if partition is None else [str(partition)]),
        env={**os.environ, "AIOKAFKA_NO_EXTENSIONS": "1"},
    )
    assert await proc.wait() == 0


async def test_a_record_whose_header_key_is_not_utf8_is_dead_lettered_and_nothing_else_lost(
    kafka_settings: KafkaSettings,
) -> None:
    """aiokafka fails the whole fetch on such a record: the loop used to die on it after
    every restart, and the records around it were never handled."""
    producer = await _producer(kafka_settings)
    topic = kafka_settings.topic(Topic.MARKET)
    candles = [candle(i) for i in range(6)]
    await producer.publish_many(candles[:3])
    await _send_with_bad_header_key(kafka_settings, topic, encode(candle(99)))
    await producer.publish_many(candles[3:])
    seen: list[str] = []

    async def handler(event: Event, record: Record) -> None:
        seen.append(event.event_id)

    loop = _loop(kafka_settings, producer, handler)
    [letter] = await _dead_letters_of_a_run(
        kafka_settings, loop, lambda: len(seen) == len(candles), "every readable record"
    )
    assert seen == [c.event_id for c in candles]  # in order, none skipped
    headers = dict(letter.headers)
    assert headers["dlq.offset"] == b"3"
    assert headers["dlq.topic"] == topic.encode()
    assert b"unreadable record" in headers["dlq.error"]
    assert b"utf-8" in headers["dlq.error"]
    assert headers["dlq.dropped"] == b"unreadable"
    assert "dlq.null_value" not in headers

    # committed past it: a restart of the group handles nothing again
    again: list[str] = []

    async def second(event: Event, record: Record) -> None:
        again.append(event.event_id)

    candle_after = candle(7)
    await producer.publish(candle_after, wait=True)
    loop = _loop(kafka_settings, producer, second)
    await _dead_letters_of_a_run(
        kafka_settings, loop, lambda: again, "the record after the restart", 0, producer
    )
    assert again == [candle_after.event_id]


async def test_records_of_other_partitions_in_the_failed_fetch_are_not_lost(
    kafka_settings: KafkaSettings,
) -> None:
    """The fetch that meets the unreadable record may already have taken other partitions'
    records and moved their positions past them; the exception drops those records. They
    must still be handled (and their offsets never committed unhandled)."""
    producer = await _producer(kafka_settings)
    topic = kafka_settings.topic(Topic.MARKET)
    others = [candle(i, "ETHUSDT") for i in range(20)]
    raw = AIOKafkaProducer(bootstrap_servers=kafka_settings.kafka_bootstrap_servers)
    await raw.start()
    try:
        for partition in (0, 2):  # either side of the unreadable record's partition
            for c in others[partition * 5 : partition * 5 + 5]:
                await raw.send_and_wait(topic, encode(c), key=b"ETHUSDT", partition=partition)
    finally:
        await raw.stop()
    await _send_with_bad_header_key(kafka_settings, topic, encode(candle(99)), partition=1)
    seen: list[str] = []

    async def handler(event: Event, record: Record) -> None:
        seen.append(event.event_id)

    wanted = {c.event_id for c in others[0:5] + others[10:15]}
    loop = _loop(kafka_settings, producer, handler)
    await _dead_letters_of_a_run(
        kafka_settings, loop, lambda: wanted <= set(seen), "every readable one", 0, producer
    )


async def test_a_handler_that_raises_cancelled_error_is_retried_and_dead_lettered(
    kafka_settings: KafkaSettings,
) -> None:
    """A handler that cancels a task of its own and awaits it raises CancelledError though
    nothing cancelled the loop. That used to end the worker silently: the record was never
    finished, and with every worker gone the loop ran on consuming nothing, without an
    error."""
    producer = await _producer(kafka_settings)
    bad, good = candle(1), candle(2)
    await producer.publish_many([bad, good])
    attempts: list[str] = []
    seen: list[str] = []

    async def handler(event: Event, record: Record) -> None:
        attempts.append(event.event_id)
        if event.event_id == bad.event_id:
            side = asyncio.create_task(asyncio.sleep(10))
            await asyncio.sleep(0)
            side.cancel()
            await side  # raises CancelledError into the handler
        seen.append(event.event_id)

    loop = _loop(kafka_settings, producer, handler, concurrency=1)
    [letter] = await _dead_letters_of_a_run(
        kafka_settings, loop, lambda: good.event_id in seen, "the next event", producer=producer
    )
    headers = dict(letter.headers)
    assert headers["dlq.error_type"] == b"HandlerCancelled"
    assert headers["dlq.attempts"] == b"3"
    assert attempts.count(bad.event_id) == 3
    assert seen == [good.event_id]


async def test_a_dead_letter_waits_out_a_broker_pause_instead_of_failing_the_loop(
    tmp_path: Path,
) -> None:
    """The broker stops answering while a poison record is being dead-lettered (longer than
    the request timeout, shorter than the dependency grace). A handler's send rides such a
    pause out; the dead letter used to fail the whole loop at the first timeout."""
    broker = EmbeddedKafka(log_path=tmp_path / "broker.log").start()
    forget = kill_on_exit(broker.stop)
    kafka = KafkaSettings(
        kafka_bootstrap_servers=broker.bootstrap,
        kafka_topic_partitions=1,
        # the embedded broker holds a join for half the session timeout: under the request
        # timeout, or the group never forms
        kafka_session_timeout_ms=4_000,
        kafka_heartbeat_interval_ms=1_000,
        kafka_fetch_max_wait_ms=25,
        kafka_linger_ms=1,
        kafka_request_timeout_ms=3_000,
    )
    pid = broker.pid
    assert pid is not None
    producer = await _producer(kafka)
    first, good = candle(1), candle(2)
    gate = asyncio.Event()
    seen: list[str] = []

    async def handler(event: Event, record: Record) -> None:
        if event.event_id == first.event_id:
            await gate.wait()
        seen.append(event.event_id)

    await producer.publish(first, wait=True)
    await producer.send_raw(kafka.topic(Topic.MARKET), b"BTCUSDT", b"not json", wait=True)
    await producer.publish(good, wait=True)
    loop = _loop(kafka, producer, handler, concurrency=1, dependency_grace_s=60)
    stop = asyncio.Event()
    task = await _run_until(loop, stop)
    try:
        # all three fetched, the first in hand: the poison is dead-lettered once it is done
        await eventually(lambda: loop._inflight == 3, what="the three records fetched")
        os.kill(pid, signal.SIGSTOP)
        try:
            gate.set()
            await asyncio.sleep(8)  # the dead letter's send times out, more than once
            assert not task.done(), task.exception()
        finally:
            os.kill(pid, signal.SIGCONT)
        await eventually(lambda: good.event_id in seen or task.done(), what="the good event")
        assert not task.done(), task.exception()
        async with TopicReader(kafka, dlq_topic(Topic.MARKET)) as dlq:
            letters = await dlq.wait_for(1)
    finally:
        stop.set()
        await asyncio.wait({task})
        await loop.stop()
        await producer.stop()
        broker.stop()
        forget()
    # the pause outlived the session: after the rebalance what was not committed comes again
    assert {r.value for r in letters} == {b"not json"}
    assert seen[0] == first.event_id and seen[-1] == good.event_id


class _Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("__str__ is broken too")


async def test_a_handler_error_that_cannot_be_printed_is_still_dead_lettered(
    kafka_settings: KafkaSettings,
) -> None:
    """Formatting the error for the log line raised out of the dead-letter path: the loop
    failed on the record, and again after every restart."""
    producer = await _producer(kafka_settings)
    bad, good = candle(1), candle(2)
    await producer.publish_many([bad, good])
    seen: list[str] = []

    async def handler(event: Event, record: Record) -> None:
        if event.event_id == bad.event_id:
            raise _Unprintable
        seen.append(event.event_id)

    loop = _loop(kafka_settings, producer, handler)
    [letter] = await _dead_letters_of_a_run(
        kafka_settings, loop, lambda: good.event_id in seen, "the next event", producer=producer
    )
    headers = dict(letter.headers)
    assert headers["dlq.error_type"] == b"_Unprintable"
    assert headers["dlq.error"] == b"_Unprintable: <unprintable>"


async def test_a_decoder_that_fails_with_its_own_error_dead_letters_the_record(
    kafka_settings: KafkaSettings,
) -> None:
    """A service's decoder (the judge has one) that raises something other than
    PermanentError on a hostile record used to fail the loop, and again after every
    restart: nothing behind the record was ever read."""
    producer = await _producer(kafka_settings)
    topic = kafka_settings.topic(Topic.MARKET)

    def peeking_decoder(raw: bytes | None) -> Event:
        # a fast path that trusts the record to be an object with a type (a bug)
        if orjson.loads(raw or b"null")["type"] == "never":
            raise AssertionError("unreachable")
        return decode(raw)

    seen: list[str] = []

    async def handler(event: Event, record: Record) -> None:
        seen.append(event.event_id)

    await producer.send_raw(topic, b"BTCUSDT", b"[1, 2]", wait=True)
    good = candle(1)
    await producer.publish(good, wait=True)
    options = ConsumerOptions(group_id="g", topics=[Topic.MARKET])
    loop = ConsumerLoop(
        kafka=kafka_settings,
        service="test",
        options=options,
        handler=handler,
        producer=producer,
        decoder=peeking_decoder,
    )
    [letter] = await _dead_letters_of_a_run(
        kafka_settings, loop, lambda: good.event_id in seen, "the next event", producer=producer
    )
    headers = dict(letter.headers)
    assert letter.value == b"[1, 2]"
    assert headers["dlq.error_type"] == b"PoisonMessage"
    assert headers["dlq.error"].startswith(b"PoisonMessage: the decoder failed: TypeError")
