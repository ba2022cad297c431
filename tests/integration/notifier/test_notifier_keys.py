"""A judged signal whose record key is not its symbol is dead-lettered: no Telegram message.

The consumer loop orders records per (partition, key): a record keyed by another symbol
sits in that symbol's partition and lane, so the symbol's latest signal (`/signal`) and its
cooldown would be updated out of the symbol's order. The scorer refuses such a record the
same way.
"""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from perpsignal_common.events.topics import Topic, dlq_topic
from perpsignal_common.kafka.admin import ensure_topics
from perpsignal_common.kafka.producer import EventProducer
from perpsignal_common.settings import KafkaSettings
from tests.fakes.telegram import FakeTelegram
from tests.helpers import TopicReader, eventually
from tests.integration.notifier.test_notifier_process import (
    CHATS,
    Running,
    in_process_settings,
)
from tests.poison_helpers import assert_dead_lettered_as_misrouted, send_under_key
from tests.unit.notifier.builders import judged

pytestmark = [pytest.mark.kafka, pytest.mark.db]


async def test_a_signal_keyed_by_another_symbol_is_dead_lettered_and_not_sent(
    kafka_settings: KafkaSettings,
    database_url: str,
    fake_telegram: FakeTelegram,
) -> None:
    good = [judged("BTCUSDT"), judged("ETHUSDT", price=3000.0)]
    misrouted = judged("SOLUSDT", price=150.0)
    await ensure_topics(kafka_settings)
    producer = EventProducer(kafka_settings, "test")
    await producer.start()
    try:
        await producer.publish(good[0], wait=True)
        await send_under_key(producer, kafka_settings, Topic.SIGNALS_JUDGED, misrouted, b"BTCUSDT")
        await producer.publish(good[1], wait=True)
    finally:
        await producer.stop()
    async with (
        Running(in_process_settings(kafka_settings, database_url, fake_telegram)) as running,
        TopicReader(kafka_settings, dlq_topic(Topic.SIGNALS_JUDGED)) as dlq,
    ):
        letters = await dlq.wait_for(1, timeout=60)
        loop = running.service.loops[0]
        await eventually(lambda: loop.processed >= len(good), what="the good signals handled")
        await eventually(lambda: len(fake_telegram.messages) >= 2 * len(good))
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(text("select symbol from notifier_symbol_state"))
            stored = sorted(r[0] for r in rows)
    finally:
        await engine.dispose()

    [letter] = letters
    assert_dead_lettered_as_misrouted(letter.value, dict(letter.headers), misrouted, "BTCUSDT")
    sent = fake_telegram.messages
    assert sorted(m.chat_id for m in sent) == sorted(CHATS * len(good))
    assert not any("SOL" in m.text for m in sent)
    assert stored == ["BTCUSDT", "ETHUSDT"]  # nor is it the symbol's latest signal
